"""The development scripts: bench.py's report keeps the hand-written notes and names the load client's share;
fuzz.py's modes parse and every differential test it names exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib.report import NOTES, write  # noqa: E402


def test_a_new_report_keeps_the_notes_below_the_marker(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    write(out, "# Benchmarks\n\nold table\n")
    out.write_text(out.read_text() + f"\n{NOTES}\n\n## What the figures say\n\nwritten by hand\n")
    write(out, "# Benchmarks\n\nnew table\n")
    text = out.read_text()
    assert "new table" in text and "old table" not in text
    assert text.endswith(f"{NOTES}\n\n## What the figures say\n\nwritten by hand\n")
    assert text.count(NOTES) == 1


def test_fuzz_modes_parse_and_the_old_form_means_props(monkeypatch):
    import fuzz

    seen = []
    monkeypatch.setattr(fuzz, "run_props", lambda p, n, s, k: seen.append(("props", p, n, s)) or True)
    monkeypatch.setattr(fuzz, "run_diff", lambda p, n, c, s, k: seen.append(("diff", p, n, c, s)) or True)
    monkeypatch.setattr(fuzz, "run_cargo", lambda s, j, extra: seen.append(("cargo", s, j, extra)) or True)
    assert fuzz.main(["--seconds", "10", "--only", "json", "rows"]) == 0
    assert fuzz.main(["diff", "--only", "wire", "--examples", "300", "--chunk", "1000"]) == 0
    assert fuzz.main(["cargo", "--seconds", "5", "--", "-runs=10"]) == 0
    assert seen == [("props", "json", 20_000, 5.0), ("props", "rows", 20_000, 5.0),
                    ("diff", "wire", 300, 300, None), ("cargo", 5, 1, ["-runs=10"])]
    with pytest.raises(SystemExit):
        fuzz.main(["diff", "--only", "nosuch"])


def test_every_differential_test_fuzz_diff_names_exists():
    import fuzz

    ids = [i for ids in fuzz.DIFF_SHAPES.values() for i in ids]
    p = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *ids],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "error" not in p.stdout.lower()
