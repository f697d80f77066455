"""The bridge end to end over real gRPC and a real HTTP target on loopback: RPC shapes and bad input."""

from __future__ import annotations

import asyncio

import grpc
import orjson
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2

from bridge.dev import sample
from bridge.proto import pb
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until


def route_to(sink, **over) -> dict:
    r = {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}
    r.update(over)
    return r


def rows_req(route: str, columns: list[str], rows: list[list[pb.Value]], seq: int = 0, ops=None) -> pb.IngestRequest:
    req = pb.IngestRequest(route=route, sequence=seq)
    req.rows.columns.extend(columns)
    for i, values in enumerate(rows):
        r = req.rows.rows.add()
        r.values.extend(values)
        if ops:
            r.op = ops[i]
    return req


V = pb.Value


async def test_typed_values_arrive_as_the_json_a_user_expects(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    stub = channel_factory(b)
    m = pb.MapValue()
    m.fields["k"].CopyFrom(V(list=pb.ListValue(values=[V(int=1), V(null=0)])))
    req = rows_req("r", ["i", "u", "d", "s", "b", "by", "ts", "n", "m"], [[
        V(int=-(2**63)), V(uint=2**64 - 1), V(double=1.5), V(string="é\n"), V(bool=True), V(bytes=b"\x00\xff"),
        V(timestamp=Timestamp(seconds=1767225600, nanos=123_000_000)), V(), V(map=m),
    ]], seq=7)
    ack = await stub.IngestBatch(req)
    assert (ack.sequence, ack.route, ack.accepted, ack.rejected) == (7, "r", 1, 0)
    assert ack.status.code == code_pb2.OK
    (cap,) = sink.requests
    assert cap.path == "/in"
    assert cap.headers["Content-Type"] == "application/x-ndjson"
    assert orjson.loads(cap.body) == {
        "i": -(2**63), "u": 2**64 - 1, "d": 1.5, "s": "é\n", "b": True, "by": "AP8=",
        "ts": "2026-01-01T00:00:00.123Z", "n": None, "m": {"k": [1, None]},
    }
    assert cap.body.endswith(b"\n") and cap.body.count(b"\n") == 1


async def test_stream_acks_every_batch_in_order_and_later_messages_may_omit_the_route(
        sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    stub = channel_factory(b)
    reqs = [sample.SHAPES[shape]("r" if seq == 0 else "", seq, range(seq * 10, seq * 10 + 10))
            for seq, shape in enumerate(["rows", "json", "columns", "rows", "json"])]

    async def gen():
        for r in reqs:
            yield r

    acks = [a async for a in stub.IngestStream(gen())]
    assert [(a.sequence, a.route, a.accepted, a.rejected) for a in acks] == [(i, "r", 10, 0) for i in range(5)]
    assert sorted(r["id"] for r in sink.rows) == list(range(50))
    assert all(r == sample.expected_json(r["id"]) for r in sink.rows)


async def test_ingest_returns_one_summary(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    stub = channel_factory(b)

    async def gen():
        yield sample.columns_request("r", 1, range(0, 100))
        bad = sample.json_request("", 2, range(100, 105))
        bad.json.objects[3] = b"{not json"
        yield bad

    summary = await stub.Ingest(gen())
    assert (summary.batches, summary.accepted, summary.rejected) == (2, 104, 1)
    (partial,) = summary.failed
    assert partial.sequence == 2 and [e.index for e in partial.errors] == [3]


async def test_unknown_route_is_not_found_naming_it(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    stub = channel_factory(b)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(sample.rows_request("nope", 3, range(2)))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "'nope'" in ei.value.details()
    info = error_info(status_of(ei.value))
    assert info.reason == "ROUTE_NOT_FOUND" and info.domain == "ingest-bridge"
    assert info.metadata["route"] == "nope" and info.metadata["sequence"] == "3"

    # In a stream the ack says so and the stream goes on.
    async def gen():
        yield sample.rows_request("nope", 0, range(2))
        yield sample.rows_request("r", 1, range(2))

    acks = [a async for a in stub.IngestStream(gen())]
    assert acks[0].status.code == code_pb2.NOT_FOUND and acks[0].rejected == 2
    assert acks[1].status.code == code_pb2.OK and acks[1].accepted == 2


async def test_a_stream_whose_first_message_names_no_route_is_invalid(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    stub = channel_factory(b)

    async def gen():
        yield sample.rows_request("", 0, range(2))

    (ack,) = [a async for a in stub.IngestStream(gen())]
    assert ack.status.code == code_pb2.INVALID_ARGUMENT
    assert error_info(ack.status).reason == "ROUTE_REQUIRED"
    assert not sink.requests


async def test_a_row_with_the_wrong_value_count_is_rejected_by_index(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink), "strict": route_to(sink, on_bad_row="reject_batch")})
    stub = channel_factory(b)
    rows = [[V(int=1), V(string="a")], [V(int=2)], [V(int=3), V(string="c")]]
    ack = await stub.IngestBatch(rows_req("r", ["id", "name"], rows))
    assert (ack.accepted, ack.rejected) == (2, 1)
    assert [(e.index, e.reason) for e in ack.errors] == [(1, "row has 1 values for 2 columns")]
    assert [r["id"] for r in sink.rows] == [1, 3]

    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(rows_req("strict", ["id", "name"], rows))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    st = status_of(ei.value)
    assert error_info(st).reason == "INVALID_ROWS"
    (br,) = details(st)["BadRequest"]
    assert [v.field for v in br.field_violations] == ["rows[1]"]
    assert [r["id"] for r in sink.rows] == [1, 3], "nothing of the all-or-nothing batch was sent"


async def test_bad_json_objects_are_rejected_by_index_with_the_parser_reason(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    stub = channel_factory(b)
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"a": 1}', b'{"a": ', b"[1, 2]", b'{"a":\n 2}'])
    ack = await stub.IngestBatch(req)
    assert (ack.accepted, ack.rejected) == (2, 2)
    assert [e.index for e in ack.errors] == [1, 2]
    assert ack.errors[0].reason.startswith("not valid JSON: ")
    assert ack.errors[1].reason == "not a JSON object (a JSON list)"
    # The multi-line object is put on one line for NDJSON: its newline, whitespace there, becomes a space.
    assert sink.requests[0].body == b'{"a": 1}\n{"a":  2}\n'


async def test_a_message_that_does_not_decode_is_rejected_by_index(sink, bridge_factory, channel_factory, tmp_path):
    desc = sample.write_descriptor_set(tmp_path / "click.desc")
    b = await bridge_factory({"r": route_to(sink, options={"descriptor_set": str(desc)})})
    stub = channel_factory(b)
    req = sample.messages_request("r", 0, range(3))
    req.messages.messages[1] = b"\x0a\xff\xff"  # a length-delimited field that runs past the end
    ack = await stub.IngestBatch(req)
    assert (ack.accepted, ack.rejected) == (2, 1)
    assert ack.errors[0].index == 1
    assert ack.errors[0].reason.startswith(f"does not decode as {sample.MESSAGE_TYPE}")
    assert [r["id"] for r in sink.rows] == [0, 2]
    assert sink.rows[1] == sample.expected_json(2)

    req = sample.messages_request("r", 0, range(1))
    req.messages.type = "no.such.Type"
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(status_of(ei.value)).reason == "UNKNOWN_MESSAGE_TYPE"


async def test_a_message_over_the_size_limit_is_resource_exhausted_naming_the_limit(
        sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)}, limits={"max_message_bytes": "64KiB"})
    stub = channel_factory(b)
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"pad": "' + b"x" * 1000 + b'"}'] * 100)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(req)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "65536" in ei.value.details()
    assert not sink.requests


async def test_a_caller_that_disconnects_mid_stream_leaves_nothing_behind(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink, batch={"linger": "60s", "max_rows": 100000})})
    stub = channel_factory(b)
    route = b.routes["r"]
    call = stub.IngestStream()
    for seq in range(3):
        await call.write(sample.rows_request("r", seq, range(seq * 100, seq * 100 + 100)))
    await wait_until(lambda: route.budget.used > 0 and route.stats.requests == 3,
                     what="the rows are buffered, waiting for the linger time")
    assert any("IngestService._stream" in t.get_coro().__qualname__ for t in asyncio.all_tasks())
    call.cancel()
    def stream_tasks():
        return [t for t in asyncio.all_tasks() if "IngestService._stream" in t.get_coro().__qualname__]

    await wait_until(lambda: route.budget.used == 0 and not stream_tasks(), what="the stream's rows released")
    assert route.budget.used == 0
    assert b.budget.used == 0
    assert len(route.batcher) == 0
    assert not stream_tasks(), "the stream's reader task is gone"
    assert not sink.requests, "rows nobody waits for are not sent"


async def test_list_routes_shows_names_dialects_and_columns_never_urls(sink, bridge_factory, channel_factory):
    b = await bridge_factory({
        "b": route_to(sink, columns={"id": "int", "name": "string?"}),
        "a": route_to(sink, auth={"bearer": "s3cret-token"}),
    })
    stub = channel_factory(b)
    resp = await stub.ListRoutes(pb.ListRoutesRequest())
    assert [r.name for r in resp.routes] == ["a", "b"]
    assert resp.routes[0].dialect == "http" and resp.routes[0].ops == [pb.OP_INSERT]
    assert [(c.name, c.type) for c in resp.routes[1].columns] == [("id", "int"), ("name", "string?")]
    raw = resp.SerializeToString()
    assert sink.url.encode() not in raw and b"s3cret" not in raw


async def test_list_routes_columns_are_enough_to_build_rows_the_route_accepts(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink, columns={
        "id": "int", "n": "uint", "x": "double?", "ok": "bool", "s": "string", "raw": "bytes?", "ts": "timestamp",
        "j": "json?"})})
    stub = channel_factory(b)
    cols = (await stub.ListRoutes(pb.ListRoutesRequest())).routes[0].columns
    assert [(c.name, c.base_type, c.nullable) for c in cols] == [
        ("id", "int", False), ("n", "uint", False), ("x", "double", True), ("ok", "bool", False),
        ("s", "string", False), ("raw", "bytes", True), ("ts", "timestamp", False), ("j", "json", True)]
    # A caller that knows nothing but the listing: one row with every value set by its base type, one with
    # every nullable column null.
    example = {"int": {"int": -1}, "uint": {"uint": 2**64 - 1}, "double": {"double": 0.5}, "bool": {"bool": True},
               "string": {"string": "s"}, "bytes": {"bytes": b"\x01"}, "timestamp": {"timestamp": Timestamp(seconds=1)},
               "json": {"map": pb.MapValue(fields={"k": pb.Value(int=1)})}}
    req = pb.IngestRequest(route="r")
    req.rows.columns.extend(c.name for c in cols)
    req.rows.rows.add().values.extend(pb.Value(**example[c.base_type]) for c in cols)
    req.rows.rows.add().values.extend(pb.Value() if c.nullable else pb.Value(**example[c.base_type]) for c in cols)
    ack = await stub.IngestBatch(req)
    assert (ack.accepted, ack.rejected) == (2, 0), ack
    assert sink.rows[0] == {"id": -1, "n": 2**64 - 1, "x": 0.5, "ok": True, "s": "s", "raw": "AQ==",
                            "ts": "1970-01-01T00:00:01Z", "j": {"k": 1}}
    assert sink.rows[1]["x"] is None and sink.rows[1]["raw"] is None and sink.rows[1]["j"] is None


async def test_declared_columns_reject_bad_values_by_index_and_column(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink, columns={"id": "int", "name": "string?", "ts": "timestamp"})})
    stub = channel_factory(b)
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([
        b'{"id": 1, "ts": "2026-01-01T00:00:00Z"}',
        b'{"id": "2", "ts": "2026-01-01T00:00:00Z"}',
        b'{"id": 3, "ts": "yesterday"}',
        b'{"id": 4, "ts": "2026-01-01T00:00:00Z", "extra": 1}',
        b'{"id": 5, "name": null, "ts": 1767225600}',
    ])
    ack = await stub.IngestBatch(req)
    # A bare number is no timestamp on an RFC 3339 route (row 4).
    assert [(e.index, e.column) for e in ack.errors] == [(1, "id"), (2, "ts"), (3, "extra"), (4, "ts")]
    assert 'expects an integer in int64, got "2"' in ack.errors[0].reason
    assert "expects an RFC 3339 timestamp, got 1767225600" in ack.errors[3].reason
    assert [r["id"] for r in sink.rows] == [1]

    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(rows_req("r", ["id", "ts", "nope"], [[V(int=1), V(string="x"), V(int=1)]]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(status_of(ei.value)).reason == "UNKNOWN_COLUMN"


async def test_an_op_the_target_cannot_express_is_rejected_not_sent_as_an_insert(
        sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    stub = channel_factory(b)
    ack = await stub.IngestBatch(rows_req("r", ["id"], [[V(int=1)], [V(int=2)]], ops=[pb.OP_INSERT, pb.OP_DELETE]))
    assert (ack.accepted, ack.rejected) == (1, 1)
    assert ack.errors[0].index == 1 and "op DELETE is not supported" in ack.errors[0].reason
    assert sink.rows == [{"id": 1}]


@pytest.mark.parametrize(
    ("http_status", "code", "reason"),
    [(404, "NOT_FOUND", "TARGET_NOT_FOUND"), (400, "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST"),
     (401, "UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED"), (503, "UNAVAILABLE", "UPSTREAM_UNAVAILABLE")],
)
async def test_target_errors_map_to_grpc_codes_with_details(
        sink, bridge_factory, channel_factory, http_status, code, reason):
    sink.status = http_status
    b = await bridge_factory({"r": route_to(sink, delivery=fast_delivery(max_elapsed="300ms"))})
    stub = channel_factory(b)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(sample.rows_request("r", 5, range(3)))
    assert ei.value.code() == getattr(grpc.StatusCode, code)
    st = status_of(ei.value)
    info = error_info(st)
    assert (info.reason, info.metadata["http_status"], info.metadata["route"], info.metadata["sequence"]) == (
        reason, str(http_status), "r", "5")
    d = details(st)
    assert ("RetryInfo" in d) == (http_status == 503)
    (ack,) = d["BatchAck"]
    assert (ack.accepted, ack.rejected) == (0, 3)
    if http_status == 503:
        assert len(sink.requests) > 1, "503 is retried"
    else:
        assert len(sink.requests) == 1, f"{http_status} is not retried"
