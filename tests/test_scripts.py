"""scripts/test.sh's apt step: it waits while another process holds apt's lock, and fails on anything else."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fake_apt(tmp_path: Path, failures: int, message: str) -> Path:
    """An apt-get on PATH that fails ``failures`` times with ``message``, then succeeds; it logs its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "apt-get"
    script.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {tmp_path}/calls
n=$(wc -l < {tmp_path}/calls)
if [ "$n" -le {failures} ]; then echo "{message}" >&2; exit 100; fi
echo ok
""")
    script.chmod(0o755)
    return bin_dir


def apt_wait(tmp_path: Path, bin_dir: Path, tries: int = 5) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_WAIT_SECONDS": "0",
           "APT_WAIT_TRIES": str(tries)}
    return subprocess.run(["bash", "-c", f". {ROOT / 'scripts/apt_wait.sh'} && apt_wait install -y x"],
                          capture_output=True, text=True, env=env, timeout=60)


LOCKED = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)"


def test_apt_waits_for_the_lock_then_goes_on(tmp_path):
    p = apt_wait(tmp_path, fake_apt(tmp_path, 3, LOCKED))
    assert p.returncode == 0, p.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 4 and all("DPkg::Lock::Timeout=0 install -y x" in c for c in calls)
    assert p.stderr.count("apt is busy") == 3


def test_apt_gives_up_after_its_tries_with_apts_message(tmp_path):
    p = apt_wait(tmp_path, fake_apt(tmp_path, 99, LOCKED), tries=2)
    assert p.returncode == 1 and LOCKED in p.stderr
    assert len((tmp_path / "calls").read_text().splitlines()) == 3


def test_any_other_apt_failure_is_not_retried(tmp_path):
    p = apt_wait(tmp_path, fake_apt(tmp_path, 99, "E: Unable to locate package nosuch"))
    assert p.returncode == 1 and "Unable to locate package nosuch" in p.stderr
    assert len((tmp_path / "calls").read_text().splitlines()) == 1


def test_test_sh_uses_it_for_every_apt_call():
    text = (ROOT / "scripts/test.sh").read_text()
    assert ". scripts/apt_wait.sh" in text
    assert "apt_wait update" in text and "apt_wait install" in text
    assert "apt-get update" not in text and "apt-get install" not in text
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts/test.sh")]).returncode == 0
