"""The crash test in small: SIGKILL the spooling bridge mid-stream a few times, then freeze ClickHouse under load."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ch_server

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "crash_test.py"

pytestmark = pytest.mark.skipif(not ch_server.available(), reason="clickhouse-server is not installed")


@pytest.mark.timeout(240)
def test_no_acknowledged_row_is_lost_across_kills_and_an_outage():
    run = subprocess.run([sys.executable, str(SCRIPT), "--cycles", "4", "--outage", "3", "--rate", "3000"],
                         capture_output=True, text=True, timeout=230)
    line = next((x for x in run.stdout.splitlines() if x.startswith("crash_test:")), "")
    assert line, run.stdout + run.stderr
    figures = dict(re.findall(r"(\w+)=([\w.]+)", line))
    assert run.returncode == 0, line + run.stderr[-2000:]
    assert figures["acked_missing"] == "0"
    assert figures["caller_errors"] == "0", "the outage reached no caller while the spool had room"
    assert int(figures["acked_rows"]) > 1000 and int(figures["streams"]) >= 2, "the kills broke real streams"
    assert int(figures["rows_in_clickhouse"]) >= int(figures["acked_rows"])
