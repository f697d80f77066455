"""SIGKILL a process spooling for two targets while one is far behind: each cursor resumes where it was saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.spool_child import B_TAKES, ROWS

ROOT = Path(__file__).resolve().parents[1]
RECORDS = 40


def lines(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [tuple(map(int, x.split())) for x in path.read_text().splitlines() if x.strip()]  # type: ignore[misc]


def child(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.spool_child", *args]


def test_each_cursor_resumes_where_it_was_after_a_kill(tmp_path):
    spool_dir, out = tmp_path / "spool", tmp_path / "out"
    spool_dir.mkdir()
    out.mkdir()
    proc = subprocess.Popen(child(str(spool_dir), str(out), "write", str(RECORDS)), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written", proc.stderr
        deadline = time.monotonic() + 60
        while len(lines(out / "a.write")) < RECORDS * ROWS or len(lines(out / "b.write")) < B_TAKES * ROWS:
            assert time.monotonic() < deadline and proc.poll() is None, "the targets did not get their rows"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    log_dir = spool_dir / "r"
    at_a, at_b = (int((log_dir / f"cursor.{t}").read_text()) for t in "ab")
    assert at_b <= B_TAKES, "b is behind: it took 10 records and hung"
    firsts = [int(p.stem.split("-")[1]) for p in log_dir.glob("seg-*.wal")]
    assert min(firsts) <= at_b + 1, "the segments b has yet to read are all still there"
    acked = [int(x) for x in (out / "acked").read_text().split()]
    assert acked == list(range(RECORDS * ROWS))

    run = subprocess.run(child(str(spool_dir), str(out), "drain"), cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    for target, at in (("a", at_a), ("b", at_b)):
        before, after = lines(out / f"{target}.write"), lines(out / f"{target}.drain")
        assert {i for _, i in before + after} == set(acked), f"{target}: every acknowledged row, none lost"
        assert sorted({seq for seq, _ in after}) == list(range(at + 1, RECORDS + 1)), \
            f"{target}: resumed right after its own saved cursor, {at}"
        assert [i for _, i in after] == sorted(i for _, i in after), "in order"
    assert len(list(log_dir.glob("seg-*.wal"))) == 1, "both passed every segment: only the active one stays"
    assert {(log_dir / f"cursor.{t}").read_text() for t in "ab"} == {str(RECORDS)}
