"""``ingest-bridge descriptor-set``: a .proto to the descriptor set a route names, with only the package installed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent

EVENT = """
syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
import "common/money.proto";
message Event { int64 id = 1; string name = 2; google.protobuf.Timestamp at = 3; common.Money price = 4; }
message Other { bool ok = 1; }
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_a_proto_with_imports_becomes_a_descriptor_set_a_route_takes(tmp_path):
    (tmp_path / "protos").mkdir()
    (tmp_path / "shared" / "common").mkdir(parents=True)
    (tmp_path / "shared" / "common" / "money.proto").write_text(
        'syntax = "proto3";\npackage common;\nmessage Money { int64 cents = 1; }\n')
    (tmp_path / "protos" / "event.proto").write_text(EVENT)
    out = tmp_path / "event.desc"
    p = run("descriptor-set", "protos/event.proto", "-I", "shared", "-o", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"wrote {out}: messages shop.v1.Event, shop.v1.Other;")
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    assert sorted(f.name for f in fds.file) == ["common/money.proto", "event.proto", "google/protobuf/timestamp.proto"]
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text(f"routes:\n  events:\n    dialect: http\n    url: http://127.0.0.1:9/\n"
                   f"    options: {{descriptor_set: {out}}}\n")
    p = run("check", "--config", str(cfg))
    assert p.returncode == 0, p.stderr


def test_a_missing_or_broken_proto_is_named(tmp_path):
    p = run("descriptor-set", str(tmp_path / "nope.proto"), "-o", str(tmp_path / "x.desc"))
    assert p.returncode == 2 and p.stderr == f"ingest-bridge descriptor-set: {tmp_path / 'nope.proto'}: no such file\n"
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nmessage A { int64 x = 1 }\n')
    p = run("descriptor-set", str(bad), "-o", str(tmp_path / "x.desc"))
    assert p.returncode == 2 and 'bad.proto:2:25: Expected ";"' in p.stderr and "Traceback" not in p.stderr


def test_protoc_comes_with_a_plain_install():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("grpcio-tools") for d in deps), "descriptor-set needs grpcio-tools at run time"
