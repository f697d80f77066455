"""Stopping a bridge (SIGTERM): it drains, and nothing it could not deliver is reported as refused."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bridge.proto import pb
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until


def _req(seq: int, n: int = 5, route: str = "r") -> pb.IngestRequest:
    req = pb.IngestRequest(route=route, sequence=seq)
    req.json.objects.extend(b'{"id":%d}' % (seq * 100 + i) for i in range(n))
    return req


def _assert_shutting_down(err: grpc.aio.AioRpcError) -> None:
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    st = status_of(err)
    assert error_info(st).reason == "BRIDGE_SHUTTING_DOWN"
    assert details(st).get("RetryInfo"), "retryable: RetryInfo says when"


async def test_stop_answers_what_was_delivered_and_ends_the_rest_unavailable(target, bridge_factory,
                                                                            channel_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
                                    "delivery": {"concurrency": 1, "timeout": "30s"}}})
    stub = channel_factory(b)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{b.port}")
    health = health_pb2_grpc.HealthStub(channel)
    # The first batch is held by the target past the grace; the ones behind it wait in the queue.
    target.script({"stall": True})
    call = stub.IngestStream()
    for seq in range(4):
        await call.write(_req(seq))
    await wait_until(lambda: target.in_flight == 1)
    stopping = asyncio.create_task(b.stop(grace=0.5))
    await wait_until(lambda: b.service.draining.is_set())
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
    await channel.close()
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING, "NOT_SERVING at once"
    with pytest.raises(grpc.aio.AioRpcError) as new_call:
        await stub.IngestBatch(_req(9))
    _assert_shutting_down(new_call.value)
    acks = []
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        async for ack in call:
            acks.append(ack)
    _assert_shutting_down(ended.value)
    assert acks == [], "no batch was delivered, none is answered as refused"
    await stopping
    text = b.metrics.render().decode()
    counted = [line for line in text.splitlines()
               if line.startswith(("ingest_bridge_rejected_rows_total{",
                                   'ingest_bridge_sent_rows_total{outcome="failed"')) and not line.endswith(" 0.0")]
    assert counted == [], "rows the bridge could not deliver in time are not counted as rejected or failed"


async def test_batches_delivered_within_the_grace_are_acknowledged(target, bridge_factory, channel_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
                                    "delivery": {"concurrency": 1}}})
    stub = channel_factory(b)
    target.script(*({"delay": 0.2} for _ in range(3)))
    call = stub.IngestStream()
    for seq in range(3):
        await call.write(_req(seq))
    # All three taken in (a message not yet read when the drain starts is the caller's to resend), one on the wire.
    await wait_until(lambda: b.routes["r"].stats.requests == 3 and target.in_flight == 1)
    stopping = asyncio.create_task(b.stop(grace=10.0))
    acks = []
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        async for ack in call:
            acks.append(ack)
    _assert_shutting_down(ended.value)  # the caller had not said it was done: it may have more to send
    assert [(a.sequence, a.accepted, a.rejected, a.status.code) for a in acks] == [(s, 5, 0, 0) for s in range(3)]
    assert sorted(r["id"] for r in target.rows) == sorted(s * 100 + i for s in range(3) for i in range(5))
    await stopping


async def test_a_spooled_route_acknowledges_what_is_fsynced_and_stops(target, bridge_factory, channel_factory,
                                                                       tmp_path):
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
                                    "spool": {"dir": str(tmp_path)}}})
    stub = channel_factory(b)
    target.script({"stall": True})
    call = stub.IngestStream()
    for seq in range(3):
        await call.write(_req(seq))
    acks = [await call.read() for _ in range(3)]
    assert [(a.sequence, a.accepted) for a in acks] == [(0, 5), (1, 5), (2, 5)], "acknowledged once on disk"
    stopping = asyncio.create_task(b.stop(grace=0.3))
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await call.read()
    _assert_shutting_down(ended.value)
    await stopping
    assert list(tmp_path.glob("r/seg-*.wal")), "what was not delivered stays in the log for the next start"


async def test_the_client_stream_call_is_refused_retryably_while_draining(target, bridge_factory, channel_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"}}})
    stub = channel_factory(b)
    target.script({"stall": True})
    call = stub.Ingest()
    await call.write(_req(0))
    await wait_until(lambda: target.in_flight == 1)
    stopping = asyncio.create_task(b.stop(grace=0.3))
    await wait_until(lambda: b.service.draining.is_set())
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await call.write(_req(1))
        await call.done_writing()
        await call
    _assert_shutting_down(ended.value)
    await stopping


async def test_a_unary_call_cut_at_the_grace_is_unavailable_with_no_row_refused(target, bridge_factory,
                                                                                channel_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"}}})
    stub = channel_factory(b)
    target.script({"stall": True})
    call = asyncio.ensure_future(stub.IngestBatch(_req(0)))
    await wait_until(lambda: target.in_flight == 1)
    await b.stop(grace=0.2)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await call
    _assert_shutting_down(ended.value)
    (ack,) = details(status_of(ended.value))["BatchAck"]
    assert (ack.accepted, ack.rejected) == (0, 0), "not delivered, and not refused either"
