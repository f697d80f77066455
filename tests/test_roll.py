"""The rolling test in small: three bridges rolled (SIGTERM), one killed, one cut off, while callers stream."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ch_server

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "roll_test.py"

pytestmark = pytest.mark.skipif(not ch_server.available(), reason="clickhouse-server is not installed")


@pytest.mark.timeout(180)
def test_no_acknowledged_row_is_lost_when_bridges_roll_die_and_freeze():
    run = subprocess.run([sys.executable, str(SCRIPT), "--short"], capture_output=True, text=True, timeout=170)
    line = next((x for x in run.stdout.splitlines() if x.startswith("roll_test:")), "")
    assert line, run.stdout + run.stderr
    figures = dict(re.findall(r"(\w+)=([\w.]+)", line))
    assert run.returncode == 0, line + run.stderr[-2000:]
    assert figures["acked_missing"] == "0" and figures["caller_errors"] == "0"
    assert figures["restarts"] == "4", "each bridge rolled once, one killed once"
    assert int(figures["acked_rows"]) == int(figures["sent_rows"]) > 10_000, "every row acknowledged in the end"
    assert int(figures["rows_in_clickhouse"]) >= int(figures["acked_rows"])
    assert int(figures["streams"]) >= 3 + 4, "the restarts broke real streams, and the callers went on"
