"""The examples follow the caller contract: after UNAVAILABLE (no bridge yet, then a target that answers 503)
they send again every batch not acknowledged, until each is."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from bridge.config import parse_config
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.ingest.server import Bridge
from tests.test_examples import EXAMPLES, expected, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def resends_after_unavailable(cmd: list[str], prefix: str, rows: int = 500) -> None:
    target = FaultyTarget()
    await target.start()
    # The target answers its first request 503; the bridge makes one attempt, so that ack says UNAVAILABLE.
    target.script({"status": 503})
    port = free_port()
    config = parse_config(yaml.safe_dump({"listen": f"127.0.0.1:{port}", "http": None, "routes": {"r": {
        "dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
        "delivery": {"max_attempts": 1}}}}), env={})
    bridge = Bridge(config, http=False)
    # The client starts before the bridge listens: its stream fails with UNAVAILABLE (connection refused).
    proc = await asyncio.create_subprocess_exec(*cmd, f"127.0.0.1:{port}", "r", str(rows),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []
    try:
        while not any(line.startswith("stream failed: UNAVAILABLE") for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "".join(lines)
            lines.append(line.decode())
        await bridge.start()
        rest = await asyncio.wait_for(proc.stdout.read(), 60)
        rc = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await bridge.stop(grace=1.0)
        await target.stop()
    out = "".join(lines) + rest.decode()
    assert rc == 0, out
    half = rows // 2
    failed = {int(m) for m in re.findall(r"ack sequence=(\d) accepted=0 rejected=\d+ code=14", out)}
    assert failed, out  # at least one batch came back UNAVAILABLE from the target ...
    for seq in failed:  # ... and was sent again until the target took it
        assert re.search(rf"ack sequence={seq} accepted={half} rejected=0 code=0", out), out
    assert re.search(rf"done: {rows} rows accepted, [1-9]\d* batches resent", out), out
    # Every row once: the refused request kept nothing, the resends filled the gap.
    assert sorted(target.rows, key=lambda r: r["id"]) == expected(prefix, rows)


async def test_node_example_resends_what_was_not_acknowledged():
    node = shutil.which("node")
    if node is None or not (EXAMPLES / "node" / "node_modules" / "@grpc" / "grpc-js").exists():
        if os.environ.get("CI"):
            pytest.fail("node or examples/node/node_modules is missing: scripts/test.sh installs them")
        pytest.skip("node or its packages are missing (npm ci --prefix examples/node)")
    await resends_after_unavailable([node, str(EXAMPLES / "node" / "stream.js")], "node")


async def test_ruby_example_resends_what_was_not_acknowledged(tmp_path: Path):
    ruby, protoc = shutil.which("ruby"), shutil.which("grpc_tools_ruby_protoc")
    if ruby is None or protoc is None:
        if os.environ.get("CI"):
            pytest.fail("ruby-grpc / ruby-grpc-tools are missing: scripts/test.sh installs them from Debian")
        pytest.skip("ruby-grpc and ruby-grpc-tools are not installed")
    protos = EXAMPLES.parent / "protos"
    rc, out = await run(protoc, f"-I{protos}", f"--ruby_out={tmp_path}", f"--grpc_out={tmp_path}",
                        "ingestbridge/v1/ingest.proto", "google/rpc/status.proto")
    assert rc == 0, out
    await resends_after_unavailable([ruby, "-I", str(tmp_path), str(EXAMPLES / "ruby" / "stream.rb")], "ruby")


@pytest.mark.timeout(900)  # a cold module and build cache: downloads and compiles grpc-go
async def test_go_example_resends_what_was_not_acknowledged(tmp_path: Path):
    go, protoc = shutil.which("go"), shutil.which("protoc")
    if not (go and protoc):
        if os.environ.get("CI"):
            pytest.fail("go or protoc is missing: scripts/test.sh installs protoc (Go comes with the machine)")
        pytest.skip("go or protoc is not installed")
    module = EXAMPLES / "go"
    rc, out = await run(go, "generate", cwd=module, timeout=600)
    assert rc == 0, out
    rc, out = await run(go, "build", "-o", str(tmp_path / "ingest-client"), "./client", cwd=module, timeout=600)
    assert rc == 0, out
    await resends_after_unavailable([str(tmp_path / "ingest-client")], "go")
