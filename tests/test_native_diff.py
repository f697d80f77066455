"""The native transcoder against the Python one (its oracle), request by request.

Hypothesis draws RowBatch and ColumnBatch requests (every Value kind, nested lists and maps, ragged rows,
null rows, ops, bad names) and transcoder options (each ``timestamps`` mode, limits small enough to bite).
Both transcoders decode the same wire bytes; where the native one answers, its rows must be byte for byte
the Python path's JSON objects (bridge/formats.py), with the same ops, caller indices and row errors. It may
leave a request to the Python path (``None``) only where that path rejects the batch whole, or where a
reason would need Python's ``repr`` of a name outside printable ASCII. Requests glued from two (protobuf
merges them) and requests with bytes flipped check the wire reader against upb: equal, or left to Python.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from bridge.ingest import acks
from bridge.model.config import LimitsConfig
from bridge.model.errors import BatchRejected
from bridge.model.rows import Joined, Rows
from bridge.proto import pb
from bridge.transcode import formats
from bridge.transcode.decode import Decoder
from bridge.transcode.native import _native as native
from bridge.transcode.timefmt import formatter
from tests.test_fuzz import ODD_NAMES, column_batches, columns, ops, row_batches, text, values

pytestmark = pytest.mark.skipif(native is None, reason="bridge._native is not built (no cargo at install time)")

MODES = ("rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")


@dataclass(frozen=True)
class Opts:
    mode: str
    max_value: int
    max_depth: int
    max_columns: int


options = st.builds(
    Opts,
    st.sampled_from(MODES),
    st.sampled_from([1, 3, 8, 20, 1 << 20]),
    st.sampled_from([1, 2, 3, 32]),
    st.sampled_from([1, 2, 4, 1000]),
)


def python_side(o: Opts, request: pb.IngestRequest, size: int) -> tuple | None:
    """What the Python path writes: (row objects, ops, index, errors), or None for a batch rejection."""
    limits = LimitsConfig(max_value_bytes=o.max_value, max_depth=o.max_depth, max_columns=o.max_columns)
    dec = Decoder(formatter(o.mode), None, mode=o.mode, limits=limits)
    dec.begin(size)
    try:
        if request.WhichOneof("payload") == "rows":
            rows, errors = dec.row_batch(request.rows)
        else:
            rows, errors = dec.column_batch(request.columns)
    except BatchRejected:
        return None
    return formats.object_bytes(rows), rows.ops, rows.index, [(e.index, e.reason) for e in errors]


def native_side(o: Opts, raw: bytes, size: int) -> tuple | None:
    t = native.Transcoder(o.mode, o.max_value, o.max_depth, o.max_columns)
    out = t.decode(raw, size)
    if isinstance(out, str):  # a MessageBatch (bytes damaged into one) asks for its type's plan: none here
        return None
    if out is not None:
        assert out[4] == []  # no declared columns: no row refused by them
        out = out[:4]
    return out


def native_side_joined(o: Opts, raw: bytes, size: int) -> tuple:
    t = native.Transcoder(o.mode, o.max_value, o.max_depth, o.max_columns)
    return t.decode_joined(raw, size)


def compare(o: Opts, raw: bytes, merged: bool = False) -> str:
    """Both transcoders on the wire bytes ``raw``; the outcome's name for hypothesis' statistics."""
    request = pb.IngestRequest.FromString(raw)
    # The service refuses more rows than limits.max_rows_per_message before decoding (a few damaged bytes of
    # null_rows can ask for billions of rows; a thousand is plenty here).
    if acks.request_rows(request) > 1000:
        return "too many rows"
    size = len(raw)
    want = python_side(o, request, size)
    got = native_side(o, raw, size)
    if got is None:
        if want is not None and not merged:
            # Only a batch with row errors and a column named outside printable ASCII may go to Python (a reason
            # naming such a column is Python's repr to write; the row's first error may name another column).
            odd = [c.name for c in request.columns.columns if not (c.name.isascii() and c.name.isprintable())]
            assert odd and want[3], (want, raw)
        return "python decides"
    assert want is not None, f"the Python path rejects this batch, the native one took it: {got}"
    data, ops, index, errors = got
    assert errors == want[3]
    assert data == want[0]
    assert ops == want[1]
    assert index == want[2]
    # The bodies the http route sends, from each transcoder's rows.
    mine = Rows(None, data, ops, index)
    theirs = Rows(None, want[0], want[1], want[2])
    assert formats.ndjson(mine) == formats.ndjson(theirs)
    assert formats.json_array(mine) == formats.json_array(theirs)
    # The same rows in one buffer (what the route uses): the same rows, errors and bodies.
    body, ends, j_ops, j_index, j_errors, j_invalid, j_columns = native_side_joined(o, raw, size)
    joined = Rows(None, Joined.of(body, ends), j_ops, j_index)
    assert (list(joined.data), j_ops, j_index, j_errors, j_invalid, j_columns) == (
        want[0], want[1], want[2], want[3], [], None)
    assert formats.ndjson(joined) == formats.ndjson(theirs)
    assert formats.json_array(joined) == formats.json_array(theirs)
    return "rows with errors" if errors else "rows"


# scripts/fuzz.py diff runs these properties with many more fresh examples through this variable.
_LONG = os.environ.get("INGEST_BRIDGE_FUZZ_EXAMPLES")
DIFF = settings(
    max_examples=int(_LONG) if _LONG else 500,
    deadline=None,
    derandomize=not _LONG,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)


@DIFF
@given(o=options, request=row_batches())
def test_row_batches_match(o: Opts, request: pb.IngestRequest) -> None:
    event(compare(o, request.SerializeToString()))


@DIFF
@given(o=options, request=column_batches())
def test_column_batches_match(o: Opts, request: pb.IngestRequest) -> None:
    event(compare(o, request.SerializeToString()))


# Batches the Python path takes (unique, non-empty names; equal lengths; null rows in range), so that most
# examples compare rows rather than agree on a rejection.
names = st.lists(st.one_of(st.sampled_from([n for n in ODD_NAMES if n]), text.filter(bool)), unique=True, max_size=6)


@st.composite
def clean_row_batches(draw: st.DrawFn) -> pb.IngestRequest:
    cols = draw(names.filter(bool))
    batch = pb.RowBatch(columns=cols)
    for _ in range(draw(st.integers(0, 8))):
        width = len(cols) if draw(st.integers(0, 9)) else draw(st.integers(0, len(cols) + 1))
        row = batch.rows.add(values=draw(st.lists(values, min_size=width, max_size=width)))
        row.op = draw(ops) if draw(st.booleans()) else 0
    return pb.IngestRequest(route="r", rows=batch)


@st.composite
def clean_column_batches(draw: st.DrawFn) -> pb.IngestRequest:
    length = draw(st.integers(0, 6))
    cols = [c for c in draw(st.lists(columns(length), max_size=5))
            if c.WhichOneof("data") is None or len(getattr(c, c.WhichOneof("data")).values) == length]
    for c, name in zip(cols, draw(names.filter(lambda n: len(n) >= len(cols))), strict=False):
        c.name = name
        kept = [r for r in c.null_rows if r < length]
        del c.null_rows[:]
        c.null_rows.extend(kept)
    batch = pb.ColumnBatch(columns=cols)
    if draw(st.booleans()) and length:
        batch.ops.extend(draw(st.lists(ops, min_size=length, max_size=length)))
    return pb.IngestRequest(route="r", columns=batch)


@DIFF
@given(o=options, request=clean_row_batches())
def test_accepted_row_batches_match(o: Opts, request: pb.IngestRequest) -> None:
    event(compare(o, request.SerializeToString()))


@DIFF
@given(o=options, request=clean_column_batches())
def test_accepted_column_batches_match(o: Opts, request: pb.IngestRequest) -> None:
    event(compare(o, request.SerializeToString()))


@DIFF
@given(o=options, a=st.one_of(row_batches(), column_batches()), b=st.one_of(row_batches(), column_batches()))
def test_glued_requests_match(o: Opts, a: pb.IngestRequest, b: pb.IngestRequest) -> None:
    """Two messages one after the other are one message to protobuf: repeated fields join, messages merge."""
    event(compare(o, a.SerializeToString() + b.SerializeToString(), merged=True))


def damaged(good: bytes, seed: int, copies: int = 40) -> Iterator[bytes]:
    """Copies of ``good`` with one to three bytes flipped, runs cut or runs repeated, from ``seed``."""
    rnd = random.Random(seed)
    for _ in range(copies):
        raw = bytearray(good)
        for _ in range(rnd.randint(1, 3)):
            if not raw:
                break
            at = rnd.randrange(len(raw))
            what = rnd.randrange(3)
            if what == 0:
                raw[at] = rnd.randrange(256)
            elif what == 1:
                del raw[at:at + rnd.randint(1, 4)]
            else:
                raw[at:at] = raw[at:at + rnd.randint(1, 8)]
        yield bytes(raw)


@DIFF
@given(o=options, request=st.one_of(row_batches(), column_batches()), seed=st.integers(0, 2**32 - 1))
def test_damaged_requests_match(o: Opts, request: pb.IngestRequest, seed: int) -> None:
    """Bytes flipped, cut or repeated: what upb still reads, the native reader reads the same or leaves.

    Several damaged copies per example (most do not parse: those are skipped here, the service refuses them).
    """
    for raw in damaged(request.SerializeToString(), seed):
        try:
            parsed = pb.IngestRequest.FromString(raw)
        except DecodeError:
            continue
        if acks.request_rows(parsed) <= 1000:
            event(compare(o, raw, merged=True))


def test_values_written_as_the_python_path_writes_them() -> None:
    """Fixed vectors the float, escape and time rules turn on (exponent forms, control characters, -0.0)."""
    o = Opts("rfc3339", 1 << 20, 32, 1000)
    vals = [pb.Value(double=d) for d in (1e16, 1e-5, 1e-6, 1e15, -0.0, 5e-324, 0.1 + 0.2, 1.7976931348623157e308,
                                          float("nan"), float("-inf"), 2.0**63)]
    vals += [pb.Value(string="\x00\x1f\x7f/\u2028é\"\\\b\f\n\r\t"), pb.Value(bytes=b"\xff\x00ab"),
             pb.Value(int=-(2**63)), pb.Value(uint=2**64 - 1)]
    vals += [pb.Value(timestamp={"seconds": s, "nanos": n})
             for s, n in ((0, 0), (-1, 999_999_999), (-62135596800, 1000), (253402300799, 120_000_000))]
    names = [f"c{i}" for i in range(len(vals))]
    request = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=names, rows=[pb.Row(values=vals)]))
    assert compare(o, request.SerializeToString()) == "rows"
    for mode in MODES[1:]:  # (year 1 does not fit an int64 of nanoseconds: a row error on both paths)
        assert compare(Opts(mode, 1 << 20, 32, 1000), request.SerializeToString()) != "python decides"


def test_native_row_errors_are_the_python_reasons() -> None:
    """Each kind of row error, by index, with the Python transcoder's text (checked here literally too)."""
    deep = pb.Value()
    deep.list.values.add().list.values.add()
    rows = [
        pb.Row(values=[pb.Value(int=1)]),
        pb.Row(values=[pb.Value(int=1), pb.Value(int=2)]),
        pb.Row(values=[pb.Value(string="x" * 40)]),
        pb.Row(values=[deep]),
        pb.Row(values=[pb.Value(timestamp={"seconds": 0, "nanos": -1})]),
        pb.Row(values=[pb.Value(timestamp={"seconds": 253402300800})]),
    ]
    raw = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=["a"], rows=rows)).SerializeToString()
    data, _, index, errors = native_side(Opts("rfc3339", 20, 1, 1000), raw, len(raw))
    assert data == [b'{"a":1}'] and index == [0]
    assert errors == [
        (1, "row has 2 values for 1 columns"),
        (2, "bad value: a value of 40 bytes is longer than 20 (limits.max_value_bytes)"),
        (3, "bad value: lists and maps nest deeper than 1 levels (limits.max_depth)"),
        (4, "bad value: timestamp nanos -1 is outside 0..999999999"),
        (5, "bad value: timestamp 253402300800s is outside 0001-01-01..9999-12-31"),
    ]
    assert compare(Opts("rfc3339", 20, 1, 1000), raw) == "rows with errors"


def test_a_map_entry_with_an_unknown_field_is_read_as_upb_reads_it() -> None:
    """upb keeps such an entry as an unknown field of the map (the map lacks it): found by the damaged-bytes run."""

    def ld(field: int, body: bytes) -> bytes:
        return bytes([field << 3 | 2, len(body)]) + body

    entry = ld(1, b"a") + ld(2, b"") + b"\x18\x01"  # key "a", value null, then field 3 (unknown)
    value = ld(10, ld(1, entry) + ld(1, ld(1, b"b")))
    raw = ld(3, ld(1, b"c") + ld(2, ld(1, value)))
    assert pb.IngestRequest.FromString(raw).rows.rows[0].values[0].map.fields.keys() == {"b"}
    assert compare(Opts("rfc3339", 1 << 20, 32, 1000), raw, merged=True) == "python decides"
