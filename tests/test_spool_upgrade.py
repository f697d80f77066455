"""A spool written by the single-target release (tests/data/spool-v1) opens with today's code and delivers
exactly the records its cursor had not passed; a log with neutral records opens on a single-target route."""

from __future__ import annotations

import shutil
from pathlib import Path

from bridge.model.config import SpoolConfig
from bridge.spool.spool import Spool
from tests.conftest import fast_delivery
from tests.spool_targets import Recording, accept
from tests.waiting import wait_until

DATA = Path(__file__).resolve().parent / "data" / "spool-v1"
UNDELIVERED = [  # records 2..4 of scripts/make_spool_fixture.py: (seq, row, op)
    (2, {"id": 3, "name": "json three"}, None),
    (2, {"id": 4, "name": "json four"}, None),
    (3, {"id": 5, "name": "upserted"}, 2),
    (3, {"id": 6, "name": None}, 1),
    (4, {"id": 7, "name": "json upsert"}, 2),
    (4, {"id": 8}, 1),
]


def spool_copy(tmp_path: Path) -> Path:
    shutil.copytree(DATA, tmp_path / "spool")
    return tmp_path / "spool"


async def test_an_old_spool_delivers_exactly_its_undelivered_records(tmp_path):
    directory = spool_copy(tmp_path)
    old_dead = (directory / "r" / "dead-letter.ndjson").read_bytes()
    spool = Spool("r", SpoolConfig(str(directory)))
    report = spool.open()
    assert (report.records, report.truncated, report.cursors) == (3, [], [])
    target = Recording()
    spool.start(target)
    await wait_until(lambda: spool.wal.undelivered == 0)
    assert target.got == UNDELIVERED
    await spool.close()
    assert (directory / "r" / "cursor").read_text() == "4", "the same cursor file, moved on"
    assert (directory / "r" / "dead-letter.ndjson").read_bytes() == old_dead, "the dead letters are kept as they are"


async def test_an_old_spool_through_a_real_bridge(tmp_path, bridge_factory, sink):
    directory = spool_copy(tmp_path)
    b = await bridge_factory({"r": {
        "dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"},
        "delivery": fast_delivery(), "spool": {"dir": str(directory)}}})
    await wait_until(lambda: b.routes["r"].spool.wal.undelivered == 0)
    assert sorted((r["id"], r.get("name")) for r in sink.rows) == [(row["id"], row.get("name"))
                                                                   for _, row, _ in UNDELIVERED]


async def test_an_old_spool_opened_for_several_targets_gives_each_its_undelivered_records(tmp_path):
    directory = spool_copy(tmp_path)
    spool = Spool("r", SpoolConfig(str(directory)), targets=("a", "b"))
    report = spool.open()
    assert any("after record 1" in line for line in report.cursors), report.cursors
    a, b = Recording("a"), Recording("b")
    spool.start({"a": a, "b": b})
    await wait_until(lambda: spool.wal.undelivered == 0)
    assert a.got == b.got == UNDELIVERED
    await spool.close()


async def test_neutral_records_left_by_several_targets_go_to_a_single_target_route(tmp_path, bridge_factory,
                                                                                 sink):
    spool = Spool("r", SpoolConfig(str(tmp_path)), targets=("a", "b"))
    spool.open()
    for s in range(3):
        await accept(spool, s, range(s * 4, s * 4 + 4), skip=[0])  # row 0 of each was rejected at accept
    await spool.close()
    b = await bridge_factory({"r": {  # the route is back to one target: its pipeline makes the rows
        "dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"},
        "delivery": fast_delivery(), "spool": {"dir": str(tmp_path)}}})
    await wait_until(lambda: b.routes["r"].spool.wal.undelivered == 0)
    assert sorted(r["id"] for r in sink.rows) == [i for i in range(12) if i % 4]
    assert sorted(p.name for p in (tmp_path / "r").glob("cursor*")) == ["cursor"]
    assert not (tmp_path / "r" / "dead-letter.ndjson").exists()
