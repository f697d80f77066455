"""Limits on what one caller may send and hold, each with an error that names it."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
import pytest

from bridge.dev import sample
from bridge.proto import SERVICE_NAME, pb
from tests.grpc_helpers import details, error_info, status_of
from tests.test_service import route_to


def rows_request(values: list[pb.Value], seq: int = 0) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r", sequence=seq)
    req.rows.columns.extend(["id", "v"])
    for i, v in enumerate(values):
        req.rows.rows.add().values.extend([pb.Value(int=i), v])
    return req


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, by hand: deeper than protobuf lets Python build."""
    n, size = len(payload), b""
    while True:
        byte, n = n & 0x7F, n >> 7
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([number << 3 | 2]) + size + payload


def deep_value_bytes(depth: int) -> bytes:
    value = pb.Value(int=1).SerializeToString()
    list_field = pb.Value.DESCRIPTOR.fields_by_name["list"].number
    values_field = pb.ListValue.DESCRIPTOR.fields_by_name["values"].number
    for _ in range(depth):
        value = _field(list_field, _field(values_field, value))
    return value


def nested(depth: int) -> pb.Value:
    v = pb.Value(int=1)
    for _ in range(depth):
        v = pb.Value(list=pb.ListValue(values=[v]))
    return v


async def test_too_many_rows_in_one_message_is_refused_whole(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)}, limits={"max_rows_per_message": 10})
    stub = channel_factory(b)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.IngestBatch(sample.json_request("r", 0, range(11)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(status_of(e.value))
    assert info.reason == "TOO_MANY_ROWS" and info.metadata["limit"] == "10"
    assert "limits.max_rows_per_message" in e.value.details()
    assert (await stub.IngestBatch(sample.json_request("r", 1, range(10)))).accepted == 10
    assert len(sink.rows) == 10


@pytest.mark.parametrize("shape", ["rows", "columns"])
async def test_too_many_columns_is_refused_whole(sink, bridge_factory, channel_factory, shape):
    b = await bridge_factory({"r": route_to(sink)}, limits={"max_columns": 3})
    stub = channel_factory(b)
    req = pb.IngestRequest(route="r")
    if shape == "rows":
        req.rows.columns.extend(["a", "b", "c", "d"])
        req.rows.rows.add().values.extend([pb.Value(int=i) for i in range(4)])
    else:
        for name in "abcd":
            req.columns.columns.add(name=name).ints.values.append(1)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.IngestBatch(req)
    assert error_info(status_of(e.value)).reason == "TOO_MANY_COLUMNS"
    assert "4 columns; the limit is 3 (limits.max_columns)" in e.value.details()
    assert not sink.requests


async def test_a_value_over_max_value_bytes_rejects_its_row_only(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)}, limits={"max_value_bytes": "1KiB"})
    stub = channel_factory(b)
    values = [
        pb.Value(string="x" * 1024),  # at the limit: fine
        pb.Value(string="x" * 1025),
        pb.Value(string="\U0001F600" * 300),  # 300 characters, 1200 bytes of UTF-8
        pb.Value(bytes=b"\0" * 2000),
        pb.Value(list=pb.ListValue(values=[pb.Value(string="y" * 5000)])),  # inside a list, too
        pb.Value(map=pb.MapValue(fields={"k": pb.Value(string="ok")})),
    ]
    ack = await stub.IngestBatch(rows_request(values))
    assert [e.index for e in ack.errors] == [1, 2, 3, 4]
    assert all("limits.max_value_bytes" in e.reason for e in ack.errors)
    assert "1200 bytes" in ack.errors[1].reason
    assert [r["id"] for r in sink.rows] == [0, 5]


async def test_max_value_bytes_covers_columns_json_objects_and_messages(sink, bridge_factory, channel_factory,
                                                                       tmp_path):
    desc = sample.write_descriptor_set(tmp_path / "d.pb")
    b = await bridge_factory({"r": route_to(sink, options={"descriptor_set": str(desc)})},
                             limits={"max_value_bytes": "1KiB"})
    stub = channel_factory(b)
    req = pb.IngestRequest(route="r", sequence=0)
    col = req.columns.columns.add(name="s")
    col.strings.values.extend(["a", "b" * 2000, "c"])
    req.columns.columns.add(name="n").ints.values.extend([1, 2, 3])
    ack = await stub.IngestBatch(req)
    assert [e.index for e in ack.errors] == [1] and ack.accepted == 2

    req = pb.IngestRequest(route="r", sequence=1)
    req.json.objects.extend([b'{"a":1}', b'{"a":"' + b"z" * 2000 + b'"}'])
    ack = await stub.IngestBatch(req)
    assert [e.index for e in ack.errors] == [1] and ack.accepted == 1

    cls = sample.click_class()
    req = pb.IngestRequest(route="r", sequence=2)
    req.messages.type = cls.DESCRIPTOR.full_name
    req.messages.messages.extend([cls(id=1).SerializeToString(), cls(id=2, message="m" * 2000).SerializeToString()])
    ack = await stub.IngestBatch(req)
    assert [e.index for e in ack.errors] == [1] and ack.accepted == 1
    assert len(sink.rows) == 4


async def test_nesting_deeper_than_max_depth_rejects_the_row(sink, bridge_factory, channel_factory):
    # CSV: the bridge reads JSON rows to write it, so their nesting is held to the limit too.
    b = await bridge_factory({"r": route_to(sink, options={"format": "csv"})}, limits={"max_depth": 4})
    stub = channel_factory(b)
    ack = await stub.IngestBatch(rows_request([nested(4), nested(5), nested(40)]))
    assert [e.index for e in ack.errors] == [1, 2]
    assert "deeper than 4 levels (limits.max_depth)" in ack.errors[0].reason
    req = pb.IngestRequest(route="r", sequence=1)
    req.json.objects.extend([b'{"a":[[[1]]]}', b'{"a":[[[[1]]]]}', b'{"a":"[[[[[[[[","b":[1,2,3,4,5,6]}'])
    ack = await stub.IngestBatch(req)
    assert [e.index for e in ack.errors] == [1]
    assert "arrays and objects nest deeper than 4" in ack.errors[0].reason
    assert len(sink.rows) == 3


async def test_deeper_than_protobuf_parses_is_a_clear_invalid_argument(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    raw = grpc.aio.insecure_channel(f"127.0.0.1:{b.port}")
    # A row whose one value nests 200 lists: 400 message levels, past what protobuf parses.
    row = _field(pb.Row.DESCRIPTOR.fields_by_name["values"].number, deep_value_bytes(200))
    req = pb.IngestRequest(route="r")
    req.rows.columns.append("v")
    too_deep = req.SerializeToString() + _field(pb.IngestRequest.DESCRIPTOR.fields_by_name["rows"].number,
                                                _field(pb.RowBatch.DESCRIPTOR.fields_by_name["rows"].number, row))
    try:
        call = raw.unary_unary(f"/{SERVICE_NAME}/IngestBatch", request_serializer=None,
                               response_deserializer=pb.BatchAck.FromString)
        for body in (b"\xff\xff\xff", too_deep):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call(body)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(status_of(e.value)).reason == "MALFORMED_REQUEST"
    finally:
        await raw.close()
    assert not sink.requests


async def test_a_message_over_max_message_bytes_is_refused_by_grpc(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)}, limits={"max_message_bytes": "64KiB"})
    stub = channel_factory(b)
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"a":"' + b"x" * 1000 + b'"}'] * 100)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.IngestBatch(req)
    # gRPC's own check, before the message is read: its code is RESOURCE_EXHAUSTED and it names both sizes.
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in e.value.details() and "65536" in e.value.details()
    assert not sink.requests


async def test_calls_over_max_calls_are_unavailable_with_retry_info(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)}, limits={"max_calls": 2})
    stub = channel_factory(b)
    open_calls = [stub.IngestStream() for _ in range(2)]
    for i, call in enumerate(open_calls):
        await call.write(sample.json_request("r", i, range(1)))
        assert (await call.read()).accepted == 1
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.IngestBatch(sample.json_request("r", 9, range(1)))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    st = status_of(e.value)
    assert error_info(st).reason == "TOO_MANY_CALLS" and "RetryInfo" in details(st)
    await open_calls[0].done_writing()
    assert await open_calls[0].code() == grpc.StatusCode.OK
    assert (await stub.IngestBatch(sample.json_request("r", 10, range(1)))).accepted == 1
    open_calls[1].cancel()


async def test_a_caller_that_never_reads_its_acks_stops_being_read(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)}, limits={"max_pending_acks": 5})
    # A small receive window: the caller's unread acks fill it soon, as a large stream's would.
    stub = channel_factory(b, **{"grpc.http2.lookahead_bytes": 1024, "grpc.http2.bdp_probe": 0})
    route = b.routes["r"]
    call = stub.IngestStream()

    async def write_all() -> None:
        for seq in range(3000):
            await call.write(sample.json_request("r", seq, range(2)))
        await call.done_writing()

    writer = asyncio.create_task(write_all())
    taken = -1
    for _ in range(50):  # until the bridge stops taking requests (bounded: 10 s)
        await asyncio.sleep(0.2)
        if route.stats.requests == taken:
            break
        taken = route.stats.requests
    # What the window holds, five acks waiting to be sent and one request waiting for room: no more.
    assert taken < 300, taken
    acks = [a async for a in call]
    await writer
    assert [a.sequence for a in acks] == list(range(3000))
    assert len(sink.rows) == 6000


@pytest.mark.parametrize("trickle", [False, True])
async def test_a_connection_that_never_finishes_its_handshake_is_closed(sink, bridge_factory, trickle):
    b = await bridge_factory({"r": route_to(sink)}, limits={"handshake_timeout": "500ms"})
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    loop = asyncio.get_running_loop()
    s = socket.create_connection(("127.0.0.1", b.port))
    s.setblocking(False)
    started = time.monotonic()
    closed_after = None
    try:
        for i in range(100):  # bounded: at most 10 s
            if trickle and i < len(preface):
                s.send(preface[i:i + 1])  # one byte at a time, never the whole preface
            try:
                data = await asyncio.wait_for(loop.sock_recv(s, 1024), 0.1)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if data == b"":
                closed_after = time.monotonic() - started
                break
    finally:
        s.close()
    assert closed_after is not None and closed_after < 5.0
