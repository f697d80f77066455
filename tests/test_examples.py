"""The example clients in examples/ stream typed rows and columnar batches to a live bridge, rows intact."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridge.config import parse_config
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.ingest.server import Bridge

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


async def test_node_example(node_example, sink, bridge_factory):
    columns = {"id": "int", "name": "string?", "score": "double", "even": "bool"}
    bridge = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"},
                                         "columns": columns}})
    rc, out = await run(*node_example, f"127.0.0.1:{bridge.port}", "r", "500")
    assert rc == 0, out
    assert "route r: id int, name string (nullable), score double, even bool" in out.splitlines()
    assert "ack sequence=1 accepted=250" in out and "done: 500 rows accepted" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("node", 500)


async def test_ruby_example(ruby_example, bridge, sink):
    rc, out = await run(*ruby_example, f"127.0.0.1:{bridge.port}", "r", "500")
    assert rc == 0, out
    assert "done: 500 rows accepted" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("ruby", 500)


@pytest.mark.timeout(900)  # a cold module and build cache: downloads and compiles grpc-go
async def test_go_example(go_example, bridge, sink):
    rc, out = await run(*go_example, f"127.0.0.1:{bridge.port}", "r", "500")
    assert rc == 0, out
    assert "ack sequence=1 accepted=250" in out and "done: 500 rows accepted" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("go", 500)


def _missing(what: str, ci_hint: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} missing: {ci_hint}")
    pytest.skip(f"{what} missing")


def _built(cmd: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=840)
    assert done.returncode == 0, done.stdout


# Each example as a command line to which a test adds TARGET ROUTE ROWS; built once per test module.
@pytest.fixture(scope="module")
def node_example() -> list[str]:
    node = shutil.which("node")
    if node is None or not (EXAMPLES / "node" / "node_modules" / "@grpc" / "grpc-js").exists():
        _missing("node or examples/node/node_modules is", "scripts/test.sh runs npm ci --prefix examples/node")
    return [node, str(EXAMPLES / "node" / "stream.js")]


@pytest.fixture(scope="module")
def ruby_example(tmp_path_factory) -> list[str]:
    ruby, protoc = shutil.which("ruby"), shutil.which("grpc_tools_ruby_protoc")
    if ruby is None or protoc is None:
        _missing("ruby-grpc / ruby-grpc-tools are", "scripts/test.sh installs them from Debian")
    out = tmp_path_factory.mktemp("ruby")
    _built([protoc, f"-I{EXAMPLES.parent / 'protos'}", f"--ruby_out={out}", f"--grpc_out={out}",
            "ingestbridge/v1/ingest.proto", "google/rpc/status.proto"])
    return [ruby, "-I", str(out), str(EXAMPLES / "ruby" / "stream.rb")]


@pytest.fixture(scope="module")
def go_example(tmp_path_factory) -> list[str]:
    go, protoc = shutil.which("go"), shutil.which("protoc")
    if not (go and protoc):
        _missing("go or protoc is", "scripts/test.sh installs protoc (Go comes with the machine)")
    # A Go module: its dependencies from the module cache (scripts/test.sh fills it), the build cache reused.
    module = EXAMPLES / "go"
    binary = tmp_path_factory.mktemp("go") / "ingest-client"
    _built([go, "generate"], cwd=module)
    _built([go, "build", "-o", str(binary), "./client"], cwd=module)
    return [str(binary)]


@pytest.fixture(scope="module")
def java_example() -> list[str]:
    """Builds examples/java with Maven (incremental: protoc and javac run only on a change); its command line."""
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if not (java and mvn):
        if os.environ.get("CI"):
            pytest.fail("java or mvn is missing: scripts/test.sh installs them")
        pytest.skip("a JDK and Maven are not installed")
    cmd = [mvn, "-B", "-q", "-f", str(EXAMPLES / "java" / "pom.xml"), "package"]
    # Maven Central serves no protoc-gen-grpc-java executable here: an installed one (Debian's) is used if present.
    plugin = shutil.which("grpc_java_plugin")
    if plugin:
        cmd.append(f"-Dgrpc.java.plugin={plugin}")
    built = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=840)
    assert built.returncode == 0, built.stdout
    return [java, "-jar", str(EXAMPLES / "java" / "target" / "ingest-example.jar")]


@pytest.mark.timeout(900)  # the first build on a cold Maven repository downloads grpc-java
async def test_java_example(java_example, bridge, sink):
    rc, out = await run(*java_example, f"127.0.0.1:{bridge.port}", "r", "500")
    assert rc == 0, out
    assert "ack sequence=0 accepted=250 rejected=0 code=0" in out
    assert "ack sequence=1 accepted=250 rejected=0 code=0" in out
    assert "done: 500 rows accepted, 0 batches resent" in out
    assert sorted(sink.rows, key=lambda r: r["id"]) == expected("java", 500)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def resends_after_unavailable(cmd: list[str], prefix: str, rows: int = 500) -> FaultyTarget:
    """Run an example before the bridge listens, against a target that answers 503 once: every batch not
    acknowledged must be sent again until it is, and every row arrive once. Returns the target."""
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
    return target


@pytest.mark.timeout(900)
async def test_java_example_resends_what_was_not_acknowledged_after_unavailable(java_example):
    target = await resends_after_unavailable(java_example, "java")
    assert not target.requests[0].rows and target.steps == []  # the 503 was answered, its rows not kept


# The caller contract: after UNAVAILABLE (no bridge yet, then a target that answers 503) each example sends
# again every batch not acknowledged, until each is (the Java one above too).
async def test_node_example_resends_what_was_not_acknowledged(node_example):
    await resends_after_unavailable(node_example, "node")


async def test_ruby_example_resends_what_was_not_acknowledged(ruby_example):
    await resends_after_unavailable(ruby_example, "ruby")


@pytest.mark.timeout(900)  # a cold module and build cache: downloads and compiles grpc-go
async def test_go_example_resends_what_was_not_acknowledged(go_example):
    await resends_after_unavailable(go_example, "go")
