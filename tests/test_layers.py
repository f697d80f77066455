"""The package layers and the absence of import cycles, as pyproject.toml's import-linter contracts state them."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is missing: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr



def test_the_public_api_resolves_and_import_bridge_stays_light() -> None:
    code = (
        "import sys, bridge\n"
        "heavy = [m for m in ('bridge.ingest.server', 'bridge.route.pipeline', 'aiohttp') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in bridge.__all__ if getattr(bridge, n, None) is None]\n"
        "assert not missing, missing\n"
        "from bridge import Bridge, IngestClient, parse_config\n"
        "assert IngestClient.__module__ == 'bridge.client.sdk' and Bridge.__module__ == 'bridge.ingest.server'\n"
        "try:\n"
        "    bridge.RoutePipeline\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('a private name is reachable from bridge')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_no_hand_written_module_over_400_lines() -> None:
    # Generated code (bridge/_proto) is not read by people; everything else is.
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "bridge").rglob("*.py")
            if "_proto" not in p.parts and (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"
