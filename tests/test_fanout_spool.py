"""A spooled route with several targets, through a real bridge and the emulators: one log, a cursor per target.

The caller's ack is the fsync; each target's cursor delivers the log's records on its own, so a target that is
down holds nothing back from the others, catches up from its own place when it returns, and keeps its own dead
letters. An optional target never fills the spool for the callers: its cursor skips ahead, counted.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest
import yaml

from bridge.config import load_config, parse_config
from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.ingest.server import Bridge
from bridge.proto import pb, pb_grpc
from tests.conftest import fast_delivery
from tests.test_fanout import kv, sample_value, sink_target, tp_target
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def tp():
    e = TimeplusEmulator(streams={"kv": ["k", "v"]}, changelog=("kv",))
    await e.start()
    yield e
    await e.stop()


def spooled(tmp_path, targets: list[dict], **spool) -> dict:
    return {"r": {"targets": targets, "spool": {"dir": str(tmp_path / "spool"), **spool}}}


def keys_of(n: int, per: int = 3) -> list[list[str]]:
    return [[f"{m}-{i}" for i in range(per)] for m in range(n)]


def tp_keys(tp) -> list[str]:
    return [r["k"] for r in tp.rows]  # the rows it kept (not those of the requests it refused)


async def test_a_target_down_holds_nothing_back_and_catches_up_from_its_cursor(tmp_path, sink, tp, bridge_factory,
                                                                                channel_factory):
    tp.fail_next(503, {"code": 503, "error_msg": "down for maintenance"}, times=10_000)
    b = await bridge_factory(spooled(tmp_path, [sink_target(sink), tp_target(tp)]))
    route = b.routes["r"]
    route.spool.pause = 0.05
    stub = channel_factory(b)
    batches = keys_of(20)
    for m, keys in enumerate(batches):
        ack = await stub.IngestBatch(kv(m, keys))
        # The ack is the fsync, whatever the targets do.
        assert (ack.accepted, ack.status.code) == (3, 0) and "spool_seq" in ack.upstream
    sent = [k for keys in batches for k in keys]
    await wait_until(lambda: len(sink.rows) == len(sent), what="the target that is up gets every row")
    assert [r["k"] for r in sink.rows] == sent
    assert tp_keys(tp) == []
    lag = route.spool.wal.cursors["tp"]
    assert lag.undelivered == len(batches) and route.spool.wal.cursors["sink"].undelivered == 0
    text = b.metrics.render().decode()
    assert sample_value(text, "ingest_bridge_spool_cursor_lag_records", route="r", target="tp") == len(batches)
    assert sample_value(text, "ingest_bridge_spool_cursor_lag_records", route="r", target="sink") == 0

    tp.clear_answers()
    await wait_until(lambda: len(tp_keys(tp)) >= len(sent), what="the target back catches up", timeout=30)
    assert tp_keys(tp) == sent, "in order, every row, once (no restart here)"
    assert [r["k"] for r in sink.rows] == sent, "nothing sent again to the target that was up"
    await wait_until(lambda: route.spool.wal.undelivered == 0)
    assert not any(p.name.startswith("dead-letter") for p in (tmp_path / "spool" / "r").iterdir())


async def test_a_record_one_target_refuses_for_good_goes_to_its_dead_letters_only(tmp_path, sink, tp,
                                                                                  bridge_factory, channel_factory):
    b = await bridge_factory(spooled(tmp_path, [sink_target(sink), tp_target(tp)]))
    route = b.routes["r"]
    stub = channel_factory(b)
    tp.fail_next(400, {"code": 400, "error_msg": "bad stream rows"})
    ack = await stub.IngestBatch(kv(1, ["a", "b"]))
    assert (ack.accepted, ack.status.code) == (2, 0)
    ack = await stub.IngestBatch(kv(2, ["c"]))
    await wait_until(lambda: route.spool.wal.undelivered == 0, what="both cursors passed both records")
    assert [r["k"] for r in sink.rows] == ["a", "b", "c"]
    assert tp_keys(tp) == ["c"]
    directory = tmp_path / "spool" / "r"
    assert not (directory / "dead-letter.sink.ndjson").exists()
    (line,) = [orjson.loads(x) for x in (directory / "dead-letter.tp.ndjson").read_bytes().splitlines()]
    assert line["target"] == "tp" and line["status"]["code"] == "INVALID_ARGUMENT"
    assert "bad stream rows" in line["status"]["message"]
    assert [r["row"] for r in line["rows"]] == [{"k": "a", "v": 0}, {"k": "b", "v": 1}]
    text = b.metrics.render().decode()
    assert sample_value(text, "ingest_bridge_spool_dead_letter_rows", route="r", target="tp") == 2
    assert sample_value(text, "ingest_bridge_spool_dead_letter_rows", route="r", target="sink") == 0
    assert sample_value(text, "ingest_bridge_dead_letter_rows", route="r") == 2


async def test_a_row_only_an_optional_target_cannot_express_goes_to_its_dead_letters(tmp_path, sink, tp,
                                                                                     bridge_factory, channel_factory):
    # The required Timeplus changelog stream takes a delete; the optional http copy cannot express one.
    b = await bridge_factory(spooled(tmp_path, [tp_target(tp), sink_target(sink, "copy", required=False)]))
    route = b.routes["r"]
    stub = channel_factory(b)
    ack = await stub.IngestBatch(kv(1, ["a", "b", "c"], [pb.OP_INSERT, pb.OP_DELETE, pb.OP_INSERT]))
    assert (ack.accepted, ack.rejected, ack.status.code) == (3, 0, 0)
    await wait_until(lambda: route.spool.wal.undelivered == 0)
    assert orjson.loads(tp.requests[-1].body)["data"] == [["a", 0, 1], ["b", 1, -1], ["c", 2, 1]]
    assert [r["k"] for r in sink.rows] == ["a", "c"]
    directory = tmp_path / "spool" / "r"
    (line,) = [orjson.loads(x) for x in (directory / "dead-letter.copy.ndjson").read_bytes().splitlines()]
    assert line["status"]["reason"] == "ROWS_REJECTED_BY_TARGET" and line["target"] == "copy"
    assert [e["index"] for e in line["rejected"]] == [1] and "DELETE" in line["rejected"][0]["error"]
    assert not (directory / "dead-letter.tp.ndjson").exists()


async def test_a_row_a_required_target_rejects_is_refused_to_the_caller_and_not_spooled_for_any(
        tmp_path, sink, tp, bridge_factory, channel_factory):
    b = await bridge_factory(spooled(tmp_path, [sink_target(sink), tp_target(tp)]))
    route = b.routes["r"]
    stub = channel_factory(b)
    ack = await stub.IngestBatch(kv(1, ["a", "b", "c"], [pb.OP_INSERT, pb.OP_DELETE, pb.OP_INSERT]))
    assert (ack.accepted, ack.rejected, ack.status.code) == (2, 1, 0)
    assert [e.index for e in ack.errors] == [1] and ack.errors[0].reason.startswith("target sink: ")
    await wait_until(lambda: route.spool.wal.undelivered == 0)
    assert [r["k"] for r in sink.rows] == ["a", "c"]
    assert orjson.loads(tp.requests[-1].body)["data"] == [["a", 0, 1], ["c", 2, 1]]
    assert not any(p.name.startswith("dead-letter") for p in (tmp_path / "spool" / "r").iterdir())


async def test_an_optional_target_down_never_fills_the_spool_for_callers(tmp_path, sink, target, bridge_factory,
                                                                        channel_factory):
    target.script({"status": 503, "times": 100_000})
    spare = {"name": "spare", "dialect": "http", "url": target.url + "/in", "required": False,
             "batch": {"linger": "0s"}, "delivery": fast_delivery(max_elapsed="100ms")}
    b = await bridge_factory(spooled(tmp_path, [sink_target(sink, "main"), spare], max_bytes="8KiB",
                                     segment_bytes="1KiB"))
    route = b.routes["r"]
    route.spool.pause = 5.0  # after its first failure the optional target waits: its records pile up in the log
    stub = channel_factory(b)
    batches = keys_of(300, 5)
    for m, keys in enumerate(batches):
        ack = await stub.IngestBatch(kv(m, keys))
        assert (ack.accepted, ack.status.code) == (5, 0), ack  # never SPOOL_FULL because of the optional target
        if m % 20 == 0:
            # The required target keeps up (the caller's pace), as it would in production.
            await wait_until(lambda m=m: len(sink.rows) == 5 * (m + 1))
    sent = [k for keys in batches for k in keys]
    await wait_until(lambda: len(sink.rows) == len(sent))
    assert [r["k"] for r in sink.rows] == sent
    assert route.spool.disk_bytes <= 8 << 10
    spare_cursor = route.spool.wal.cursors["spare"]
    assert spare_cursor.skipped > 0
    text = b.metrics.render().decode()
    assert sample_value(text, "ingest_bridge_spool_skipped_records_total", route="r",
                        target="spare") == spare_cursor.skipped


async def test_readyz_and_metrics_show_each_targets_spool(tmp_path, sink, target):
    target.script({"status": 400, "body": {"message": "no"}})
    doc = {"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "routes": spooled(tmp_path, [
        sink_target(sink), {**sink_target(sink, "spare", required=False), "url": target.url + "/in"}])}
    b = Bridge(parse_config(yaml.safe_dump(doc), env={}))
    await b.start()
    try:
        async with grpc_stub(b) as stub:
            ack = await stub.IngestBatch(kv(1, ["a", "b"]))
            assert (ack.accepted, ack.status.code) == (2, 0)
        await wait_until(lambda: b.routes["r"].spool.wal.undelivered == 0)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{b.http_port}/readyz") as resp:
                ready = await resp.json()
            async with s.get(f"http://127.0.0.1:{b.http_port}/metrics") as resp:
                text = await resp.text()
        r = ready["routes"]["r"]
        assert r["dead_letter_rows"] == 2 and r["spool_records"] == 0
        sink_t, spare = r["targets"]["sink"], r["targets"]["spare"]
        assert (sink_t["spool_records"], sink_t["dead_letter_rows"], sink_t["spool_position"]) == (0, 0, 1)
        assert (spare["spool_records"], spare["dead_letter_rows"], spare["skipped_records"]) == (0, 2, 0)
        assert sample_value(text, "ingest_bridge_spool_dead_letter_rows", route="r", target="spare") == 2
        assert 'ingest_bridge_spool_skipped_records_total{route="r",target="spare"} 0.0' in text
    finally:
        await b.stop(grace=1.0)


class grpc_stub:
    def __init__(self, b: Bridge) -> None:
        import grpc

        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{b.port}")

    async def __aenter__(self) -> pb_grpc.IngestServiceStub:
        return pb_grpc.IngestServiceStub(self.channel)

    async def __aexit__(self, *exc) -> None:
        await self.channel.close()


async def test_a_reload_that_renames_a_target_removes_its_gauge_series_and_keeps_the_others(tmp_path, sink):
    path = tmp_path / "bridge.yaml"

    def write(names: list[str]) -> None:
        routes = spooled(tmp_path, [sink_target(sink, n) for n in names])
        path.write_text(yaml.safe_dump({"listen": "127.0.0.1:0", "http": None, "routes": routes}))

    write(["a", "b"])
    b = Bridge(load_config(path), http=False)
    await b.start()
    try:
        async with grpc_stub(b) as stub:
            assert (await stub.IngestBatch(kv(1, ["x"]))).status.code == 0
        write(["a", "c"])
        assert await b.reload(path) is True
        await wait_until(lambda: not b.switching, what="the switch done")
        text = b.metrics.render().decode()
        gauges = ("ingest_bridge_buffered_bytes", "ingest_bridge_buffered_bytes_limit",
                  "ingest_bridge_concurrency_limit", "ingest_bridge_requests_in_flight",
                  "ingest_bridge_spool_cursor_lag_records", "ingest_bridge_spool_dead_letter_rows")
        series = {line.split("{")[0] + ":" + line.split('target="')[1].split('"')[0]
                  for line in text.splitlines() if line.startswith(gauges) and 'route="r"' in line}
        assert series == {f"{g}:{t}" for g in gauges for t in ("a", "c")}
        assert 'ingest_bridge_spool_bytes{route="r"}' in text  # the route's own, fed by the new version
        limit = sample_value(text, "ingest_bridge_buffered_bytes_limit", route="r", target="a")
        assert limit == b.routes["r"].lanes[0].budget.cap
    finally:
        await b.stop(grace=1.0)
