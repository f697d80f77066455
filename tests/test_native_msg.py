"""The native MessageBatch transcoder against the Python one (its oracle), batch by batch.

Hypothesis draws message types (tests/msg_schemas.py: every scalar type, enums, nested and self-holding
messages, repeated fields packed and unpacked, maps, oneofs, proto3 optional, Timestamp, Duration, the
wrappers; proto2 now and then), messages of them written by the real protobuf runtime, and the route's
options (each ``timestamps`` mode, fixed RFC 3339 columns, a ``max_value_bytes`` small enough to bite).
Both transcoders read the same wire bytes; where the native one answers, its rows must be byte for byte the
Python path's JSON objects, with the same ops, caller indices and row errors. It may leave a batch to the
Python path (``None``) only where that path rejects the batch whole, or for the forms native/src/msgcheck.rs
names (a message field given twice, groups, a Struct, a closed enum's unknown number, an error inside a map
value): messages a caller's library writes are taken natively unless they hold a Struct or a bad map value.
Damaged messages (bytes flipped, cut, repeated) and glued ones (protobuf merges them) check the reader
against upb: the same rows and reasons, or left to Python.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bridge.model.config import LimitsConfig
from bridge.model.errors import BatchRejected
from bridge.proto import pb
from bridge.transcode import formats, msgplan
from bridge.transcode.decode import Decoder
from bridge.transcode.descriptors import MessageTypes
from bridge.transcode.native import _native as native
from bridge.transcode.timefmt import formatter
from tests.msg_schemas import Schema, fill, schemas
from tests.test_fuzz import ops as op_values
from tests.test_native_diff import DIFF, MODES, damaged

pytestmark = pytest.mark.skipif(native is None, reason="bridge._native is not built (no cargo at install time)")


def python_side(types: MessageTypes, mode: str, max_value: int, request: pb.IngestRequest, size: int):
    """(row objects, ops, index, errors), None for a batch rejection, or "raises" (orjson refuses a value)."""
    dec = Decoder(formatter(mode), types, mode=mode, limits=LimitsConfig(max_value_bytes=max_value),
                  rfc3339_columns=types.rfc3339_columns)
    dec.begin(size)
    try:
        rows, errors = dec.message_batch(request.messages)
        return formats.object_bytes(rows), rows.ops, rows.index, [(e.index, e.reason) for e in errors]
    except BatchRejected:
        return None
    except orjson.JSONEncodeError:
        return "raises"


def compare(schema: Schema, mode: str, max_value: int, fixed: frozenset[str], request: pb.IngestRequest,
            native_expected: bool = False) -> str:
    raw = request.SerializeToString()
    types = MessageTypes(str(schema.path), formatter(mode), fixed if mode != "rfc3339" else frozenset())
    want = python_side(types, mode, max_value, request, len(raw))
    t = native.Transcoder(mode, max_value, 32, 1000)
    got = t.decode(raw, len(raw))
    if isinstance(got, str):  # the plan, built once per type
        assert got == request.messages.type
        t.add_message(got, msgplan.build(types, got))
        got = t.decode(raw, len(raw))
    assert not isinstance(got, str)
    if got is None:
        if native_expected and want is not None and want != "raises":
            # A caller's own messages are taken natively, but for a Struct or an error in a map value.
            assert schema.odd or any(r.startswith("bad value: ") for _, r in want[3]), want
        return "python decides"
    assert want is not None, f"the Python path rejects this batch, the native one took it: {got}"
    assert want != "raises", f"the Python path cannot write these rows, the native one did: {got}"
    data, ops, index, errors, invalid, columns = got
    assert invalid == [] and columns is None  # JSON object rows, no declared columns (those are Python's)
    assert errors == want[3]
    assert data == want[0]
    assert ops == want[1]
    assert index == want[2]
    return "rows with errors" if errors else "rows"


@st.composite
def batches(draw: st.DrawFn, schema: Schema) -> tuple[str, list[bytes], list[int]]:
    """A type of the schema, a few messages of it, and ops (of the right count, mostly)."""
    name = f"M{draw(st.integers(0, len(schema.file.message_type) - 1))}"
    cls = schema.cls(name)
    messages = []
    for _ in range(draw(st.integers(0, 5))):
        m = cls()
        fill(draw, m)
        messages.append(m.SerializePartialToString())
    ops = []
    if draw(st.booleans()):
        n = len(messages) if draw(st.integers(0, 5)) else draw(st.integers(0, len(messages) + 1))
        ops = draw(st.lists(op_values, min_size=n, max_size=n))
    return f"t.{name}", messages, ops


@st.composite
def cases(draw: st.DrawFn) -> tuple:
    schema = draw(schemas())
    type_name, messages, ops = draw(batches(schema))
    mode = draw(st.sampled_from(MODES))
    top = schema.pool.FindMessageTypeByName(type_name)
    # Fixed RFC 3339 columns (Timeplus' _tp_time): the type's Timestamp fields, or any of its fields.
    stamps = frozenset(f.name for f in top.fields
                       if f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp")
    fixed = draw(st.sampled_from([frozenset(), stamps]) | st.frozensets(st.sampled_from([f.name for f in top.fields]
                                                                                        or ["x"]), max_size=3))
    max_value = draw(st.sampled_from([1 << 20, 1 << 20, 30]))
    return schema, mode, max_value, fixed, type_name, messages, ops


def request(type_name: str, messages: list[bytes], ops: list[int]) -> pb.IngestRequest:
    return pb.IngestRequest(route="r", messages=pb.MessageBatch(type=type_name, messages=messages, ops=ops))


@DIFF
@given(case=cases())
def test_messages_match(case: tuple) -> None:
    schema, mode, max_value, fixed, type_name, messages, ops = case
    event(compare(schema, mode, max_value, fixed, request(type_name, messages, ops), native_expected=True))


@DIFF
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_damaged_messages_match(case: tuple, seed: int) -> None:
    """Each message's bytes flipped, cut or repeated: what upb reads, the native reader reads the same (the
    same reason where upb refuses a message) or leaves to Python."""
    schema, mode, max_value, fixed, type_name, messages, ops = case
    broken = [next(iter(damaged(m, seed + i, copies=1))) if m else b"\x08" for i, m in enumerate(messages)]
    event(compare(schema, mode, max_value, fixed, request(type_name, broken, ops if len(ops) == len(broken) else [])))


def parts(m) -> list[bytes]:
    """A message's fields, each as a message of its own (protobuf reads them joined in any order as one)."""
    out = []
    for fd, _ in m.ListFields():
        c = type(m)()
        c.CopyFrom(m)
        for other, _ in m.ListFields():
            if other is not fd:
                c.ClearField(other.name)
        out.append(c.SerializePartialToString())
    return out


@DIFF
@given(case=cases(), data=st.data())
def test_glued_messages_match(case: tuple, data: st.DataObject) -> None:
    """The fields of two messages, shuffled and joined, are one message to protobuf: fields in any order, the
    last scalar or oneof member wins, repeated fields join, message fields merge (left to Python)."""
    schema, mode, max_value, fixed, type_name, messages, _ = case
    cls = schema.cls(type_name.removeprefix("t."))
    glued = []
    for a in messages:
        pieces = parts(cls.FromString(a)) + parts(cls.FromString(data.draw(st.sampled_from(messages))))
        glued.append(b"".join(data.draw(st.permutations(pieces))))
    event(compare(schema, mode, max_value, fixed, request(type_name, glued, [])))


# -- fixed cases ---------------------------------------------------------------------------------------------
def _hand_schema() -> Schema:
    """t.M0 {string s = 1; Timestamp at = 2; Duration d = 3; float x = 4; NullValue n = 5; repeated E0 e = 6;
    map<int32, string> m = 7} with E0 {A = 0; B = 1; C = 1 (alias)}."""
    from google.protobuf import descriptor_pb2

    from tests.msg_schemas import _DIR, DEPS, F

    f = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto3",
                                           dependency=[d.DESCRIPTOR.name for d in DEPS])
    e = f.enum_type.add(name="E0")
    e.options.allow_alias = True
    for name, n in (("A", 0), ("B", 1), ("C", 1)):
        e.value.add(name=name, number=n)
    m = f.message_type.add(name="M0")
    entry = m.nested_type.add(name="MEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_INT32)
    entry.field.add(name="value", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    for name, number, kind, type_name, label in (
        ("s", 1, F.TYPE_STRING, "", F.LABEL_OPTIONAL),
        ("at", 2, F.TYPE_MESSAGE, ".google.protobuf.Timestamp", F.LABEL_OPTIONAL),
        ("d", 3, F.TYPE_MESSAGE, ".google.protobuf.Duration", F.LABEL_OPTIONAL),
        ("x", 4, F.TYPE_FLOAT, "", F.LABEL_OPTIONAL),
        ("n", 5, F.TYPE_ENUM, ".google.protobuf.NullValue", F.LABEL_OPTIONAL),
        ("e", 6, F.TYPE_ENUM, ".t.E0", F.LABEL_REPEATED),
        ("m", 7, F.TYPE_MESSAGE, ".t.M0.MEntry", F.LABEL_REPEATED),
    ):
        fd = m.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            fd.type_name = type_name
    fds = descriptor_pb2.FileDescriptorSet()
    for d in DEPS:
        d.DESCRIPTOR.CopyToProto(fds.file.add())
    fds.file.append(f)
    path = Path(_DIR.name) / "hand.desc"
    path.write_bytes(fds.SerializeToString())
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.DescriptorPool()
    for fp in fds.file:
        pool.Add(fp)
    return Schema(f, False, path=path, pool=pool)


def native_rows(schema: Schema, mode: str, max_value: int, req: pb.IngestRequest) -> tuple:
    raw = req.SerializeToString()
    t = native.Transcoder(mode, max_value, 32, 1000)
    types = MessageTypes(str(schema.path), formatter(mode))
    t.add_message(req.messages.type, msgplan.build(types, req.messages.type))
    got = t.decode(raw, len(raw))
    return None if got is None else got[:4]


def test_values_written_as_the_python_path_writes_them() -> None:
    schema = _hand_schema()
    cls = schema.cls("M0")
    m = cls(s="é\n", x=0.1, e=[0, 1, 7], m={10: "a", 9: "b", -1: ""})
    m.at.seconds, m.at.nanos = 1_767_225_600, 120_000_000
    m.d.seconds, m.d.nanos = -1, -500_000_000
    req = request("t.M0", [m.SerializePartialToString(), cls().SerializePartialToString()], [])
    data, ops, index, errors = native_rows(schema, "rfc3339", 1 << 20, req)
    assert data == [
        b'{"s":"\xc3\xa9\\n","at":"2026-01-01T00:00:00.120Z","d":"-1.500s","x":0.1,"n":null,"e":["A","C","7"],'
        b'"m":{"-1":"","10":"a","9":"b"}}',
        b'{"s":"","at":null,"d":null,"x":0.0,"n":null,"e":[],"m":{}}',
    ]
    assert (ops, index, errors) == (None, None, [])
    for mode in MODES:
        assert compare(schema, mode, 1 << 20, frozenset({"at"}), req) == "rows"


def test_native_row_errors_are_the_python_reasons() -> None:
    """Each kind of row error, by index, with the Python transcoder's text (checked here literally too)."""
    schema = _hand_schema()
    cls = schema.cls("M0")
    good = cls(s="ok").SerializePartialToString()
    bad_ts, bad_d = cls(), cls()
    bad_ts.at.nanos = -1
    bad_d.d.seconds, bad_d.d.nanos = 1, -1
    messages = [good, good + b"\x0a\x10xx", good.replace(b"ok", b"\xff\xfe"), bad_ts.SerializePartialToString(),
                bad_d.SerializePartialToString(), cls(s="x" * 40).SerializePartialToString()]
    req = request("t.M0", messages, [0, 1, 2, 0, 1, 2])
    data, ops, index, errors = native_rows(schema, "rfc3339", 30, req)
    parse = "does not decode as t.M0: Error parsing message with type 't.M0': "
    assert errors == [
        (1, parse + "Wire format was corrupt"),
        (2, parse + "String field had bad UTF-8"),
        (3, "bad value: timestamp nanos -1 is outside 0..999999999"),
        (4, "bad value: duration 1s -1ns is not a valid google.protobuf.Duration"),
        (5, "a value of 42 bytes is longer than 30 (limits.max_value_bytes)"),
    ]
    assert (len(data), ops, index) == (1, [0], [0])
    assert compare(schema, "rfc3339", 30, frozenset(), req) == "rows with errors"


def test_batches_python_rejects_or_merges_are_left_to_it() -> None:
    schema = _hand_schema()
    cls = schema.cls("M0")
    one = cls(s="a")
    one.at.seconds = 5
    twice = one.SerializePartialToString() * 2  # the Timestamp given twice: protobuf merges the two
    for req in (request("t.Nope", [b""], []), request("t.M0", [b"", b""], [1]), request("t.M0", [twice], [])):
        assert native_rows(schema, "rfc3339", 1 << 20, req) is None
        assert compare(schema, "rfc3339", 1 << 20, frozenset(), req) == "python decides"
