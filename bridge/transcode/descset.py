"""``ingest-bridge descriptor-set``: a .proto file as the FileDescriptorSet a route's ``descriptor_set`` names.

protoc is the only reader of .proto files; grpcio-tools carries it (and the
well-known types) as a Python package, so it is a dependency of the bridge.
"""

from __future__ import annotations

from pathlib import Path


def make(proto: str, out: str, includes: list[str]) -> list[str]:
    """Write the set (imports included); the full names of the messages ``proto`` defines.

    ValueError saying what is wrong (protoc writes its own messages to standard error).
    """
    try:
        from grpc_tools import protoc
    except ImportError:  # only when installed without its dependencies
        raise ValueError("making a descriptor set needs grpcio-tools: pip install grpcio-tools") from None
    from google.protobuf import descriptor_pb2

    src = Path(proto)
    if not src.is_file():
        raise ValueError(f"{proto}: no such file")
    # The file's own directory first, then the user's, then the well-known types that come with grpcio-tools.
    roots = [str(src.parent.resolve()), *includes, str(Path(protoc.__file__).parent / "_proto")]
    name = src.resolve().relative_to(Path(roots[0])).as_posix()
    args = ["protoc", *(f"-I{r}" for r in roots), "--include_imports", f"--descriptor_set_out={out}", name]
    rc = protoc.main(args)
    if rc != 0:
        raise ValueError(f"protoc could not compile {proto} (its messages are above)")
    fds = descriptor_pb2.FileDescriptorSet.FromString(Path(out).read_bytes())
    mine = next(f for f in fds.file if f.name == name)
    prefix = f"{mine.package}." if mine.package else ""
    return [prefix + m.name for m in mine.message_type]
