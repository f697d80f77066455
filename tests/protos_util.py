"""Compile the tests' own .proto files the way a user would (grpc_tools.protoc)."""

from __future__ import annotations

from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent / "protos"


def compile_descriptor_set(out: Path, *protos: str, include_imports: bool = True) -> Path:
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{HERE}", f"-I{wkt}", f"--descriptor_set_out={out}"]
    if include_imports:
        args.append("--include_imports")
    assert protoc.main([*args, *protos]) == 0
    return out


def load_message_classes(path: Path) -> dict[str, type]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.AddSerializedFile(f.SerializeToString())
    out = {}
    for f in fds.file:
        for m in f.message_type:
            name = f"{f.package}.{m.name}" if f.package else m.name
            out[name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return out
