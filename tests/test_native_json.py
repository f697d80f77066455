"""The native transcoder's JsonBatch rows against the Python path (bridge/transcode/jsonrows.py), its oracle.

Hypothesis draws JsonBatch requests: objects written compact or indented, with whitespace, CR and LF
around and inside them, any JSON value at the top level, empty objects, deep nesting, numbers past what a
double or an int64 holds, surrogate escapes, bad UTF-8, and JSON text cut, spliced or sprinkled with
stray bytes; ops of every length; limits small enough to bite. Where the native reader answers, its rows,
ops, caller indices and row errors (index and reason) must be the Python path's exactly. It may leave a
request to Python only where a row's reason would be msgspec's or orjson's own wording (a syntax error,
a number or nesting orjson reads its own way) or the batch is rejected whole; a batch of rows that all
pass is always its own.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bridge.model.config import LimitsConfig
from bridge.model.errors import BatchRejected
from bridge.proto import pb
from bridge.transcode import formats
from bridge.transcode.decode import Decoder
from bridge.transcode.native import NativeTranscoder
from bridge.transcode.native import _native as native
from bridge.transcode.plan import Plan
from bridge.transcode.python import PythonTranscoder
from bridge.transcode.timefmt import formatter
from tests.test_fuzz import json_batches, json_docs, json_entries, json_objects, ops
from tests.test_native_diff import DIFF

pytestmark = pytest.mark.skipif(native is None, reason="bridge._native is not built (no cargo at install time)")

limits = st.builds(
    LimitsConfig,
    max_value_bytes=st.sampled_from([1, 8, 30, 200, 1 << 20]),
    max_depth=st.sampled_from([1, 2, 3, 32, 200]),
)

spaces = st.text(st.sampled_from(" \t\r\n"), max_size=3).map(str.encode)
odd_literals = st.sampled_from([
    b"1e400", b"-1E+400", b"1e-400", b"123456789012345678901234567890", b"-0", b"0.0e0", b"1.5", b"-12",
    b"999999999999999999", b"1000000000000000000", b"18446744073709551616", b"-9223372036854775809",
    b'"\\ud800\\udc00"', b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\\u00e9\\/\\b"', b'"\\x"',
    b'"\x7f\xc3\xa9"', b'"\xff"', b"01", b"-", b"1.", b".5", b"1e", b"tru", b"nul", b"[1,]", b"{}", b"[]",
    b'{"a":1,}', b'""', b"true", b"null",
])


@st.composite
def written(draw: st.DrawFn) -> bytes:
    """One JSON value as a caller may write it: whitespace (CR, LF too) around it and after its first brace."""
    doc = draw(st.one_of(json_objects, json_objects, json_docs))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()), separators=(",", ":")).encode()
    if draw(st.booleans()):
        # (the first "{" is never inside a string: a string cannot come before it). Indented rows with
        # newlines between every member come from json_entries.
        text = text.replace(b"{", b"{" + draw(spaces), 1)
    return draw(spaces) + text + draw(spaces)


@st.composite
def rows(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["written", "written", "entry", "literal", "nested", "damaged", "empty"]))
    if kind == "written":
        return draw(written())
    if kind == "entry":
        return draw(json_entries())
    if kind == "literal":
        lit = draw(odd_literals)
        return draw(st.sampled_from([b"%s", b'{"x":%s}', b'{"x":[%s,{}]}', b"\r\n{ \"x\" :\r\n%s }\n"])) % lit
    if kind == "nested":
        depth = draw(st.integers(0, 260))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b"[{}, ", b"]")]))
        inner = draw(st.sampled_from([b"1", b"{}", b"[]", b'"s"', b"1e5"]))
        return draw(st.sampled_from([b"", b"{\"k\":"])) + opener * depth + inner + closer * depth + (
            b"}" if draw(st.booleans()) else b"")
    if kind == "empty":
        return draw(st.sampled_from([b"", b"{}", b" {}", b"{ }", b"\r\n{}\r\n", b"{}{}", b"{},", b"\n"]))
    good = bytearray(draw(written()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(good)))
        what = draw(st.sampled_from(["insert", "cut", "replace"]))
        junk = draw(st.sampled_from([b"\xff", b"\x00", b"\r", b"\n", b"\\", b'"', b",", b"}", b"]", b"{", b"\xc3",
                                     b"\xed\xa0\x80", b"\x0b", b"\xef\xbb\xbf", b" "]))
        if what == "insert":
            good[at:at] = junk
        elif what == "cut":
            del good[at:]
        else:
            good[at:at + len(junk)] = junk
    return bytes(good)


@st.composite
def requests(draw: st.DrawFn) -> pb.IngestRequest:
    objects = draw(st.lists(rows(), max_size=8))
    batch = pb.JsonBatch(objects=objects)
    if draw(st.booleans()):
        n = len(objects) if draw(st.integers(0, 4)) else draw(st.integers(0, len(objects) + 1))
        batch.ops.extend(draw(st.lists(ops, min_size=n, max_size=n)))
    return pb.IngestRequest(route="r", json=batch)


def python_side(lim: LimitsConfig, request: pb.IngestRequest) -> tuple | None:
    dec = Decoder(formatter("rfc3339"), None, limits=lim)
    dec.begin(request.ByteSize())
    try:
        got, errors, _ = dec.json_batch(request.json)
    except BatchRejected:
        return None
    return got.data, got.ops, got.index, [(e.index, e.reason) for e in errors]


def compare(lim: LimitsConfig, request: pb.IngestRequest) -> str:
    raw = request.SerializeToString()
    want = python_side(lim, request)
    got = native.Transcoder("rfc3339", lim.max_value_bytes, lim.max_depth, lim.max_columns).decode(raw, len(raw))
    if got is None or isinstance(got, str):  # (a str: a MessageBatch's type, whose plan is not given here)
        if want is not None and not want[3]:
            # Every row passes: the native reader must take them (only nesting near msgspec's limit aside).
            assert any(r.count(b"[") + r.count(b"{") > 256 for r in request.json.objects), (want, raw)
        return "python decides"
    assert want is not None, f"the Python path rejects this batch, the native one took it: {got}"
    data, ops_, index, errors, invalid, columns = got
    assert columns is None  # JSON rows: never a table
    assert invalid == []
    assert errors == want[3]
    assert data == want[0]
    assert ops_ == want[1]
    assert index == want[2]
    assert all(b"\n" not in r and b"\r" not in r for r in data)
    return "rows with errors" if errors else "rows"


@DIFF
@given(lim=limits, request=requests())
def test_json_batches_match(lim: LimitsConfig, request: pb.IngestRequest) -> None:
    event(compare(lim, request))


@DIFF
@given(lim=limits, request=json_batches())
def test_fuzz_json_batches_match(lim: LimitsConfig, request: pb.IngestRequest) -> None:
    event(compare(lim, request))


@DIFF
@given(lim=limits, request=requests(), parse=st.booleans())
def test_the_transcoders_give_the_same_rows_and_bodies(lim: LimitsConfig, request: pb.IngestRequest,
                                                       parse: bool) -> None:
    """Through the seam: an http route's transcoders, the NDJSON and JSON array bodies they lead to."""
    plan = Plan(route="r", rows_as_objects=True, parse_json=parse, limits=lim)
    raw = request.SerializeToString()
    try:
        want = PythonTranscoder(plan).transcode(request, len(raw))
    except BatchRejected as e:
        with pytest.raises(BatchRejected) as got:
            NativeTranscoder(plan).transcode(request, len(raw), raw)
        assert (got.value.reason, got.value.message) == (e.reason, e.message)
        return
    rows_, errors = NativeTranscoder(plan).transcode(request, len(raw), raw)
    assert errors == want[1]
    assert (rows_.data, rows_.ops, rows_.index) == (want[0].data, want[0].ops, want[0].index)
    assert formats.ndjson(rows_) == formats.ndjson(want[0])
    assert formats.json_array(rows_) == formats.json_array(want[0])


def test_each_json_row_error_is_named_natively() -> None:
    """Each reason the native reader gives itself, literally, by index; nothing left to Python."""
    objects = [b'{"a":1}', b' {"b":\r\n[1,2]}\n', b"[1]", b'"x"', b'{"a":[[1]]}', b'{"a":"' + b"x" * 40 + b'"}',
               b'{"a":"\xff"}', b"12", b"1.5", b"null", b"true", b"{}"]
    raw = pb.IngestRequest(json=pb.JsonBatch(objects=objects, ops=[0, 2] + [1] * 10)).SerializeToString()
    got = native.Transcoder("rfc3339", 30, 2, 1000).decode(raw, len(raw))
    assert got == (
        [b'{"a":1}', b' {"b":  [1,2]} ', b"{}"], [0, 2, 1], [0, 1, 11],
        [(2, "not a JSON object (a JSON list)"), (3, "not a JSON object (a JSON str)"),
         (4, "arrays and objects nest deeper than 2 levels (limits.max_depth)"),
         (5, "a value of 48 bytes is longer than 30 (limits.max_value_bytes)"),
         (6, "not valid JSON: not UTF-8 at byte 6"), (7, "not a JSON object (a JSON int)"),
         (8, "not a JSON object (a JSON float)"), (9, "not a JSON object (a JSON NoneType)"),
         (10, "not a JSON object (a JSON bool)")],
        [],
        None,
    )
    assert compare(LimitsConfig(max_value_bytes=30, max_depth=2), pb.IngestRequest.FromString(raw)) == (
        "rows with errors")


def test_a_syntax_error_is_worded_by_the_python_path() -> None:
    """msgspec's words (with a byte offset) are not copied: such a batch goes to Python, whose answer it is."""
    raw = pb.IngestRequest(json=pb.JsonBatch(objects=[b'{"a":1}', b'{"a":01}'])).SerializeToString()
    assert native.Transcoder("rfc3339", 1 << 20, 32, 1000).decode(raw, len(raw)) is None
    plan = Plan(route="r", rows_as_objects=True)
    request = pb.IngestRequest.FromString(raw)
    rows_, errors = NativeTranscoder(plan).transcode(request, len(raw), raw)
    assert rows_.data == [b'{"a":1}']
    assert [(e.index, e.reason) for e in errors] == [(1, "not valid JSON: JSON is malformed: invalid number (byte 6)")]


def test_whitespace_around_an_object_is_kept_and_line_breaks_become_spaces() -> None:
    """The cargo-fuzz target's find (its own assertion was too strict): a row is passed on as written, around
    the object too, on one line, by both transcoders alike."""
    raw = pb.IngestRequest(json=pb.JsonBatch(objects=[b"\n" * 9 + b"1", b"\n{\n\n\n}\n\n\n\n"])).SerializeToString()
    plan = Plan(route="r", rows_as_objects=True)
    request = pb.IngestRequest.FromString(raw)
    for t in (NativeTranscoder(plan), PythonTranscoder(plan)):
        rows_, errors = t.transcode(request, len(raw), raw)
        assert rows_.data == [b" {   }    "]
        assert [(e.index, e.reason) for e in errors] == [(0, "not a JSON object (a JSON int)")]
    assert native.Transcoder("rfc3339", 1 << 20, 32, 1000).decode(raw, len(raw)) is not None  # decided natively


def test_every_byte_at_every_place_in_a_long_string() -> None:
    """Strings are scanned eight bytes at a time: each kind of byte, at each offset, is still seen."""
    specials = [b'\\"', b"\\\\", b"\\n", b"\\u00e9", b"\x00", b"\x01", b"\x1f", b" ", b"\x7f", b"\xc3\xa9", b"\xff",
                b'"', b"\\", b"\\q", b"\xe2\x80\xa8", b"\x80"]
    objects = [b'{"a":"' + b"x" * at + s + b"y" * (17 - at) + b'"}' for s in specials for at in range(18)]
    # One row per request: a row that breaks the syntax leaves only its own request to Python.
    for obj in objects:
        one = pb.IngestRequest(json=pb.JsonBatch(objects=[obj]))
        outcome = compare(LimitsConfig(), one)
        # Only a row the Python path refuses (as msgspec words it) may be left to it.
        assert outcome != "python decides" or python_side(LimitsConfig(), one)[3], obj
