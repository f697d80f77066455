"""Random message types and random messages of them, for the native MessageBatch differential tests.

``schemas()`` draws a .proto file as a FileDescriptorProto (proto3 mostly, proto2 now and then): a few
message types whose fields are every scalar type, enums (with aliases, negative numbers), messages of the
file (a type may hold itself), repeated fields packed and unpacked, maps of every key type, oneofs, proto3
``optional``, google.protobuf.Timestamp, Duration, the wrappers and, rarely, Struct. ``fill()`` draws a
message of such a type through the real protobuf runtime (message_factory), so its wire bytes are what a
caller's library writes.
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import strategies as st

F = descriptor_pb2.FieldDescriptorProto
SCALARS = [F.TYPE_DOUBLE, F.TYPE_FLOAT, F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_INT32, F.TYPE_FIXED64, F.TYPE_FIXED32,
           F.TYPE_BOOL, F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_UINT32, F.TYPE_SFIXED32, F.TYPE_SFIXED64, F.TYPE_SINT32,
           F.TYPE_SINT64]
KEYS = [t for t in SCALARS if t not in (F.TYPE_DOUBLE, F.TYPE_FLOAT, F.TYPE_BYTES)]
WKT = [".google.protobuf.Timestamp", ".google.protobuf.Duration", ".google.protobuf.Int64Value",
       ".google.protobuf.UInt32Value", ".google.protobuf.DoubleValue", ".google.protobuf.FloatValue",
       ".google.protobuf.BoolValue", ".google.protobuf.StringValue", ".google.protobuf.BytesValue"]
DEPS = [timestamp_pb2, duration_pb2, wrappers_pb2, struct_pb2]
RANGES = {
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1), F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
}
# The descriptor sets drawn, as files (a route names its set by path); removed at exit.
_DIR = tempfile.TemporaryDirectory(prefix="msgdiff-")
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8) | st.sampled_from(
    ["", "a\"b\\c", "\x00\x1f\x7f", "\u2028é𝄞", "\n\r\t"])


@dataclass
class Schema:
    file: descriptor_pb2.FileDescriptorProto
    proto2: bool
    odd: bool = False  # holds a field the native path leaves to Python where present (Struct)
    path: Path = field(default=Path())
    pool: Any = None

    def cls(self, name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(f"t.{name}"))


def _enum(draw: st.DrawFn, f: descriptor_pb2.FileDescriptorProto, k: int, proto2: bool) -> None:
    e = f.enum_type.add(name=f"E{k}")
    numbers = draw(st.lists(st.integers(-5, 5) | st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=4))
    if not proto2:
        numbers = [0, *numbers]
    if len(set(numbers)) != len(numbers):
        e.options.allow_alias = True
    for i, n in enumerate(numbers):
        e.value.add(name=f"E{k}_V{i}", number=n)


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    proto2 = draw(st.integers(0, 4)) == 0
    f = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto2" if proto2 else "proto3",
                                           dependency=[d.DESCRIPTOR.name for d in DEPS])
    n_enums = draw(st.integers(0, 2))
    for k in range(n_enums):
        _enum(draw, f, k, proto2)
    n_msgs = draw(st.integers(1, 3))
    schema = Schema(f, proto2)
    for k in range(n_msgs):
        m = f.message_type.add(name=f"M{k}")
        numbers = draw(st.lists(st.integers(1, 40) | st.sampled_from([300, 5000, 2**29 - 1]), unique=True,
                                max_size=9))
        oneofs: list[int] = []
        for i, num in enumerate(numbers):
            fd = m.field.add(name=f"f{i}", number=num, label=F.LABEL_OPTIONAL)
            what = draw(st.sampled_from(["scalar"] * 6 + ["enum", "message", "wkt", "wkt", "map", "struct"]))
            if what == "enum" and (n_enums or not proto2):
                enums = [f".t.E{e}" for e in range(n_enums)] + ([] if proto2 else [".google.protobuf.NullValue"])
                fd.type, fd.type_name = F.TYPE_ENUM, draw(st.sampled_from(enums))
            elif what == "message":
                fd.type, fd.type_name = F.TYPE_MESSAGE, f".t.M{draw(st.integers(0, n_msgs - 1))}"
            elif what == "wkt":  # Timestamp most often
                fd.type, fd.type_name = F.TYPE_MESSAGE, draw(st.sampled_from(WKT[:1] * 4 + WKT))
            elif what == "struct" and draw(st.integers(0, 3)) == 0:
                fd.type, fd.type_name = F.TYPE_MESSAGE, ".google.protobuf.Struct"
                schema.odd = True
            elif what == "map":
                entry = m.nested_type.add(name=f"F{i}Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, label=F.LABEL_OPTIONAL, type=draw(st.sampled_from(KEYS)))
                value = entry.field.add(name="value", number=2, label=F.LABEL_OPTIONAL)
                kind = draw(st.sampled_from(["scalar", "scalar", "message", "wkt", "enum"]))
                if kind == "message":
                    value.type, value.type_name = F.TYPE_MESSAGE, f".t.M{draw(st.integers(0, n_msgs - 1))}"
                elif kind == "wkt":
                    value.type, value.type_name = F.TYPE_MESSAGE, draw(st.sampled_from(WKT))
                elif kind == "enum" and n_enums and not proto2:  # (protoc: a proto2 map enum needs a 0 first)
                    value.type, value.type_name = F.TYPE_ENUM, f".t.E{draw(st.integers(0, n_enums - 1))}"
                else:
                    value.type = draw(st.sampled_from(SCALARS))
                fd.type, fd.type_name, fd.label = F.TYPE_MESSAGE, f".t.M{k}.F{i}Entry", F.LABEL_REPEATED
                continue
            else:
                fd.type = draw(st.sampled_from(SCALARS))
            how = draw(st.sampled_from(["single"] * 3 + ["repeated", "repeated", "oneof", "oneof", "optional",
                                                      "required"]))
            if how == "repeated":
                fd.label = F.LABEL_REPEATED
                if fd.type in SCALARS and fd.type not in (F.TYPE_STRING, F.TYPE_BYTES) and draw(st.booleans()):
                    fd.options.packed = not proto2  # the other encoding than the syntax's default
            elif how == "oneof":
                oneofs.append(i)
            elif how == "optional" and not proto2:
                fd.proto3_optional = True
            elif how == "required" and proto2:
                fd.label = F.LABEL_REQUIRED
        # Real oneofs first (one or two), then a synthetic one per proto3 optional field.
        groups = min(draw(st.integers(1, 2)), len(oneofs))
        for g in range(groups):
            m.oneof_decl.add(name=f"o{g}")
        for k, i in enumerate(oneofs):
            m.field[i].oneof_index = k % groups
        for fd in m.field:
            if fd.proto3_optional:
                fd.oneof_index = len(m.oneof_decl)
                m.oneof_decl.add(name=f"_{fd.name}")
    fds = descriptor_pb2.FileDescriptorSet()
    for d in DEPS:
        d.DESCRIPTOR.CopyToProto(fds.file.add())
    fds.file.append(f)
    pool = descriptor_pool.DescriptorPool()
    for fp in fds.file:
        pool.Add(fp)
    schema.pool = pool
    fd, name = tempfile.mkstemp(suffix=".desc", dir=_DIR.name)
    with open(fd, "wb") as out:
        out.write(fds.SerializeToString())
    schema.path = Path(name)
    return schema


def _scalar(draw: st.DrawFn, fd: FieldDescriptor) -> Any:
    t = fd.type
    if t in RANGES:
        lo, hi = RANGES[t]
        return draw(st.integers(lo, hi) | st.integers(max(lo, -3), min(hi, 3)))
    if t == F.TYPE_DOUBLE:
        return draw(st.floats() | st.sampled_from([0.0, -0.0, 1e16, 1e-5, 1e-7, 0.1]))
    if t == F.TYPE_FLOAT:
        bits = draw(st.integers(0, 2**32 - 1) | st.sampled_from([0x3DCCCCCD, 0x7F7FFFFF, 1, 0x80000000]))
        return struct.unpack("<f", struct.pack("<I", bits))[0]
    if t == F.TYPE_BOOL:
        return draw(st.booleans())
    if t == F.TYPE_STRING:
        return draw(text)
    if t == F.TYPE_BYTES:
        return draw(st.binary(max_size=8))
    if t == F.TYPE_ENUM:
        numbers = [v.number for v in fd.enum_type.values]
        if fd.enum_type.is_closed:
            return draw(st.sampled_from(numbers))
        return draw(st.sampled_from(numbers) | st.integers(-(2**31), 2**31 - 1))
    raise AssertionError(t)


def _time(draw: st.DrawFn, m: Any) -> None:
    m.seconds = draw(st.integers(-62135596800, 253402300799) | st.integers(-(2**63), 2**63 - 1)
                     | st.sampled_from([0, -1, 1_767_225_600]))
    m.nanos = draw(st.sampled_from([0, 1_000_000, 120_000, 5, 999_999_999, -1, -5, 10**9])
                   | st.integers(-(2**31), 2**31 - 1))


def fill(draw: st.DrawFn, m: Any, depth: int = 0) -> None:
    """Sets a random subset of m's fields (messages to a few levels) through protobuf's own setters."""
    name = m.DESCRIPTOR.full_name
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        _time(draw, m)
        return
    if name == "google.protobuf.Struct":
        m.fields["k"].string_value = draw(text)
        return
    for fd in m.DESCRIPTOR.fields:
        if not draw(st.integers(0, 2)):
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            target = getattr(m, fd.name)
            for _ in range(draw(st.integers(0, 3))):
                key = _scalar(draw, key_fd)
                if value_fd.message_type is not None:
                    if depth < 3:
                        fill(draw, target[key], depth + 1)
                    else:
                        target[key].SetInParent()
                else:
                    target[key] = _scalar(draw, value_fd)
            continue
        if fd.message_type is not None:
            if depth >= 3:
                continue
            if fd.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    fill(draw, getattr(m, fd.name).add(), depth + 1)
            else:
                sub = getattr(m, fd.name)
                sub.SetInParent()
                fill(draw, sub, depth + 1)
            continue
        if fd.is_repeated:
            for _ in range(draw(st.integers(0, 3))):
                getattr(m, fd.name).append(_scalar(draw, fd))
        else:
            setattr(m, fd.name, _scalar(draw, fd))
