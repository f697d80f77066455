"""The caller's own message types, from a FileDescriptorSet named in the route config.

Each top-level field becomes a column. Getters are built once per message
type from its descriptor, never per row (json_format is ten times slower and
writes int64 as strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from bridge.dialects.base import b64
from bridge.errors import ConfigError
from bridge.timefmt import TimeFormatter

_WRAPPERS = {
    f"google.protobuf.{n}Value" for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String")
}


def load_pool(path: str | Path) -> descriptor_pool.DescriptorPool:
    """A descriptor pool holding every file of the set (made with protoc --include_imports)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"descriptor set {path}: cannot read: {e.strerror}") from None
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(data)
    except Exception:
        raise ConfigError(f"descriptor set {path}: not a FileDescriptorSet") from None
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in fds.file}
    added: set[str] = set()

    def add(name: str, trail: tuple[str, ...] = ()) -> None:
        if name in added:
            return
        fd = pending.get(name)
        if fd is None:
            raise ConfigError(
                f"descriptor set {path}: {trail[-1] if trail else name} imports {name}, which is not in the set "
                "(make it with protoc --include_imports)"
            )
        for dep in fd.dependency:
            add(dep, (*trail, name))
        pool.AddSerializedFile(fd.SerializeToString())
        added.add(name)

    for name in pending:
        add(name)
    return pool


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class MessageRows:
    """Decodes serialized messages of one type into rows of JSON-ready values."""

    def __init__(self, desc: Descriptor, ts: TimeFormatter) -> None:
        self.cls = message_factory.GetMessageClass(desc)
        self.columns = tuple(f.name for f in desc.fields)
        self._ts = ts
        self.to_row = self._row_getter(desc)

    def _row_getter(self, desc: Descriptor) -> Callable[[Any], tuple]:
        getters = [self._field_getter(f) for f in desc.fields]
        if all(g is None for g in getters):
            names = [f.name for f in desc.fields]
            if len(names) == 1:
                one = attrgetter(names[0])
                return lambda m: (one(m),)
            if not names:
                return lambda m: ()
            # Plain scalars only: one C-level call per row.
            return attrgetter(*names)
        funcs = [g or attrgetter(f.name) for g, f in zip(getters, desc.fields, strict=True)]
        return lambda m: tuple([g(m) for g in funcs])

    def _convert(self, f: FieldDescriptor) -> Callable[[Any], Any] | None:
        """A converter for one element of field f, or None when the Python value is already JSON-ready."""
        t = f.type
        if t == FieldDescriptor.TYPE_BYTES:
            return b64
        if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return _finite
        if t == FieldDescriptor.TYPE_ENUM:
            values = f.enum_type.values_by_number
            return lambda n: values[n].name if n in values else n
        if t in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            return self._message_converter(f.message_type)
        return None

    def _message_converter(self, desc: Descriptor) -> Callable[[Any], Any]:
        name = desc.full_name
        if name == "google.protobuf.Timestamp":
            ts = self._ts
            return lambda m: ts(m.seconds, m.nanos)
        if name in _WRAPPERS:
            inner = self._convert(desc.fields_by_name["value"])
            return (lambda m: inner(m.value)) if inner else attrgetter("value")
        if name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
            from google.protobuf import json_format

            return json_format.MessageToDict
        row = self._row_getter(desc)
        cols = tuple(f.name for f in desc.fields)
        return lambda m: dict(zip(cols, row(m), strict=True))

    def _field_getter(self, f: FieldDescriptor) -> Callable[[Any], Any] | None:
        name = f.name
        get = attrgetter(name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vconv = self._convert(f.message_type.fields_by_name["value"])
            if vconv is None:
                return lambda m: dict(get(m))
            return lambda m: {str(k): vconv(v) for k, v in get(m).items()}
        conv = self._convert(f)
        if f.is_repeated:
            if conv is None:
                return lambda m: list(get(m))
            return lambda m: [conv(x) for x in get(m)]
        if f.has_presence:
            if conv is None:
                return lambda m: get(m) if m.HasField(name) else None
            return lambda m: conv(get(m)) if m.HasField(name) else None
        if conv is None:
            return None
        return lambda m: conv(get(m))


class MessageTypes:
    """The message types of one route's descriptor set, decoders built on first use."""

    def __init__(self, path: str, ts: TimeFormatter) -> None:
        self.path = path
        self.pool = load_pool(path)
        self._ts = ts
        self._cache: dict[str, MessageRows] = {}

    def get(self, type_name: str) -> MessageRows | None:
        cached = self._cache.get(type_name)
        if cached is None:
            try:
                desc = self.pool.FindMessageTypeByName(type_name)
            except KeyError:
                return None
            cached = self._cache[type_name] = MessageRows(desc, self._ts)
        return cached
