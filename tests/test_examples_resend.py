"""The examples follow the caller contract: after UNAVAILABLE (no bridge yet, then a target that answers 503)
they send again every batch not acknowledged, until each is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.test_examples import EXAMPLES, resends_after_unavailable, run


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
