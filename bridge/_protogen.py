"""Compile the contract in protos/ to Python (used by scripts/gen_protos.py and the tests)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
OUT_DIR = Path(__file__).resolve().parent / "_proto"
CONTRACT = ["ingestbridge/v1/ingest.proto"]


def _include_dirs() -> list[str]:
    import grpc_tools

    return [str(PROTO_DIR), str(Path(grpc_tools.__file__).parent / "_proto")]


def compile_descriptor_set(out_file: Path) -> None:
    """Write a FileDescriptorSet of the contract (without imports) to out_file."""
    from grpc_tools import protoc

    args = ["protoc", *(f"-I{d}" for d in _include_dirs()), f"--descriptor_set_out={out_file}", *CONTRACT]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + ", ".join(CONTRACT))


def generate(out_dir: Path) -> list[Path]:
    """Generate *_pb2.py, *_pb2.pyi and *_pb2_grpc.py under out_dir; return the files."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        *(f"-I{d}" for d in _include_dirs()),
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *CONTRACT,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + ", ".join(CONTRACT))
    files = sorted(p for p in out_dir.rglob("*.py*") if "__pycache__" not in p.parts)
    for path in files:
        text = path.read_text()
        # Generated code imports its siblings as top-level "ingestbridge";
        # they live inside the bridge package.
        fixed = re.sub(r"^from ingestbridge\.", "from bridge._proto.ingestbridge.", text, flags=re.M)
        if fixed != text:
            path.write_text(fixed)
    for pkg in {p.parent for p in files} | {out_dir}:
        current = pkg
        while current != out_dir.parent:
            init = current / "__init__.py"
            if not init.exists():
                init.write_text("")
            current = current.parent
    return files
