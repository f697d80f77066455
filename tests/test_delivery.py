"""Delivery against a target that fails on purpose: every row of the status table and every retry rule."""

from __future__ import annotations

import asyncio
import random
import time
from email.utils import formatdate

import grpc
import orjson
import pytest
import zstandard
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bridge.dev import sample
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.model.config import DeliveryConfig
from bridge.proto import pb
from bridge.send.retry import RetryPolicy, parse_retry_after
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until


def route(t, **delivery) -> dict:
    return {"dialect": "http", "url": t.url + "/in", "batch": {"linger": "0s"},
            "delivery": fast_delivery(**{"max_elapsed": "400ms", **delivery})}


async def one_batch(bridge_factory, channel_factory, t, req=None, deadline=None, **delivery):
    b = await bridge_factory({"r": route(t, **delivery)})
    return await channel_factory(b).IngestBatch(req or sample.json_request("r", 9, range(3)), timeout=deadline)


TABLE = [
    # status, gRPC code, retried by the bridge, RetryInfo
    (400, "INVALID_ARGUMENT", False, False),
    (422, "INVALID_ARGUMENT", False, False),
    (401, "UNAUTHENTICATED", False, False),
    (403, "PERMISSION_DENIED", False, False),
    (404, "NOT_FOUND", False, False),
    (409, "ABORTED", False, False),
    (412, "FAILED_PRECONDITION", False, False),
    (418, "INVALID_ARGUMENT", False, False),
    (429, "RESOURCE_EXHAUSTED", True, True),
    (408, "UNAVAILABLE", True, True),
    (502, "UNAVAILABLE", True, True),
    (503, "UNAVAILABLE", True, True),
    (504, "UNAVAILABLE", True, True),
    (500, "INTERNAL", True, True),
    (501, "UNIMPLEMENTED", False, False),
    (599, "UNAVAILABLE", True, True),
]


@pytest.mark.parametrize(("http_status", "code", "retried", "retry_info"), TABLE)
async def test_the_status_table(target, bridge_factory, channel_factory, http_status, code, retried, retry_info):
    target.script({"status": http_status, "times": 1000})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await one_batch(bridge_factory, channel_factory, target)
    assert ei.value.code() == getattr(grpc.StatusCode, code)
    st = status_of(ei.value)
    info = error_info(st)  # exactly one
    assert info.domain == "ingest-bridge" and info.reason.isupper()
    assert (info.metadata["http_status"], info.metadata["route"], info.metadata["sequence"]) == (
        str(http_status), "r", "9")
    d = details(st)
    assert ("RetryInfo" in d) == retry_info
    assert (len(target.requests) > 1) == retried
    if http_status == 500:
        assert len(target.requests) == 3, "500 within max_500_attempts"
    if http_status == 404:
        assert d["ResourceInfo"][0].resource_name == target.url + "/in"
    assert d["BatchAck"][0].rejected == 3


async def test_a_transient_failure_that_clears_is_ok(target, bridge_factory, channel_factory):
    target.script({"status": 503, "times": 2})
    ack = await one_batch(bridge_factory, channel_factory, target)
    assert ack.accepted == 3 and len(target.requests) == 3 and len(target.rows) == 3


@pytest.mark.parametrize(("step", "reason"), [({"reset": True}, "UPSTREAM_UNREACHABLE"),
                                              ({"delay": 1.0}, "UPSTREAM_TIMEOUT")],
                         ids=["connection-reset", "request-timeout"])
async def test_resets_and_timeouts_are_retried_then_unavailable(target, bridge_factory, channel_factory, step, reason):
    target.script({**step, "times": 1000})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await one_batch(bridge_factory, channel_factory, target, timeout="150ms", max_elapsed="600ms")
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    st = status_of(ei.value)
    # A connection dropped without an answer, and no answer in time, are told apart.
    assert error_info(st).reason == reason
    assert "RetryInfo" in details(st) and len(target.requests) >= 2


async def test_connection_refused_is_unavailable(bridge_factory, channel_factory, unused_tcp_port):
    b = await bridge_factory({"r": {"dialect": "http", "url": f"http://127.0.0.1:{unused_tcp_port}/in",
                                    "batch": {"linger": "0s"}, "delivery": fast_delivery(max_elapsed="200ms")}})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await channel_factory(b).IngestBatch(sample.json_request("r", 1, range(1)))
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(status_of(ei.value)).reason == "UPSTREAM_UNREACHABLE"


async def test_a_slow_body_is_still_delivered(target, bridge_factory, channel_factory):
    target.script({"slow": 0.3})
    ack = await one_batch(bridge_factory, channel_factory, target, max_elapsed="3s")
    assert ack.accepted == 3 and len(target.requests) == 1


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_is_a_floor(target, bridge_factory, channel_factory, form):
    value = "1" if form == "seconds" else formatdate(time.time() + 2, usegmt=True)
    target.script({"status": 429, "headers": {"Retry-After": value}})
    t0 = time.monotonic()
    ack = await one_batch(bridge_factory, channel_factory, target, max_elapsed="5s")
    assert ack.accepted == 3 and len(target.requests) == 2
    assert time.monotonic() - t0 >= 0.95


async def test_retry_after_past_the_budget_goes_to_the_caller(target, bridge_factory, channel_factory):
    target.script({"status": 503, "headers": {"Retry-After": "120"}})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await one_batch(bridge_factory, channel_factory, target)
    assert len(target.requests) == 1
    assert details(status_of(ei.value))["RetryInfo"][0].retry_delay.seconds == 120


async def test_never_retried_past_the_callers_deadline(target, bridge_factory, channel_factory):
    target.script({"status": 503, "times": 10_000})
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await one_batch(bridge_factory, channel_factory, target, deadline=0.4, max_elapsed="30s")
    # When the next wait no longer fits in the deadline, the caller hears what the target said.
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "RetryInfo" in details(status_of(ei.value))
    await asyncio.sleep(0.3)
    attempts = len(target.requests)
    await asyncio.sleep(0.3)
    assert len(target.requests) == attempts, "no attempt after the caller's deadline"
    assert time.monotonic() - t0 < 2


async def test_max_attempts(target, bridge_factory, channel_factory):
    target.script({"status": 503, "times": 1000})
    with pytest.raises(grpc.aio.AioRpcError):
        await one_batch(bridge_factory, channel_factory, target, max_attempts=3, max_elapsed="10s")
    assert len(target.requests) == 3


def test_backoff_is_exponential_with_full_jitter_and_capped():
    cfg = DeliveryConfig(initial_backoff=1.0, multiplier=2.0, max_backoff=30.0)
    policy = RetryPolicy(cfg, random.Random(7))
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (20, 30)]:
        draws = [policy.backoff(attempt) for _ in range(400)]
        assert min(draws) >= 0 and max(draws) <= ceiling
        assert max(draws) > 0.9 * ceiling and min(draws) < 0.1 * ceiling, "full jitter spans [0, ceiling]"
    assert policy.delay(1, retry_after=5.0) >= 5.0


def test_retry_after_parsing():
    now = 1_800_000_000.0
    assert parse_retry_after("3", now) == 3
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now) == pytest.approx(10, abs=1)
    assert parse_retry_after(formatdate(now - 10, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None


async def test_413_splits_until_a_single_row_is_too_large(target, bridge_factory, channel_factory):
    target.script({"max_rows": 2})
    req = pb.IngestRequest(route="r", sequence=1)
    req.json.objects.extend(orjson.dumps({"id": i}) for i in range(7))
    ack = await one_batch(bridge_factory, channel_factory, target, req)
    assert (ack.accepted, ack.rejected) == (7, 0)
    assert sorted(r["id"] for r in target.rows) == list(range(7))
    assert max(len(c.rows) for c in target.requests if c.rows) <= 2

    target.script({"max_rows": 0})  # now every row alone is too large
    target.rows.clear()
    ack = await one_batch(bridge_factory, channel_factory, target, req)
    assert ack.accepted == 0 and [e.index for e in ack.errors] == list(range(7))
    assert all(e.reason.startswith("ROW_TOO_LARGE") for e in ack.errors)


async def test_413_names_only_the_rows_that_are_too_large(target, bridge_factory, channel_factory):
    # A body over 500 bytes is refused: one big row among small ones.
    class Big(FaultyTarget):
        async def _answer(self, request):
            cap = await self.capture(request)
            if len(cap.body) > 500:
                return web.json_response({"message": "too large"}, status=413)
            self.rows += [orjson.loads(x) for x in cap.body.splitlines() if x]
            return web.json_response({})

    big = Big()
    await big.start()
    try:
        req = pb.IngestRequest(route="r", sequence=1)
        req.json.objects.extend([b'{"id": 0}', b'{"id": 1, "pad": "' + b"x" * 600 + b'"}', b'{"id": 2}', b'{"id": 3}'])
        ack = await one_batch(bridge_factory, channel_factory, big, req)
        assert (ack.accepted, [e.index for e in ack.errors]) == (3, [1])
        assert sorted(r["id"] for r in big.rows) == [0, 2, 3]
    finally:
        await big.stop()


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
async def test_compression_on_the_wire(target, bridge_factory, channel_factory, encoding):
    r = route(target)
    r["options"] = {"compression": encoding}
    b = await bridge_factory({"r": r})
    await channel_factory(b).IngestBatch(sample.columns_request("r", 1, range(100)))
    (cap,) = target.requests
    assert cap.headers["Content-Encoding"] == encoding
    if encoding == "zstd":
        assert zstandard.ZstdDecompressor().decompressobj().decompress(cap.raw) == cap.body
    assert len(target.rows) == 100


async def test_no_more_requests_in_flight_than_the_concurrency_limit(target, bridge_factory, channel_factory):
    target.script({"stall": True, "times": 50})
    r = route(target, concurrency=2, max_elapsed="30s", timeout="30s")
    b = await bridge_factory({"r": r})
    stub = channel_factory(b)
    calls = [asyncio.ensure_future(stub.IngestBatch(sample.json_request("r", i, range(i * 10, i * 10 + 10))))
             for i in range(6)]
    await wait_until(lambda: target.in_flight == 2, what="two requests in flight")
    target.release()
    acks = await asyncio.gather(*calls)
    assert sum(a.accepted for a in acks) == 60 and target.peak_in_flight == 2


async def test_ingest_aborts_on_the_first_batch_that_fails_for_good(target, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route(target)})
    stub = channel_factory(b)

    async def gen():
        yield sample.json_request("r", 0, range(0, 5))
        await wait_until(lambda: len(target.rows) == 5, what="the first batch delivered")
        target.script({"status": 400})
        yield sample.json_request("", 1, range(5, 10))
        await wait_until(lambda: len(target.requests) == 2, what="the second batch refused")
        yield sample.json_request("", 2, range(10, 15))

    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.Ingest(gen())
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    st = status_of(ei.value)
    assert error_info(st).metadata["delivered_sequences"] == "0"
    (summary,) = details(st)["IngestSummary"]
    assert (summary.batches, summary.accepted) == (1, 5)
    assert sorted(r["id"] for r in target.rows) == list(range(5))


async def test_ingest_stream_carries_on_after_a_failed_batch(target, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route(target)})
    target.script({"status": 422})

    async def gen():
        for seq in range(3):
            yield sample.json_request("r" if seq == 0 else "", seq, range(seq * 2, seq * 2 + 2))
            # One batch per message: the next goes once this one has reached the target.
            await wait_until(lambda s=seq: len(target.requests) > s, what=f"message {seq} sent")

    acks = [a async for a in channel_factory(b).IngestStream(gen())]
    assert [(a.sequence, a.status.code, a.accepted) for a in acks] == [(0, 3, 0), (1, 0, 2), (2, 0, 2)]
    assert error_info(acks[0].status).metadata["http_status"] == "422"


async def test_buffered_bytes_stay_bounded_while_the_target_stalls_and_nothing_is_lost(
        target, bridge_factory, channel_factory):
    target.script({"stall": True, "times": 10_000})
    cap_route, cap_total = 256 * 1024, 512 * 1024
    b = await bridge_factory(
        {"r": {**route(target, concurrency=2, max_elapsed="60s", timeout="60s"),
               "batch": {"linger": "0s", "max_rows": 500, "max_buffered_bytes": cap_route}}},
        limits={"max_buffered_bytes": cap_total})
    stub = channel_factory(b)
    payload_rows, messages, callers = 100, 15, 20
    acked = 0

    async def caller(c: int) -> None:
        nonlocal acked

        async def gen():
            for m in range(messages):
                lo = (c * messages + m) * payload_rows
                yield sample.columns_request("r" if m == 0 else "", m, range(lo, lo + payload_rows))

        async for ack in stub.IngestStream(gen()):
            acked += ack.accepted

    tasks = [asyncio.create_task(caller(c)) for c in range(callers)]
    health_channel = grpc.aio.insecure_channel(f"127.0.0.1:{b.port}")
    health = health_pb2_grpc.HealthStub(health_channel)
    check = health_pb2.HealthCheckRequest(service="ingestbridge.v1.route/r")

    async def health_is(status) -> bool:
        return (await health.Check(check)).status == status

    await wait_until(lambda: health_is(health_pb2.HealthCheckResponse.NOT_SERVING), what="full: pushing back")
    route_budget = b.routes["r"].budget
    one = sample.columns_request("r", 0, range(payload_rows))
    message_bytes = b.routes["r"].charge(one, len(one.SerializeToString()))
    assert route_budget.used > 0 and acked == 0
    assert route_budget.peak <= cap_route + message_bytes
    assert b.budget.peak <= cap_total + message_bytes
    target.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    await wait_until(lambda: health_is(health_pb2.HealthCheckResponse.SERVING), what="room again: serving")
    await health_channel.close()
    assert acked == callers * messages * payload_rows
    assert len(target.rows) == acked and len({r["id"] for r in target.rows}) == acked
    assert route_budget.used == 0
