"""Every shell, YAML, proto and Python block of README.md runs as written, on a fresh copy of the repository.

The blocks run in order in one bash shell (as a user's terminal would: a
server started with ``&`` in one block answers the next ones), inside a
network namespace of the test's own so that the README's fixed ports are
free. YAML goes through ``ingest-bridge check``; a block whose first line is
``# save as FILE`` (``// save as FILE``) is saved under that name. A block
preceded by ``<!-- readme-test: skip: REASON -->`` is not run; a YAML block
preceded by ``<!-- readme-test: not a bridge configuration: REASON -->`` is
only read as YAML. The list of marked blocks is pinned below so that it
stays short.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<directive>[^\n]*?) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$",
                   re.S | re.M)
SAVE_AS = re.compile(r"^(?:#|//) save as (\S+)\n")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
RUN = ("sh", "yaml", "proto", "python")


@dataclass
class Block:
    index: int
    lang: str
    body: str
    directive: str | None


def blocks(text: str) -> list[Block]:
    return [Block(i, m["lang"], m["body"], m["directive"]) for i, m in enumerate(BLOCK.finditer(text))]


def script(all_blocks: list[Block], workdir: Path) -> str:
    """The whole README as one bash session; a failing command records its block and line in ``failures``."""
    env_names = sorted({n for b in all_blocks if b.lang == "yaml" for n in ENV_REF.findall(b.body)})
    lines = ["set -E", f"cd {workdir}", f'export PATH="{workdir / ".bin"}:$PATH" PYTHONPATH="{workdir}"',
             *(f"export {n}=readme-placeholder-{n}" for n in env_names),
             f"""trap 'echo "block $B, line $LINENO: $BASH_COMMAND (exit $?)" >> {workdir / "failures"}' ERR"""]
    for b in all_blocks:
        if b.lang not in RUN or (b.directive or "").startswith("skip:"):
            continue
        lines.append(f"B={b.index}; echo '@@ block {b.index}'")
        saved = SAVE_AS.match(b.body)
        name = saved.group(1) if saved else f"block-{b.index}.{ {'yaml': 'yaml', 'python': 'py'}.get(b.lang, b.lang)}"
        if b.lang == "sh":
            lines.append(f"{b.body}\ncd {workdir}")  # a `cd` stays in its block; `&` servers live on as jobs
            continue
        lines.append(f"cat > {name} <<'README_BLOCK_END'\n{b.body}README_BLOCK_END")
        if b.lang == "yaml" and (b.directive or "").startswith("not a bridge configuration:"):
            lines.append(f"{sys.executable} -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' {name}")
        elif b.lang == "yaml":
            lines.append(f"ingest-bridge check --config {name} > /dev/null")
        elif b.lang == "python":
            lines.append(f"{sys.executable} {name}")
    lines.append("trap - ERR; jobs -p | xargs -r kill; wait")  # servers stop as SIGTERM stops them
    return "\n".join(lines) + "\n"


def fresh_copy(dest: Path) -> None:
    """The repository's files (tracked and new, not ignored) as a clone would have them."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    shim = dest / ".bin" / "ingest-bridge"  # what `pip install` puts on PATH, for this copy
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m bridge "$@"\n')
    shim.chmod(0o755)


def own_network() -> bool:
    ok = shutil.which("unshare") and shutil.which("ip")
    return bool(ok) and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def test_the_list_of_blocks_not_run_stays_tiny():
    marked = [b.directive for b in blocks((ROOT / "README.md").read_text()) if b.directive]
    assert marked == [
        "skip: installs the package; the test runs the other blocks in an installed environment",
        "skip: it runs this test suite",
        "skip: needs your certificate files (check reads them)",
        "not a bridge configuration: Prometheus'",
        "skip: fetches from Maven Central; tests/test_examples.py builds and runs the Java client",
        "skip: installs a Debian package (root, network)",
        "not a bridge configuration: an emulator's settings, which the next block uses",
    ]


def test_the_block_parser_sees_directives_and_languages():
    text = ("x\n<!-- readme-test: skip: why -->\n```sh\nrm -rf /\n```\n\n```yaml\n# save as a.yaml\nk: 1\n```\n"
            "```\nnot run\n```\n")
    got = blocks(text)
    assert [(b.lang, b.directive) for b in got] == [("sh", "skip: why"), ("yaml", None), ("", None)]
    text = script(got, Path("/w"))
    assert "rm -rf" not in text and "not run" not in text
    assert "cat > a.yaml <<'README_BLOCK_END'\n# save as a.yaml\nk: 1\nREADME_BLOCK_END" in text
    assert "ingest-bridge check --config a.yaml" in text


@pytest.mark.timeout(400)
def test_every_readme_block_runs_as_written(tmp_path):
    if not own_network():
        pytest.skip("needs `unshare -n` and `ip` (a network namespace, so the README's ports are free)")
    work = tmp_path / "clone"
    fresh_copy(work)
    all_blocks = blocks((work / "README.md").read_text())
    (tmp_path / "readme.sh").write_text(script(all_blocks, work))
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen(["unshare", "-n", "bash", "-c", f"ip link set lo up && exec bash {tmp_path}/readme.sh"],
                                stdout=out, stderr=err, start_new_session=True, env=os.environ.copy())
        try:
            proc.wait(timeout=360)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything a block left running
    output, errors = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    failures = (work / "failures").read_text() if (work / "failures").exists() else ""
    assert failures == "", f"{failures}\n--- stdout\n{output[-3000:]}\n--- stderr\n{errors[-3000:]}"
    ran = re.findall(r"^@@ block (\d+)$", output, re.M)
    expected = [str(b.index) for b in all_blocks if b.lang in RUN and not (b.directive or "").startswith("skip:")]
    assert ran == expected, (ran, expected)
    # What a user reads after the blocks, checked where it matters.
    assert "all 20000 rows arrived intact" in output
    assert "configuration OK: 1 route(s)" in output
    assert "sent 1 batches: 2 rows accepted, 0 rejected" in errors
    assert "wrote events.desc: messages shop.v1.Event;" in output
    assert 'ingest_bridge_sent_rows_total{outcome="ok",route="clicks",target="timeplus"} 2.0' in output
    assert "accepted 1 rows in 1 requests" in output  # the Timeplus emulator took its --rules file's key
    assert "10000 0 []" in output  # the Python client's accepted, rejected, failed
    assert '{"steps": 3}{"steps": 0}' in output  # faulty's script: three steps queued, then cleared
