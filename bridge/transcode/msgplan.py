"""A MessageBatch type flattened for the native transcoder (native/src/plan.rs).

The plan is built here, from the same descriptor pool the Python transcoder reads
(``descriptors.MessageTypes``), rather than by a second FileDescriptorSet reader in Rust: presence,
packing, closed enums, UTF-8 checks and map entries are then upb's own reading of the descriptors, and
each choice ``descriptors.py`` makes (which types are written specially, which columns are RFC 3339) is
made in one place. It is built once per type, on the first batch of it.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from bridge.transcode.descriptors import _WKT, _WRAPPERS, MessageTypes

# How a message type is written as a field's value (plan.rs ``Special``).
PLAIN, TIMESTAMP, DURATION, WRAPPER, OTHER = range(5)
# A field's cardinality (plan.rs ``Card``).
IMPLICIT, PRESENCE, REPEATED, MAP = range(4)
_OTHER = {_WKT + n for n in ("Any", "FieldMask", "ListValue", "Struct", "Value")}
_VERIFY = 2  # FeatureSet.Utf8Validation.VERIFY


def _special(desc: Descriptor) -> int:
    name = desc.full_name
    if name == _WKT + "Timestamp":
        return TIMESTAMP
    if name == _WKT + "Duration":
        return DURATION
    if name in _WRAPPERS:
        return WRAPPER
    return OTHER if name in _OTHER else PLAIN


def _checks_utf8(f: FieldDescriptor) -> bool:
    """Whether upb refuses a message whose string field is not UTF-8 (proto3 and editions' VERIFY)."""
    try:
        return f._GetFeatures().utf8_validation == _VERIFY
    except Exception:  # an older protobuf: the native path leaves such strings to Python
        return False


class _Builder:
    def __init__(self, fixed: frozenset[str]) -> None:
        self.fixed = fixed
        self.messages: list[Any] = []
        self.enums: list[Any] = []
        self._message_index: dict[str, int] = {}
        self._enum_index: dict[str, int] = {}

    def message(self, desc: Descriptor, top: bool = False) -> int:
        """The plan index of a message type; the row type (``top``) is always plain and first."""
        if not top:
            known = self._message_index.get(desc.full_name)
            if known is not None:
                return known
        at = len(self.messages)
        self.messages.append(None)
        special = PLAIN if top else _special(desc)
        if not top:
            self._message_index[desc.full_name] = at  # before its fields: a type may hold itself
        fields = [] if special == OTHER else [self.field(f, top) for f in desc.fields]
        self.messages[at] = (special, fields)
        return at

    def enum(self, desc: EnumDescriptor) -> int:
        known = self._enum_index.get(desc.full_name)
        if known is None:
            # As descriptors.py: a number given two names (allow_alias) is written with the last.
            names = {v.number: v.name for v in desc.values}
            known = self._enum_index[desc.full_name] = len(self.enums)
            self.enums.append((desc.full_name == _WKT + "NullValue", bool(desc.is_closed),
                               [(n, orjson.dumps(name)) for n, name in names.items()]))
        return known

    def field(self, f: FieldDescriptor, top: bool) -> tuple:
        sub = 0
        if f.message_type is not None:
            sub = self.message(f.message_type)
        elif f.enum_type is not None:
            sub = self.enum(f.enum_type)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            card = MAP
        elif f.is_repeated:
            card = REPEATED
        elif f.has_presence:
            card = PRESENCE
        else:
            card = IMPLICIT
        oneof = f.containing_oneof.index if f.containing_oneof is not None else -1
        rfc3339 = (top and f.name in self.fixed and f.message_type is not None
                   and f.message_type.full_name == _WKT + "Timestamp")
        return (f.number, orjson.dumps(f.name) + b":", f.type, card, sub, oneof,
                f.type == FieldDescriptor.TYPE_STRING and _checks_utf8(f), rfc3339)


def build(types: MessageTypes, type_name: str) -> tuple | None:
    """The plan of ``type_name`` (plan.rs ``PlanSpec``), or None where the route's set has no such type."""
    try:
        desc = types.pool.FindMessageTypeByName(type_name)
    except KeyError:
        return None
    b = _Builder(types.rfc3339_columns)
    b.message(desc, top=True)
    return desc.full_name, b.messages, b.enums
