"""SIGKILL a bridge serving a spooled route with two targets, one of them failing, and start it again: each
target resumes from its own cursor, gets every acknowledged row, and only the records past its saved cursor
come again (at least once, no more)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
import pytest
import yaml

from bridge.dev.emulators.faulty import FaultyTarget
from bridge.dev.emulators.http_sink import HttpSink
from bridge.proto import pb, pb_grpc
from tests.conftest import fast_delivery
from tests.test_restart import _free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
ROWS = 4  # per request
FIRST, SECOND = 60, 30  # requests before the kill, after the restart
B_TAKES = 5  # HTTP requests the flaky target takes before it goes down


async def start_bridge(config: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    with open(log, "ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "--log-format", "text", "serve", "--config", str(config), cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=err)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        await asyncio.wait_for(ch.channel_ready(), 30)
    return proc


def request(m: int) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r", sequence=m)
    req.rows.columns.extend(["id"])
    for i in range(ROWS):
        req.rows.rows.add().values.append(pb.Value(int=m * ROWS + i))
    return req


async def send(port: int, ms: range, seq_of: dict[int, int]) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = pb_grpc.IngestServiceStub(ch)
        for m in ms:
            ack = await stub.IngestBatch(request(m), timeout=10)
            assert (ack.accepted, ack.status.code) == (ROWS, 0), ack
            seq_of[m] = int(ack.upstream["spool_seq"])


@pytest.mark.timeout(180)
async def test_each_target_resumes_from_its_cursor_after_a_kill(tmp_path):
    a, b = HttpSink(), FaultyTarget()
    await a.start()
    await b.start()
    b.script({"status": 200, "times": B_TAKES}, {"status": 503, "times": 1_000_000})
    port = _free_port()
    spool_dir = tmp_path / "spool"
    config = tmp_path / "bridge.yaml"
    target = {"dialect": "http", "batch": {"linger": "0s", "max_rows": ROWS},
              "delivery": {**fast_delivery(max_elapsed="200ms"), "concurrency": 1}}
    config.write_text(yaml.safe_dump({"listen": f"127.0.0.1:{port}", "http": None, "routes": {"r": {
        "columns": {"id": "int"},
        "spool": {"dir": str(spool_dir), "segment_bytes": "2KiB"},
        "targets": [{"name": "a", "url": a.url + "/a", **target}, {"name": "b", "url": b.url + "/b", **target}],
    }}}))
    log = tmp_path / "bridge.log"
    seq_of: dict[int, int] = {}
    procs = [await start_bridge(config, port, log)]
    try:
        await send(port, range(FIRST), seq_of)
        await wait_until(lambda: len(a.rows) == FIRST * ROWS, what="a gets every row while b is down")
        await wait_until(lambda: b.faults >= 3, what="b taking some, then failing")
        procs[0].kill()  # SIGKILL
        await procs[0].wait()
        directory = spool_dir / "r"
        at_a, at_b = (int((directory / f"cursor.{t}").read_text()) for t in "ab")
        a_before, b_before = len(a.rows), len(b.rows)
        assert 0 < b_before < FIRST * ROWS and at_b < seq_of[FIRST - 1]

        procs.append(await start_bridge(config, port, log))
        await send(port, range(FIRST, FIRST + SECOND), seq_of)  # b still down: acks go on
        b.clear()  # b is back
        every = set(range((FIRST + SECOND) * ROWS))
        await wait_until(lambda: {r["id"] for r in a.rows} == every, what="a: every acknowledged row")
        await wait_until(lambda: {r["id"] for r in b.rows} == every, what="b catches up", timeout=60)
        procs[1].terminate()
        await asyncio.wait_for(procs[1].wait(), 30)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await a.stop()
        await b.stop()
    record = {m * ROWS + i: seq_of[m] for m in seq_of for i in range(ROWS)}
    for name, rows, before, at in (("a", a.rows, a_before, at_a), ("b", b.rows, b_before, at_b)):
        after = [r["id"] for r in rows[before:]]
        again = sorted({record[i] for i in after if record[i] <= seq_of[FIRST - 1]})
        # Resumed right after its own saved cursor: the records before it are not sent again.
        assert again == list(range(at + 1, seq_of[FIRST - 1] + 1)), f"{name} resumed after record {at}"
        assert len(after) == len(set(after)), f"{name}: each row once after the restart"
    last = seq_of[FIRST + SECOND - 1]
    assert {(directory / f"cursor.{t}").read_text() for t in "ab"} == {str(last)}
    assert len(list(directory.glob("seg-*.wal"))) == 1, "both passed every segment: only the active one stays"
    assert not list(directory.glob("dead-letter*")), log.read_text()[-3000:]
