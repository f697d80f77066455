"""The generic HTTP dialect: the exact path, query, headers and body the target receives."""

from __future__ import annotations

import grpc
import orjson
import pytest
import zstandard

from bridge.dev import sample
from bridge.proto import pb
from tests.grpc_helpers import details, error_info, status_of


def http_route(sink, **options) -> dict:
    return {"dialect": "http", "url": sink.url + "/base", "batch": {"linger": "0s"}, "options": options}


async def send(bridge_factory, channel_factory, route: dict, request: pb.IngestRequest, **route_keys):
    route.update(route_keys)
    b = await bridge_factory({"r": route})
    ack = await channel_factory(b).IngestBatch(request)
    assert ack.status.code == 0, ack.status.message
    return ack


def two_rows() -> pb.IngestRequest:
    req = pb.IngestRequest(route="r")
    req.rows.columns.extend(["id", "name", "tags"])
    req.rows.rows.add().values.extend([pb.Value(int=1), pb.Value(string='a,"b"'),
                                       pb.Value(list=pb.ListValue(values=[pb.Value(string="x")]))])
    req.rows.rows.add().values.extend([pb.Value(int=2), pb.Value(), pb.Value(bool=False)])
    return req


async def test_ndjson_is_the_default(sink, bridge_factory, channel_factory):
    await send(bridge_factory, channel_factory, http_route(sink), two_rows())
    (cap,) = sink.requests
    assert (cap.method, cap.path, cap.query) == ("POST", "/base", [])
    assert cap.headers["Content-Type"] == "application/x-ndjson"
    assert "Content-Encoding" not in cap.headers and "Authorization" not in cap.headers
    assert cap.headers["User-Agent"].startswith("ingest-bridge/")
    assert cap.body == b'{"id":1,"name":"a,\\"b\\"","tags":["x"]}\n{"id":2,"name":null,"tags":false}\n'


async def test_json_array(sink, bridge_factory, channel_factory):
    await send(bridge_factory, channel_factory, http_route(sink, format="json"), two_rows())
    (cap,) = sink.requests
    assert cap.headers["Content-Type"] == "application/json"
    assert cap.body == b'[{"id":1,"name":"a,\\"b\\"","tags":["x"]},{"id":2,"name":null,"tags":false}]'


async def test_json_objects_pass_through_untouched(sink, bridge_factory, channel_factory):
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"b": 2, "a": 1.50}', b'{"z":[1,{"y":null}]}'])
    await send(bridge_factory, channel_factory, http_route(sink, format="json"), req)
    assert sink.requests[0].body == b'[{"b": 2, "a": 1.50},{"z":[1,{"y":null}]}]'


async def test_csv_with_header_delimiter_and_json_cells(sink, bridge_factory, channel_factory):
    await send(bridge_factory, channel_factory, http_route(sink, format="csv", csv_delimiter=";"), two_rows())
    (cap,) = sink.requests
    assert cap.headers["Content-Type"] == "text/csv"
    assert cap.body == b'"id";"name";"tags"\n1;"a,""b""";"[""x""]"\n2;\\N;false\n'


async def test_csv_without_header(sink, bridge_factory, channel_factory):
    sink_rows = http_route(sink, format="csv", csv_header=False)
    await send(bridge_factory, channel_factory, sink_rows, two_rows())
    assert sink.requests[0].body == b'1,"a,""b""","[""x""]"\n2,\\N,false\n'


async def test_path_query_headers_and_content_type(sink, bridge_factory, channel_factory):
    route = http_route(sink, path="/v1/in", query={"query": "INSERT INTO t FORMAT JSONEachRow", "n": 5},
                       headers={"X-Tenant": "acme"}, content_type="application/x-ndjson; charset=utf-8")
    await send(bridge_factory, channel_factory, route, two_rows())
    (cap,) = sink.requests
    assert cap.path == "/base/v1/in"
    assert cap.raw_path == "/base/v1/in?query=INSERT+INTO+t+FORMAT+JSONEachRow&n=5"
    assert cap.query == [("query", "INSERT INTO t FORMAT JSONEachRow"), ("n", "5")]
    assert cap.headers["X-Tenant"] == "acme"
    assert cap.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [({"bearer": "tok-123"}, "Authorization", "Bearer tok-123"),
     ({"headers": {"X-Api-Key": "k-9"}}, "X-Api-Key", "k-9")],
)
async def test_auth_forms(sink, bridge_factory, channel_factory, auth, header, value):
    await send(bridge_factory, channel_factory, http_route(sink), two_rows(), auth=auth)
    assert sink.requests[0].headers[header] == value


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
async def test_compression(sink, bridge_factory, channel_factory, encoding):
    req = sample.rows_request("r", 0, range(50))
    await send(bridge_factory, channel_factory, http_route(sink, compression=encoding), req)
    (cap,) = sink.requests
    assert cap.headers["Content-Encoding"] == encoding
    assert len(cap.raw) < len(cap.body)
    if encoding == "zstd":
        assert cap.raw[:4] == zstandard.FRAME_HEADER
    else:
        assert cap.raw[:2] == b"\x1f\x8b"
    assert [orjson.loads(line) for line in cap.body.splitlines()] == [sample.expected_json(i) for i in range(50)]


async def test_batches_merge_up_to_max_rows_and_split_above(sink, bridge_factory, channel_factory):
    route = http_route(sink)
    route["batch"] = {"max_rows": 250, "linger": "50ms"}
    b = await bridge_factory({"r": route})
    stub = channel_factory(b)

    async def gen():
        for seq in range(6):
            yield sample.columns_request("r" if seq == 0 else "", seq, range(seq * 100, seq * 100 + 100))

    acks = [a async for a in stub.IngestStream(gen())]
    assert [a.accepted for a in acks] == [100] * 6
    sizes = [len(c.rows) for c in sink.requests]
    assert sum(sizes) == 600 and max(sizes) <= 250
    assert len(sizes) < 6, "small messages were merged into fewer requests"
    assert sorted(r["id"] for r in sink.rows) == list(range(600))


@pytest.mark.parametrize(("headers", "body", "code", "reason", "retried"), [
    # ClickHouse answers a row it cannot parse with HTTP 500: the exception code says it is the row's fault.
    ({"X-ClickHouse-Exception-Code": "27"}, b"Code: 27, e.displayText() = DB::Exception: Cannot parse input",
     "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False),
    ({}, b"Code: 27. DB::Exception: Cannot parse input: expected '\"' before: 'x'", "INVALID_ARGUMENT",
     "UPSTREAM_BAD_REQUEST", False),
    ({"X-ClickHouse-Exception-Code": "516"}, b"Code: 516. DB::Exception: default: Authentication failed",
     "UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED", False),
    ({"X-ClickHouse-Exception-Code": "241"}, b"Code: 241. DB::Exception: Memory limit exceeded", "INTERNAL",
     "UPSTREAM_INTERNAL_ERROR", True),
    ({}, b"Codes: 27 are not an exception code", "INTERNAL", "UPSTREAM_INTERNAL_ERROR", True),
])
async def test_clickhouse_exception_codes_classify_a_500(sink, bridge_factory, channel_factory, headers, body, code,
                                                         reason, retried):
    sink.fail_next(500, body, headers=headers, times=10)
    route = http_route(sink)
    route["delivery"] = {"initial_backoff": "10ms", "max_elapsed": "300ms"}
    b = await bridge_factory({"r": route})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await channel_factory(b).IngestBatch(two_rows())
    assert ei.value.code() == getattr(grpc.StatusCode, code)
    st = status_of(ei.value)
    assert error_info(st).reason == reason and ("RetryInfo" in details(st)) == retried
    assert (len(sink.requests) > 1) == retried
