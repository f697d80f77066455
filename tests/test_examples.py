"""The example clients in examples/ stream typed rows and columnar batches to a live bridge, rows intact."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def expected(prefix: str, n: int) -> list[dict]:
    return [{"id": i, "name": f"{prefix}-{i}", "score": i / 4, "even": i % 2 == 0} for i in range(n)]


async def run(*cmd: str, cwd: Path | None = None, timeout: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode()


@pytest.fixture
async def bridge(sink, bridge_factory):
    return await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}})


async def test_python_example(bridge, sink):
    rc, out = await run(sys.executable, str(EXAMPLES / "python" / "stream.py"), f"127.0.0.1:{bridge.port}", "r", "500")
    assert rc == 0, out
    assert "ack sequence=0 accepted=250" in out and "done: 500 rows accepted" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("python", 500)


async def test_node_example(bridge, sink):
    node = shutil.which("node")
    if node is None or not (EXAMPLES / "node" / "node_modules" / "@grpc" / "grpc-js").exists():
        if os.environ.get("CI"):
            pytest.fail("node or examples/node/node_modules is missing: scripts/test.sh installs them")
        pytest.skip("node or its packages are missing (npm ci --prefix examples/node)")
    rc, out = await run(node, str(EXAMPLES / "node" / "stream.js"), f"127.0.0.1:{bridge.port}", "r", "500")
    assert rc == 0, out
    assert "ack sequence=1 accepted=250" in out and "done: 500 rows accepted" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("node", 500)


async def test_ruby_example(bridge, sink, tmp_path):
    ruby, protoc = shutil.which("ruby"), shutil.which("grpc_tools_ruby_protoc")
    if ruby is None or protoc is None:
        if os.environ.get("CI"):
            pytest.fail("ruby-grpc / ruby-grpc-tools are missing: scripts/test.sh installs them from Debian")
        pytest.skip("ruby-grpc and ruby-grpc-tools are not installed")
    protos = EXAMPLES.parent / "protos"
    rc, out = await run(protoc, f"-I{protos}", f"--ruby_out={tmp_path}", f"--grpc_out={tmp_path}",
                        "ingestbridge/v1/ingest.proto", "google/rpc/status.proto")
    assert rc == 0, out
    rc, out = await run(ruby, "-I", str(tmp_path), str(EXAMPLES / "ruby" / "stream.rb"), f"127.0.0.1:{bridge.port}",
                        "r", "500")
    assert rc == 0, out
    assert "done: 500 rows accepted" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("ruby", 500)


@pytest.mark.timeout(900)  # a cold module and build cache: downloads and compiles grpc-go
async def test_go_example(bridge, sink, tmp_path):
    go, protoc = shutil.which("go"), shutil.which("protoc")
    if not (go and protoc):
        if os.environ.get("CI"):
            pytest.fail("go or protoc is missing: scripts/test.sh installs protoc (Go comes with the machine)")
        pytest.skip("go or protoc is not installed")
    # A Go module: its dependencies from the module cache (scripts/test.sh fills it), the build cache reused.
    module = EXAMPLES / "go"
    rc, out = await run(go, "generate", cwd=module, timeout=600)
    assert rc == 0, out
    rc, out = await run(go, "build", "-o", str(tmp_path / "ingest-client"), "./client", cwd=module, timeout=600)
    assert rc == 0, out
    rc, out = await run(str(tmp_path / "ingest-client"), f"127.0.0.1:{bridge.port}", "r", "500")
    assert rc == 0, out
    assert "ack sequence=1 accepted=250" in out and "done: 500 rows accepted" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("go", 500)
