"""The wire contract: generated code matches protos/, and every element is documented."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from bridge._protogen import CONTRACT, PROTO_DIR, _include_dirs, compile_descriptor_set
from bridge.proto import pb


def _compiled(tmp_path: Path, source_info: bool = False) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path / "contract.desc"
    if source_info:
        from grpc_tools import protoc

        args = ["protoc", *(f"-I{d}" for d in _include_dirs()), "--include_source_info",
                f"--descriptor_set_out={out}", *CONTRACT]
        assert protoc.main(args) == 0
    else:
        compile_descriptor_set(out)
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (fd,) = [f for f in fds.file if f.name == CONTRACT[0]]
    return fd


def _without_json_names(fd: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    # The Python generator embeds descriptors without json_name; protoc's set has them.
    def strip(msgs):
        for m in msgs:
            for f in m.field:
                f.ClearField("json_name")
            strip(m.nested_type)

    strip(fd.message_type)
    return fd


def test_generated_code_matches_the_proto_files(tmp_path):
    fresh = _without_json_names(_compiled(tmp_path))
    # The exact descriptor protoc embedded in the generated module.
    committed = _without_json_names(descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb))
    assert committed == fresh, "bridge/_proto is out of date: run python scripts/gen_protos.py"


def test_grpc_stubs_name_every_rpc():
    source = (Path(pb.__file__).parent / "ingest_pb2_grpc.py").read_text()
    for method in pb.DESCRIPTOR.services_by_name["IngestService"].methods:
        assert f"/ingestbridge.v1.IngestService/{method.name}" in source


def test_every_message_field_enum_and_rpc_is_documented(tmp_path):
    fd = _compiled(tmp_path, source_info=True)
    commented = {
        tuple(loc.path)
        for loc in fd.source_code_info.location
        if loc.leading_comments.strip() or loc.trailing_comments.strip()
    }
    missing = []
    for mi, msg in enumerate(fd.message_type):
        if (4, mi) not in commented:
            missing.append(msg.name)
        missing += [f"{msg.name}.{f.name}" for fi, f in enumerate(msg.field) if (4, mi, 2, fi) not in commented]
    for ei, enum in enumerate(fd.enum_type):
        missing += [f"{enum.name}.{v.name}" for vi, v in enumerate(enum.value) if (5, ei, 2, vi) not in commented]
    for si, svc in enumerate(fd.service):
        missing += [f"{svc.name}.{m.name}" for mi, m in enumerate(svc.method) if (6, si, 2, mi) not in commented]
    # Value's oneof members are documented one by one, except null (the oneof says unset is null).
    missing = [m for m in missing if m != "Value.null"]
    assert not missing, f"undocumented in {PROTO_DIR / CONTRACT[0]}: {missing}"


# -- buf: lint and breaking-change check ------------------------------------------------------------------

BUF = Path(__file__).resolve().parents[1] / "tools" / "buf" / "node_modules" / ".bin" / "buf"
needs_buf = pytest.mark.skipif(not BUF.exists(), reason="buf is missing: npm ci --prefix tools/buf")


def _buf(*args: str, cwd: Path = PROTO_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_buf
def test_buf_lint_passes_with_only_the_written_down_exceptions():
    r = _buf("lint")
    assert r.returncode == 0, r.stdout + r.stderr


@needs_buf
def test_the_contract_is_compatible_with_v1_as_released():
    r = _buf("breaking", "--against", "baseline/ingestbridge-v1.binpb")
    assert r.returncode == 0, r.stdout + r.stderr


@needs_buf
def test_buf_breaking_would_catch_a_renumbered_field(tmp_path):
    # The check above can fail: the same contract with one field renumbered is refused.
    copy = tmp_path / "protos"
    shutil.copytree(PROTO_DIR, copy)
    proto = copy / "ingestbridge" / "v1" / "ingest.proto"
    text = proto.read_text()
    assert "uint64 sequence = 2;" in text
    proto.write_text(text.replace("uint64 sequence = 2;", "uint64 sequence = 42;", 1))
    r = _buf("breaking", "--against", "baseline/ingestbridge-v1.binpb", cwd=copy)
    assert r.returncode != 0 and "sequence" in r.stdout + r.stderr
