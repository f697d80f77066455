"""The generic HTTP dialect: the exact path, query, headers and body the target receives."""

from __future__ import annotations

import orjson
import pytest
import zstandard

from bridge.dev import sample
from bridge.proto import pb


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
