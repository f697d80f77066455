"""Delivery promises under an adversarial target: whole answers, order, deadlines, cancellation, counting.

Each test drives a real bridge over gRPC against a scripted aiohttp target and checks what the target
received and what each caller was told.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import orjson
import pytest
from aiohttp import web

from bridge.dev import sample
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.proto import pb
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until


def http_route(t, batch=None, **delivery) -> dict:
    return {"dialect": "http", "url": t.url + "/in", "batch": {"linger": "0s", **(batch or {})},
            "delivery": fast_delivery(**delivery)}


def axiom_route(t, **batch) -> dict:
    return {"dialect": "axiom", "url": t.url, "target": "logs", "auth": {"token": "xaat-test"},
            "options": {"compression": "none"}, "batch": {"linger": "0s", **batch}, "delivery": fast_delivery()}


def ids(rows) -> list:
    return [r["id"] for r in rows]


# -- 1. whole answers -------------------------------------------------------------------------------

def axiom_failures(n: int, pad: int) -> dict:
    return {"ingested": 0, "failed": n, "processedBytes": 1,
            "failures": [{"timestamp": "2026-01-01T00:00:00Z", "error": "bad field " + "x" * pad} for _ in range(n)]}


@pytest.mark.parametrize("pad", [40, 120, 220], ids=["75KB", "155KB", "255KB"])
async def test_a_large_answer_is_read_whole(target, bridge_factory, channel_factory, pad):
    body = axiom_failures(1000, pad)
    target.script({"status": 200, "body": body})
    b = await bridge_factory({"r": axiom_route(target)})
    ack = await channel_factory(b).IngestBatch(sample.json_request("r", 1, range(1000)))
    assert len(orjson.dumps(body)) > pad * 1000
    assert (ack.accepted, ack.rejected) == (0, 1000)
    assert ack.upstream["failed"] == "1000"


async def test_a_slow_answer_is_read_whole(target, bridge_factory, channel_factory):
    target.script({"status": 200, "slow": 1.0, "body": {
        "ingested": 1, "failed": 1, "failures": [{"timestamp": "x", "error": "no"}]}})
    b = await bridge_factory({"r": axiom_route(target)})
    ack = await channel_factory(b).IngestBatch(sample.json_request("r", 1, range(2)))
    assert (ack.accepted, ack.rejected) == (1, 1)


async def test_an_answer_over_the_limit_is_never_a_success(target, bridge_factory, channel_factory):
    # Over the 4 MiB the bridge reads: what the target took is unknown, so the caller must not hear "accepted".
    target.script({"status": 200, "body": axiom_failures(5, 1_000_000)})
    b = await bridge_factory({"r": axiom_route(target)})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await channel_factory(b).IngestBatch(sample.json_request("r", 1, range(5)))
    assert ei.value.code() == grpc.StatusCode.UNKNOWN
    assert error_info(status_of(ei.value)).reason == "UPSTREAM_ANSWER_TOO_LARGE"
    assert len(target.requests) == 1, "not retried: a resend could duplicate what the target took"


@pytest.mark.parametrize("body", [b"not json", b'{"ingested": 1'], ids=["not-json", "cut"])
async def test_an_answer_the_dialect_cannot_read_is_never_a_success(bridge_factory, channel_factory, body):
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, status=200, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        t = type("T", (), {"url": f"http://127.0.0.1:{port}"})
        b = await bridge_factory({"r": axiom_route(t)})
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await channel_factory(b).IngestBatch(sample.json_request("r", 1, range(3)))
        assert ei.value.code() == grpc.StatusCode.UNKNOWN
        assert error_info(status_of(ei.value)).reason == "UPSTREAM_ANSWER_UNREADABLE"
    finally:
        await runner.cleanup()


# -- 2. order of ops --------------------------------------------------------------------------------

def kv(*rows, ops) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r", sequence=1)
    req.rows.columns.extend(["k", "v"])
    for (k, v), op in zip(rows, ops, strict=True):
        r = req.rows.rows.add(op=op)
        r.values.add(string=k)
        r.values.add(int=v)
    return req


ORDERED = [
    ("feldera", {"dialect": "feldera", "target": "t", "options": {"pipeline": "p"}},
     lambda rows: [(next(iter(r)), r[next(iter(r))]["k"]) for r in rows]),
    ("timeplus-changelog", {"dialect": "timeplus", "target": "t", "auth": {"api_key": "k"},
                            "options": {"format": "ndjson", "changelog": True}},
     lambda rows: [("insert" if r["_tp_delta"] == 1 else "delete", r["k"]) for r in rows]),
]


@pytest.mark.parametrize(("name", "cfg", "read"), ORDERED, ids=[o[0] for o in ORDERED])
async def test_ops_reach_the_target_in_order_across_a_retry(target, bridge_factory, channel_factory, name, cfg, read):
    target.script({"status": 503})
    r = {**cfg, "url": target.url, "batch": {"linger": "0s", "max_rows": 2},
         "delivery": fast_delivery(concurrency=4)}
    b = await bridge_factory({"r": r})
    req = kv(("a", 1), ("b", 2), ("a", 1), ("b", 2), ("c", 3), ("d", 4), ops=[0, 0, 1, 1, 0, 0])
    ack = await channel_factory(b).IngestBatch(req)
    assert ack.accepted == 6
    assert read(target.rows) == [("insert", "a"), ("insert", "b"), ("delete", "a"), ("delete", "b"),
                                 ("insert", "c"), ("insert", "d")]


async def test_later_batches_of_a_request_are_not_sent_after_one_fails_on_an_ordered_route(
        target, bridge_factory, channel_factory):
    target.script({"status": 400})
    r = {**ORDERED[0][1], "url": target.url, "batch": {"linger": "0s", "max_rows": 2},
         "delivery": fast_delivery(concurrency=4)}
    b = await bridge_factory({"r": r})
    req = kv(("a", 1), ("b", 2), ("a", 1), ("b", 2), ops=[0, 0, 1, 1])
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await channel_factory(b).IngestBatch(req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (ack,) = details(status_of(ei.value))["BatchAck"]
    assert (ack.accepted, ack.rejected) == (0, 4)
    assert target.rows == [], "the deletes after the refused inserts were held back"


# -- 3. Ingest reports only what the target took -------------------------------------------------------

async def test_ingest_reports_only_delivered_sequences_and_sends_nothing_after(
        target, bridge_factory, channel_factory, caplog):
    caplog.set_level(logging.DEBUG)
    target.script({"status": 200}, {"delay": 1.0, "status": 400}, {"status": 400})  # seq 2: 400 after 1 s
    b = await bridge_factory({"r": http_route(target, {"linger": "300ms"}, concurrency=1, max_elapsed="5s")})

    async def gen():
        for seq in (1, 2, 3):
            yield sample.json_request("r", seq, range(seq * 10, seq * 10 + 2))
            await asyncio.sleep(0.35)

    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await channel_factory(b).Ingest(gen())
    ended = time.monotonic()
    st = status_of(ei.value)
    assert error_info(st).metadata["delivered_sequences"] == "1"
    (summary,) = details(st)["IngestSummary"]
    assert (summary.batches, summary.accepted) == (1, 2)
    assert [a.sequence for a in summary.failed] == []
    await asyncio.sleep(1.0)
    late = [c for c in target.requests if b'"id":30' in c.body]
    assert late == [], "seq 3 was withdrawn, not sent after the call ended"
    assert ids(target.rows) == [10, 11]
    assert time.monotonic() - ended >= 1.0
    assert "Exception in callback" not in caplog.text and "never retrieved" not in caplog.text


# -- 4. each caller's deadline in a merged batch ---------------------------------------------------------

async def test_a_callers_rows_leave_a_shared_batch_at_its_deadline(target, bridge_factory, channel_factory):
    target.script({"status": 503, "times": 20})  # about 3.5 s of retries: well past A's deadline
    b = await bridge_factory({"r": http_route(target, {"linger": "200ms"}, initial_backoff="300ms",
                                              max_backoff="400ms", max_elapsed="30s")})
    stub = channel_factory(b)
    a = asyncio.ensure_future(stub.IngestBatch(sample.json_request("r", 1, range(0, 1)), timeout=1.2))
    bb = asyncio.ensure_future(stub.IngestBatch(sample.json_request("r", 2, range(100, 101)), timeout=20))
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await a
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    ack = await bb
    assert ack.accepted == 1
    assert len(target.requests[0].rows or orjson.loads(b"[" + target.requests[0].body.replace(b"\n", b",")[:-1]
                                                         + b"]")) == 2, "the two callers shared a batch"
    assert ids(target.rows) == [100], "A's row was not delivered after A's deadline"


# -- 5. cancelled streams ----------------------------------------------------------------------------------

async def test_a_cancelled_stream_leaves_nothing_behind(target, bridge_factory, channel_factory, caplog):
    caplog.set_level(logging.DEBUG)
    target.script({"status": 503, "times": 3})
    b = await bridge_factory({"r": http_route(target, {"linger": "0s"}, initial_backoff="300ms",
                                              max_backoff="300ms", max_elapsed="30s")})
    stub = channel_factory(b)
    sent = asyncio.Event()

    async def gen():
        yield sample.json_request("r", 1, range(0, 2))
        sent.set()
        await asyncio.sleep(30)

    call = stub.IngestStream(gen())
    reader = asyncio.ensure_future(call.read())
    await asyncio.wait_for(sent.wait(), 5)
    await wait_until(lambda: len(target.requests) >= 1, what="the first attempt")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await asyncio.sleep(1.5)  # past the retries the batch would have made
    assert target.rows == [], "a cancelled caller's batch is not delivered later"
    assert len(target.requests) <= 2
    assert b.routes["r"].budget.used == 0
    assert "never retrieved" not in caplog.text and "AbortError" not in caplog.text


# -- 6. the target's answer, not DEADLINE_EXCEEDED, when its wait does not fit ------------------------------

async def test_a_retry_after_past_the_deadline_is_the_targets_answer(target, bridge_factory, channel_factory):
    target.script({"status": 429, "headers": {"Retry-After": "10"}})
    b = await bridge_factory({"r": http_route(target, max_elapsed="60s")})
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await channel_factory(b).IngestBatch(sample.json_request("r", 1, range(3)), timeout=5)
    assert time.monotonic() - t0 < 4
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details(status_of(ei.value))["RetryInfo"][0].retry_delay.seconds == 10


# -- 7. counting in merged batches ------------------------------------------------------------------------

class Poison(FaultyTarget):
    """Refuses (400) any body that holds a row with "poison" in it; keeps the others."""

    async def _answer(self, request):
        cap = await self.capture(request)
        if b"poison" in cap.body:
            return web.json_response({"message": "bad row"}, status=400)
        rows = [orjson.loads(x) for x in cap.body.splitlines() if x]
        self._keep(cap, rows)
        return web.json_response({})


async def test_a_400_on_a_merged_batch_fails_only_the_request_that_caused_it(bridge_factory, channel_factory):
    t = Poison()
    await t.start()
    try:
        b = await bridge_factory({"r": http_route(t, {"linger": "300ms"})})
        stub = channel_factory(b)
        good = sample.json_request("r", 1, range(0, 3))
        bad = pb.IngestRequest(route="r", sequence=2)
        bad.json.objects.extend([b'{"id": 10}', b'{"id": 11, "x": "poison"}'])
        other = sample.json_request("r", 3, range(20, 22))
        results = await asyncio.gather(stub.IngestBatch(good), stub.IngestBatch(bad), stub.IngestBatch(other),
                                       return_exceptions=True)
        assert results[0].accepted == 3 and results[2].accepted == 2
        assert isinstance(results[1], grpc.aio.AioRpcError)
        assert results[1].code() == grpc.StatusCode.INVALID_ARGUMENT
        assert sorted(ids(t.rows)) == [0, 1, 2, 20, 21]
        assert b"poison" in t.requests[0].body and len(t.requests) > 1, "merged first, then split"
    finally:
        await t.stop()


async def test_unnamed_rejections_are_not_charged_to_one_request(target, bridge_factory, channel_factory):
    # Axiom refuses 2 of 6 rows of a merged batch and names none (no timestamps match).
    target.script({"status": 200, "body": {"ingested": 4, "failed": 2,
                                            "failures": [{"timestamp": "1999-01-01T00:00:00Z", "error": "no"}] * 2}})
    b = await bridge_factory({"r": axiom_route(target, linger="300ms")})
    stub = channel_factory(b)
    a, c = await asyncio.gather(stub.IngestBatch(sample.json_request("r", 1, range(0, 3))),
                                stub.IngestBatch(sample.json_request("r", 2, range(3, 6))))
    assert len(target.requests) == 1
    # Neither caller can be told which of its rows were refused: neither is told all of them were taken.
    assert a.accepted < 3 and c.accepted < 3
    assert a.upstream["unnamed_rejected"] == "2" and c.upstream["unnamed_rejected"] == "2"
    assert a.upstream["failed"] == "2"


@pytest.mark.parametrize(("dialect", "key"), [("proton", "idempotent_id"), ("obsrv", "msgid")])
async def test_a_request_sent_in_two_batches_names_both_ids(target, bridge_factory, channel_factory, dialect, key):
    if dialect == "proton":
        r = {"dialect": "timeplus", "url": target.url, "target": "s", "options": {"api": "proton"}}
    else:
        r = {"dialect": "obsrv", "url": target.url, "target": "d"}
    r.update(batch={"linger": "0s", "max_rows": 2}, delivery=fast_delivery())
    b = await bridge_factory({"r": r})
    ack = await channel_factory(b).IngestBatch(sample.json_request("r", 1, range(4)))
    assert ack.accepted == 4 and len(target.requests) == 2
    sent = [c.headers.get("x-timeplus-idempotent-id") if dialect == "proton"
            else orjson.loads(c.body)["params"]["msgid"] for c in target.requests]
    assert sorted(ack.upstream[key].split(",")) == sorted(sent)
