"""The native peek (route, sequence, payload kind, row count from a request's wire bytes) against upb.

It answers for RowBatch, ColumnBatch, MessageBatch and JsonBatch requests (a MessageBatch's messages are bytes
to upb: they are parsed only when the batch is transcoded).

The service takes a request the peek answers without parsing it, so the peek must never answer for bytes
upb would refuse, and what it answers must be what the parsed message says. Hypothesis draws every shape of
request (with any route and sequence), then glues, cuts and flips their bytes.
"""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import event, given
from hypothesis import strategies as st

from bridge.ingest import acks
from bridge.ingest.peeked import Peeked
from bridge.proto import pb
from bridge.transcode.native import _native as native
from tests.test_fuzz import column_batches, json_batches, message_batches, row_batches, text
from tests.test_native_diff import DIFF, damaged

pytestmark = pytest.mark.skipif(native is None, reason="bridge._native is not built (no cargo at install time)")

requests = st.one_of(row_batches(), column_batches(), message_batches(), json_batches())


def check(raw: bytes) -> str:
    """The peek's answer is upb's, or it leaves the request to upb; says which happened."""
    got = native.peek(raw)
    if got is None:
        return "left to upb"
    try:
        parsed = pb.IngestRequest.FromString(raw)
    except DecodeError as e:  # the service would have taken bytes that are not an IngestRequest
        raise AssertionError(f"peek answered {got} for bytes upb refuses: {e}") from None
    assert got == (parsed.route, parsed.sequence, parsed.WhichOneof("payload"), acks.request_rows(parsed))
    return "peeked"


@DIFF
@given(request=requests, route=text, sequence=st.integers(0, 2**64 - 1))
def test_peek_reads_what_upb_reads(request: pb.IngestRequest, route: str, sequence: int) -> None:
    request.route, request.sequence = route, sequence
    raw = request.SerializeToString()
    outcome = check(raw)
    event(outcome)
    kind = request.WhichOneof("payload")
    if kind in ("rows", "columns", "messages", "json"):
        # Every request a caller's protobuf library writes is plain (nesting here is shallow): none is parsed.
        assert outcome == "peeked"
        # The message, when asked for, is the same.
        assert getattr(Peeked(raw, *native.peek(raw)), kind) == getattr(request, kind)


@DIFF
@given(a=requests, b=requests)
def test_glued_requests_are_read_as_upb_reads_them(a: pb.IngestRequest, b: pb.IngestRequest) -> None:
    """Two messages one after the other are one message to protobuf (fields merge): the peek leaves them."""
    event(check(a.SerializeToString() + b.SerializeToString()))


@DIFF
@given(request=st.one_of(row_batches(), column_batches(), message_batches(), json_batches()),
       seed=st.integers(0, 2**32 - 1))
def test_damaged_requests_are_never_taken_where_upb_refuses_them(request: pb.IngestRequest, seed: int) -> None:
    for raw in damaged(request.SerializeToString(), seed):
        event(check(raw))


def test_what_upb_must_decide_is_left_to_it() -> None:
    ok = pb.IngestRequest(route="r", sequence=3, rows=pb.RowBatch(columns=["a"], rows=[pb.Row(values=[
        pb.Value(string="x")])])).SerializeToString()
    assert native.peek(ok) == ("r", 3, "rows", 1)
    bad_utf8 = ok.replace(b"x", b"\xff")
    with pytest.raises(DecodeError):
        pb.IngestRequest.FromString(bad_utf8)
    assert native.peek(bad_utf8) is None
    assert native.peek(ok + b"\x3a\x00") is None  # an unknown field (7): upb keeps it
    assert native.peek(pb.IngestRequest(route="r", json=pb.JsonBatch()).SerializeToString()) == ("r", 0, "json", 0)
    assert native.peek(b"\x32\x00") == ("", 0, "json", 0)  # an empty JsonBatch alone (the fuzz target's first find)
    json_rows = pb.IngestRequest(json=pb.JsonBatch(objects=[b"\xff", b"{}"], ops=[1, 2])).SerializeToString()
    assert native.peek(json_rows) == ("", 0, "json", 2)  # objects are bytes: upb checks no UTF-8 there
    assert native.peek(json_rows + b"\x32\x02\x08\x01") is None  # a second JsonBatch: upb merges them
    messages = pb.IngestRequest(route="m", messages=pb.MessageBatch(type="t", messages=[b"\xff", b""], ops=[1, 0]))
    assert native.peek(messages.SerializeToString()) == ("m", 0, "messages", 2)
    assert native.peek(messages.SerializeToString().replace(b"\x0a\x01t", b"\x0a\x01\xff")) is None  # type: UTF-8
    assert native.peek(nest(30)) == ("", 0, "rows", 1)
    with pytest.raises(DecodeError):  # past upb's recursion limit
        pb.IngestRequest.FromString(nest(120))
    assert native.peek(nest(120)) is None
    assert native.peek(nest(50)) is None  # deep nesting: upb decides


def nest(levels: int) -> bytes:
    """A one-value RowBatch request whose value is a list in a list ... ``levels`` deep, as wire bytes."""

    def field(number: int, body: bytes) -> bytes:
        return bytes([number << 3 | 2]) + _varint(len(body)) + body

    value = b"\x18\x01"  # int: 1
    for _ in range(levels):
        value = field(9, field(1, value))
    return field(3, field(1, b"a") + field(2, field(1, value)))


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
