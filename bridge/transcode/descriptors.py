"""The caller's own message types, from a FileDescriptorSet named in the route config.

Each top-level field becomes a column, in descriptor order. Getters are built
once per message type from its descriptor, never per row (json_format is ten
times slower and writes int64 as strings). Values follow protobuf's canonical
JSON mapping, with 64-bit integers as numbers: map keys as strings in sorted
order, well-known types in their JSON form, unknown enum numbers as strings.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from bridge.model.errors import ConfigError
from bridge.transcode.timefmt import TimeFormatter, formatter, fraction
from bridge.transcode.values import b64

_WKT = "google.protobuf."
_WRAPPERS = {f"{_WKT}{n}Value" for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String",
                                         "Bytes")}
# Types whose JSON is not an object of their fields: inside an Any they go as {"@type": ..., "value": ...}.
_SPECIAL_JSON = _WRAPPERS | {_WKT + n for n in ("Any", "Duration", "FieldMask", "ListValue", "Struct", "Timestamp",
                                                 "Value")}
_MAX_DURATION = 315_576_000_000  # seconds: the range google.protobuf.Duration allows
_F32 = struct.Struct("<f")
_SNAKE = re.compile(r"_([a-z])")
_FIRST_KEY = itemgetter(0)


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


def float32(x: float) -> float | None:
    """A float field at float precision: the fewest significant digits (1..9) that read back as the same float32."""
    if not math.isfinite(x):
        return None
    for digits in range(1, 10):
        y = float(f"{x:.{digits}g}")
        try:
            if _F32.unpack(_F32.pack(y))[0] == x:
                return y
        except OverflowError:  # rounded up past the largest float32: more digits come back down
            continue
    return x


def duration(m: Any) -> str:
    """google.protobuf.Duration as protobuf's JSON: "-1.500s" (0, 3, 6 or 9 fraction digits)."""
    s, n = m.seconds, m.nanos
    if not (-_MAX_DURATION <= s <= _MAX_DURATION and -1_000_000_000 < n < 1_000_000_000) or s * n < 0:
        raise ValueError(f"duration {s}s {n}ns is not a valid google.protobuf.Duration")
    text = f"{'-' if s < 0 or n < 0 else ''}{abs(s)}"
    return f"{text}{fraction(abs(n)) if n else ''}s"


def _pvalue(v: Any) -> Any:
    """google.protobuf.Value as its JSON (NaN and infinities as null, like every double)."""
    k = v.WhichOneof("kind")
    if k == "string_value":
        return v.string_value
    if k == "number_value":
        return _finite(v.number_value)
    if k == "bool_value":
        return v.bool_value
    if k == "struct_value":
        return _struct(v.struct_value)
    if k == "list_value":
        return [_pvalue(x) for x in v.list_value.values]
    return None  # null_value, or no kind at all


def _struct(s: Any) -> dict:
    fields = s.fields
    return {k: _pvalue(fields[k]) for k in sorted(fields)}


def _field_mask(m: Any) -> str:
    return ",".join(_SNAKE.sub(lambda g: g.group(1).upper(), p) for p in m.paths)


def _map_key(f: FieldDescriptor) -> Callable[[Any], str] | None:
    """Map keys as protobuf's JSON writes them: strings; integers in decimal, bools as true/false."""
    if f.type == FieldDescriptor.TYPE_STRING:
        return None
    if f.type == FieldDescriptor.TYPE_BOOL:
        return lambda k: "true" if k else "false"
    return str


class MessageTypes:
    """The message types of one route's descriptor set, decoders built on first use.

    ``rfc3339_columns``: top-level Timestamp fields written as RFC 3339 whatever ``timestamps`` says
    (Timeplus' ``_tp_time``).
    """

    def __init__(self, path: str, ts: TimeFormatter, rfc3339_columns: frozenset[str] = frozenset()) -> None:
        self.path = path
        self.pool = load_pool(path)
        self.ts = ts
        self.rfc3339_columns = rfc3339_columns
        self._cache: dict[str, MessageRows] = {}
        self._objects: dict[str, Callable[[Any], Any]] = {}

    def get(self, type_name: str) -> MessageRows | None:
        cached = self._cache.get(type_name)
        if cached is None:
            try:
                desc = self.pool.FindMessageTypeByName(type_name)
            except KeyError:
                return None
            cached = self._cache[type_name] = MessageRows(desc, self)
        return cached

    # -- converters, one per message type (shared by every type that nests it) ---------------------
    def converter(self, desc: Descriptor) -> Callable[[Any], Any]:
        """A function from a message of this type to its JSON value."""
        name = desc.full_name
        conv = self._objects.get(name)
        if conv is not None:
            return conv
        if name == _WKT + "Timestamp":
            ts = self.ts
            conv = lambda m: ts(m.seconds, m.nanos)  # noqa: E731
        elif name == _WKT + "Duration":
            conv = duration
        elif name in _WRAPPERS:
            inner = self.element(desc.fields_by_name["value"])
            conv = (lambda m: inner(m.value)) if inner else attrgetter("value")
        elif name == _WKT + "Struct":
            conv = _struct
        elif name == _WKT + "Value":
            conv = _pvalue
        elif name == _WKT + "ListValue":
            conv = lambda m: [_pvalue(x) for x in m.values]  # noqa: E731
        elif name == _WKT + "FieldMask":
            conv = _field_mask
        elif name == _WKT + "Any":
            conv = self._any
        else:
            # Registered before its fields are built: a message type may hold itself.
            built: list[Callable[[Any], Any]] = []
            self._objects[name] = lambda m: built[0](m)
            row = self.row_getter(desc)
            cols = tuple(f.name for f in desc.fields)
            built.append(lambda m: dict(zip(cols, row(m), strict=True)))
            self._objects[name] = built[0]
            return built[0]
        self._objects[name] = conv
        return conv

    def _any(self, m: Any) -> dict:
        url = m.type_url
        name = url.rpartition("/")[2]
        try:
            desc = self.pool.FindMessageTypeByName(name)
        except KeyError:
            raise ValueError(f"google.protobuf.Any holds {name!r}, which is not in the route's descriptor set") \
                from None
        cls = message_factory.GetMessageClass(desc)
        try:
            inner = cls.FromString(m.value)
        except Exception as e:  # DecodeError: name the Any, not the row's own type
            raise ValueError(f"google.protobuf.Any of type {name!r} does not decode: {e}") from None
        value = self.converter(desc)(inner)
        if name in _SPECIAL_JSON:
            return {"@type": url, "value": value}
        return {"@type": url, **value}

    def element(self, f: FieldDescriptor, ts: TimeFormatter | None = None) -> Callable[[Any], Any] | None:
        """A converter for one element of field f, or None when the Python value is already JSON-ready."""
        t = f.type
        if t == FieldDescriptor.TYPE_BYTES:
            return b64
        if t == FieldDescriptor.TYPE_DOUBLE:
            return _finite
        if t == FieldDescriptor.TYPE_FLOAT:
            return float32
        if t == FieldDescriptor.TYPE_ENUM:
            if f.enum_type.full_name == _WKT + "NullValue":
                return lambda n: None
            names = {v.number: v.name for v in f.enum_type.values}
            # An open enum keeps numbers it does not define: written as a string, so a column holds strings only.
            return lambda n: names.get(n) or str(n)
        if t in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            if ts is not None and f.message_type.full_name == _WKT + "Timestamp":
                return lambda m: ts(m.seconds, m.nanos)
            return self.converter(f.message_type)
        return None

    def field_getter(self, f: FieldDescriptor, ts: TimeFormatter | None = None) -> Callable[[Any], Any] | None:
        name = f.name
        get = attrgetter(name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            entry = f.message_type.fields_by_name
            key, value = _map_key(entry["key"]), self.element(entry["value"])
            # Sorted keys: every process writes the same bytes for the same map.
            if key is None and value is None:
                return lambda m: dict(sorted(get(m).items(), key=_FIRST_KEY))
            key = key or str
            value = value or (lambda v: v)
            return lambda m: dict(sorted(((key(k), value(v)) for k, v in get(m).items()), key=_FIRST_KEY))
        conv = self.element(f, ts)
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

    def row_getter(self, desc: Descriptor, top: bool = False) -> Callable[[Any], tuple]:
        rfc = formatter("rfc3339") if top and self.rfc3339_columns else None
        getters = [self.field_getter(f, rfc if f.name in self.rfc3339_columns else None) if top
                   else self.field_getter(f) for f in desc.fields]
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


class MessageRows:
    """Decodes serialized messages of one type into rows of JSON-ready values."""

    def __init__(self, desc: Descriptor, types: MessageTypes) -> None:
        self.cls = message_factory.GetMessageClass(desc)
        self.columns = tuple(f.name for f in desc.fields)
        self.to_row = types.row_getter(desc, top=True)
