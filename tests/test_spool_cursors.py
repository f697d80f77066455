"""One log, one cursor per target: each target reads the spool on its own, a segment goes once all passed it."""

from __future__ import annotations

import orjson
import pytest

from bridge.model.config import SpoolConfig
from bridge.model.errors import BatchRejected
from bridge.ops.metrics import Metrics
from bridge.spool.spool import Spool
from tests.spool_targets import Recording, accept
from tests.waiting import wait_until


def segments(directory) -> list[str]:
    return sorted(p.name for p in directory.glob("seg-*.wal"))


def fan_out(tmp_path, targets=("a", "b"), metrics=None, optional=(), **cfg) -> Spool:
    spool = Spool("r", SpoolConfig(str(tmp_path), **{"segment_bytes": 300, **cfg}), metrics, targets=targets,
                  optional=optional)
    spool.open()
    spool.pause = 0.02
    return spool


def dead_lines(path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


async def test_the_fast_target_gets_everything_and_segments_wait_for_the_slow_one(tmp_path):
    spool = fan_out(tmp_path)
    fast, slow = Recording("a"), Recording("b", mode="down")
    spool.start({"a": fast, "b": slow})
    for s in range(12):
        await accept(spool, s, range(s * 3, s * 3 + 3))
    await wait_until(lambda: spool.wal.cursors["a"].position == 12 and slow.tries >= 2)
    assert fast.ids == list(range(36)), "in order, once each"
    log_dir = tmp_path / "r"
    held = segments(log_dir)
    assert len(held) >= 3 and held[0] == f"seg-{1:020d}.wal", "every segment stays while b has not passed it"
    assert spool.wal.cursors["b"].position == 0
    assert spool.wal.undelivered == 12 and spool.disk_bytes == sum((log_dir / n).stat().st_size for n in held)
    slow.mode = "ok"  # target b comes back
    await wait_until(lambda: len(slow.ids) == 36 and spool.wal.undelivered == 0)
    assert slow.ids == list(range(36))
    assert len(segments(log_dir)) == 1, "once both passed them, the segments go (all but the active one)"
    spool.wal.save_cursor()
    assert (log_dir / "cursor.a").read_text() == (log_dir / "cursor.b").read_text() == "12"
    assert not (log_dir / "cursor").exists()
    await spool.close()


async def test_a_record_one_target_refuses_goes_to_that_targets_dead_letters_only(tmp_path):
    spool = fan_out(tmp_path)
    a, b = Recording("a"), Recording("b")
    b.refuse = {4}  # record 2 (ids 3..5) is refused for good by b
    b.reject = {7}  # and b's transcoder rejects row 7 of record 3
    spool.start({"a": a, "b": b})
    for s in range(3):
        await accept(spool, s, range(s * 3, s * 3 + 3))
    await wait_until(lambda: spool.wal.undelivered == 0)
    assert a.ids == list(range(9))
    assert b.ids == [0, 1, 2, 6, 8]
    assert not (tmp_path / "r" / "dead-letter.a.ndjson").exists()
    assert not (tmp_path / "r" / "dead-letter.ndjson").exists()
    refused, rejected = dead_lines(tmp_path / "r" / "dead-letter.b.ndjson")
    assert refused["target"] == "b" and refused["spool_seq"] == 2 and refused["status"]["http_status"] == 400
    assert [r["row"]["id"] for r in refused["rows"]] == [3, 4, 5]
    assert rejected["spool_seq"] == 3 and rejected["status"]["reason"] == "ROWS_REJECTED_BY_TARGET"
    assert rejected["rejected"] == [{"index": 1, "column": "id", "error": "not for target b"}]
    assert rejected["request_base64"], "the caller's request is kept whole"
    assert spool.dead_letters["b"].rows == 4 and spool.dead_letters["a"].rows == 0 and spool.dead_rows == 4
    await spool.close()


async def test_rows_rejected_at_accept_reach_no_target(tmp_path):
    spool = fan_out(tmp_path)
    a, b = Recording("a"), Recording("b")
    spool.start({"a": a, "b": b})
    await accept(spool, 0, range(5), skip=[1, 3])
    await wait_until(lambda: spool.wal.undelivered == 0)
    assert a.ids == b.ids == [0, 2, 4]
    await spool.close()


async def test_each_cursor_resumes_where_it_was_after_a_restart(tmp_path):
    spool = fan_out(tmp_path)
    a, b = Recording("a"), Recording("b", mode="down")
    spool.start({"a": a, "b": b})
    for s in range(6):
        await accept(spool, s, range(s * 2, s * 2 + 2))
    await wait_until(lambda: len(a.ids) == 12)
    await spool.close()
    spool = fan_out(tmp_path)
    a2, b2 = Recording("a"), Recording("b")
    spool.start({"a": a2, "b": b2})
    await wait_until(lambda: len(b2.ids) == 12)
    assert a2.ids == [], "a had delivered everything: nothing is sent to it again"
    assert b2.ids == list(range(12))
    await spool.close()


async def test_targets_removed_and_added_on_restart(tmp_path, caplog):
    spool = fan_out(tmp_path)
    a, b = Recording("a"), Recording("b", mode="down")
    spool.start({"a": a, "b": b})
    for s in range(4):
        await accept(spool, s, range(s * 2, s * 2 + 2))
    await wait_until(lambda: len(a.ids) == 8)
    await spool.close()
    # b leaves the route, c joins it: b's place is dropped (its records no longer hold the log), c starts at the end.
    spool = Spool("r", SpoolConfig(str(tmp_path), segment_bytes=300), targets=("a", "c"))
    report = spool.open()
    assert any("cursor.b" in line and "dropped" in line for line in report.cursors)
    assert any("'c' is new" in line for line in report.cursors)
    assert "cursor.b" in caplog.text
    assert not (tmp_path / "r" / "cursor.b").exists()
    assert (tmp_path / "r" / "cursor.c").read_text() == "4", "c's place is on disk at once"
    assert len(segments(tmp_path / "r")) == 1, "the segments only b still needed are gone"
    a2, c = Recording("a"), Recording("c")
    spool.start({"a": a2, "c": c})
    await accept(spool, 4, range(100, 102))
    await wait_until(lambda: len(c.ids) == 2 and len(a2.ids) == 2)
    assert c.ids == a2.ids == [100, 101], "history is not replayed to a new target"
    await spool.close()


async def test_a_single_target_route_turned_into_several_keeps_its_undelivered_records(tmp_path):
    single = Spool("r", SpoolConfig(str(tmp_path), segment_bytes=300))
    single.open()
    one = Recording(mode="down")
    single.pause = 0.02
    single.start(one)
    for s in range(3):
        await accept(single, s, range(s * 2, s * 2 + 2))  # neutral records in a single-target log: read too
    await single.close()
    spool = fan_out(tmp_path)
    a, b = Recording("a"), Recording("b")
    spool.start({"a": a, "b": b})
    await wait_until(lambda: len(a.ids) == 6 and len(b.ids) == 6)
    assert a.ids == b.ids == list(range(6))
    assert sorted(p.name for p in (tmp_path / "r").glob("cursor*")) == ["cursor.a", "cursor.b"]
    await spool.close()


async def test_an_optional_target_skips_ahead_instead_of_filling_the_log(tmp_path):
    metrics = Metrics()
    spool = fan_out(tmp_path, metrics=metrics, max_bytes=2000, optional={"b"})
    a, b = Recording("a"), Recording("b", mode="down")
    spool.start({"a": a, "b": b})
    for s in range(60):  # ~9 KB of records through a 2000-byte log
        await accept(spool, s, range(s * 2, s * 2 + 2))
        await wait_until(lambda s=s: len(a.ids) == 2 * s + 2)
    assert a.ids == list(range(120)), "the required target got every row"
    skipped = metrics.registry.get_sample_value("ingest_bridge_spool_skipped_records_total",
                                                {"route": "r", "target": "b"})
    assert skipped and skipped == spool.wal.cursors["b"].skipped > 0
    assert spool.disk_bytes <= 2000
    b.mode = "ok"
    await wait_until(lambda: spool.wal.undelivered == 0)
    assert b.ids and set(b.ids) < set(a.ids) and b.ids == sorted(b.ids), "b got what was left, in order"
    lag = metrics.registry.get_sample_value("ingest_bridge_spool_cursor_lag_records", {"route": "r", "target": "b"})
    assert lag == 0
    await spool.close()


async def test_a_required_target_that_is_away_fills_the_log(tmp_path):
    spool = fan_out(tmp_path, max_bytes=2000)
    a, b = Recording("a"), Recording("b", mode="down")
    spool.start({"a": a, "b": b})
    with pytest.raises(BatchRejected) as e:
        for s in range(60):
            await accept(spool, s, range(s * 2, s * 2 + 2))
    assert e.value.reason == "SPOOL_FULL" and spool.full
    assert spool.wal.cursors["b"].skipped == 0
    await spool.close()


async def test_downstreams_must_match_the_targets(tmp_path):
    spool = fan_out(tmp_path)
    with pytest.raises(ValueError, match="targets"):
        spool.start({"a": Recording("a")})
    await spool.close()
