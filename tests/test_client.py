"""bridge.client: batching, typed values, backpressure and resending after a dropped stream."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import pytest
import yaml
from google.rpc import code_pb2

from bridge.client import Connection, IngestClient, Reconnect, sdk, to_value
from bridge.config import parse_config
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.ingest.server import Bridge
from bridge.proto import pb
from tests.waiting import wait_until


async def test_json_rows_are_batched_and_all_acknowledged(sink, bridge_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}})
    async with IngestClient(f"127.0.0.1:{b.port}", "r", batch_rows=1000, window=2) as client:
        await client.add_many({"id": i, "tags": ["a", i]} for i in range(2500))
    assert (client.totals.batches, client.accepted, client.rejected) == (3, 2500, 0)
    assert sorted(r["id"] for r in sink.rows) == list(range(2500))
    assert sink.rows[0]["tags"] == ["a", sink.rows[0]["id"]]


async def test_typed_rows_carry_python_values(sink, bridge_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}})
    when = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    async with IngestClient(f"127.0.0.1:{b.port}", "r", columns=["id", "at", "raw", "meta", "big", "none"]) as c:
        await c.add((1, when, b"\x01", {"k": [1.5, True]}, 2**64 - 1, None))
        with pytest.raises(ValueError, match="2 values for 6 columns"):
            await c.add((1, 2))
    assert sink.rows == [{"id": 1, "at": "2026-01-02T03:04:05.123Z", "raw": "AQ==", "meta": {"k": [1.5, True]},
                          "big": 2**64 - 1, "none": None}]
    with pytest.raises(TypeError):
        to_value(object())


async def test_rejections_and_failures_are_counted(sink, bridge_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"},
                                    "columns": {"id": "int"}}})
    async with IngestClient(f"127.0.0.1:{b.port}", "r", batch_rows=2) as c:
        await c.add_many([{"id": 1}, {"id": "x"}, {"id": 3}])
    assert (c.accepted, c.rejected, c.failed) == (2, 1, [])
    assert c.totals.row_errors[0][1].index == 1
    async with IngestClient(f"127.0.0.1:{b.port}", "nope") as c:
        await c.add({"id": 1})
    assert c.failed[0].status.code == code_pb2.NOT_FOUND and c.rejected == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_batches_not_acknowledged_are_resent_after_the_bridge_comes_back():
    target = FaultyTarget()
    await target.start()
    port = _free_port()
    doc = {"listen": f"127.0.0.1:{port}", "http": None, "routes": {"r": {
        "dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
        "delivery": {"timeout": "30s", "max_elapsed": "30s"}}}}
    config = parse_config(yaml.safe_dump(doc), env={})
    target.script({"stall": True, "times": 3})
    first = Bridge(config, http=False)
    await first.start()
    second = None
    try:
        async with IngestClient(f"127.0.0.1:{port}", "r", batch_rows=10) as c:
            await c.add_many({"id": i} for i in range(30))
            await c.flush()
            await wait_until(lambda: target.in_flight >= 3, what="three requests at the target")
            # The bridge goes away without answering; a new one takes its place.
            await first.server.stop(0)
            await first.transport.close()
            target.steps.clear()
            target.release()
            second = Bridge(config, http=False)
            await second.start()
        assert c.accepted == 30 and c.totals.resent == 3
        assert {r["id"] for r in target.rows} == set(range(30)), "nothing acknowledged is lost"
    finally:
        for b in (first, second):
            if b is not None:
                await b.stop(grace=0.5)
        await target.stop()


async def test_a_batch_answered_unavailable_is_sent_again_until_acknowledged(bridge_factory):
    target = FaultyTarget()
    await target.start()
    try:
        b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
                                        "delivery": {"max_attempts": 1, "initial_backoff": "10ms"}}})
        target.script({"status": 503}, {"status": 503})
        async with IngestClient(f"127.0.0.1:{b.port}", "r", batch_rows=5,
                                reconnect=Reconnect(initial=0.01, max_backoff=0.05)) as c:
            await c.add_many({"id": i} for i in range(5))
        assert (c.accepted, c.rejected, c.failed) == (5, 0, []), "the bridge's UNAVAILABLE is not a refusal"
        assert c.totals.resent >= 2
        assert sorted(r["id"] for r in target.rows) == list(range(5))
    finally:
        await target.stop()


async def test_a_retryable_ack_is_final_once_the_reconnect_budget_is_used_up(bridge_factory):
    target = FaultyTarget()
    await target.start()
    try:
        b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
                                        "delivery": {"max_attempts": 1}}})
        target.script(*({"status": 503} for _ in range(3)))
        async with IngestClient(f"127.0.0.1:{b.port}", "r", batch_rows=5, retries=2,
                                reconnect=Reconnect(initial=0.01, max_backoff=0.05)) as c:
            await c.add_many({"id": i} for i in range(5))
        assert c.accepted == 0 and len(c.failed) == 1
        assert c.failed[0].status.code == code_pb2.UNAVAILABLE and target.rows == []
    finally:
        await target.stop()


async def test_several_bridges_behind_one_target_share_streams_and_take_over(sink, bridge_factory):
    route = {"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}}
    a, b = await bridge_factory(route), await bridge_factory(route)
    target = f"127.0.0.1:{a.port},127.0.0.1:{b.port}"
    channel = Connection().channel(target)
    try:
        for k in range(4):  # round robin: each new stream goes to the next bridge
            await sdk.stream(channel, _requests(range(k * 10, k * 10 + 10)))
        assert a.routes["r"].stats.rows_in > 0 and b.routes["r"].stats.rows_in > 0, "both bridges got streams"
        await a.stop(grace=1.0)  # one bridge leaves: the next streams go to the other
        totals = await sdk.stream(channel, _requests(range(40, 60)), reconnect=Reconnect(initial=0.01))
        assert totals.accepted == 20
    finally:
        await channel.close()
    assert sorted(r["id"] for r in sink.rows) == list(range(60))


async def test_a_dns_name_is_resolved_and_balanced(sink, bridge_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}})
    async with IngestClient(f"dns:///localhost:{b.port}", "r", batch_rows=5) as c:
        await c.add_many({"id": i} for i in range(10))
    assert c.accepted == 10 and sorted(r["id"] for r in sink.rows) == list(range(10))


async def _requests(ids):
    for n, i in enumerate(ids):
        req = pb.IngestRequest(route="r", sequence=n)
        req.json.objects.append(b'{"id":%d}' % i)
        yield req


async def test_a_long_stream_moves_to_a_new_connection_after_max_connection_age(sink, bridge_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}},
                             limits={"max_connection_age": "300ms", "max_connection_age_grace": "100ms"})
    async with IngestClient(f"127.0.0.1:{b.port}", "r", batch_rows=10,
                            reconnect=Reconnect(initial=0.01, max_backoff=0.05)) as c:
        for i in range(200):  # about 2 s of rows, bounded
            await c.add({"id": i})
            if i % 10 == 9:
                await asyncio.sleep(0.1)
    assert c.accepted == 200 and c.failed == []
    assert b.service.calls_opened >= 2, "the stream was moved (GOAWAY, then cut after the grace) and went on"
    assert set(r["id"] for r in sink.rows) == set(range(200))
