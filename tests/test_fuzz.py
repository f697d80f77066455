"""Property-based fuzzing of the decode path: ``RoutePipeline.prepare`` and the dialect encoders after it.

Every request a caller can put on the wire, for routes of several dialects with and without declared
``columns``, must end in one of two ways: ``prepare`` returns ``(rows, errors)`` or raises ``BatchRejected``
with a client-facing code (never UNKNOWN/INTERNAL: those mean a bridge bug). When it returns:

1. no other exception escapes;
2. every row the caller sent is accounted for, accepted or named by exactly one in-range index with a reason;
3. the accepted rows encode to a body (as the sender would build it), and JSON bodies parse back with one
   record per row;
4. every top-level number of an accepted JSON row is in the bodies exactly as the caller wrote it;
5. every map of a typed row is written with its keys in sorted order (4 and 5: tests/fuzz_values.py).

A sixth property writes single timestamps over their whole wire range on routes of each ``timestamps`` mode.

Requests are round-tripped through ``SerializeToString``/``FromString`` first, so only what the gRPC server
could really hand to ``prepare`` is tested (e.g. protobuf's nesting limit applies, open enums keep unknown
values). The CI run is bounded and derandomized; ``scripts/fuzz.py`` runs the same properties for longer.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from bridge.config import parse_config
from bridge.ingest import acks
from bridge.ingest.server import build_routes
from bridge.model.errors import BatchRejected
from bridge.model.rows import Rows
from bridge.proto import pb
from bridge.route.pipeline import RoutePipeline
from bridge.send.compress import compress
from bridge.send.transport import Transport
from tests import fuzz_values
from tests.protos_util import compile_descriptor_set, load_message_classes

INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
INT32 = (-(2**31), 2**31 - 1)
ORDER = "shop.v1.Order"

# Declared columns shared by the routes that declare any: the names the strategies favour (so validation
# passes often enough to reach the encoders) plus every field of shop.v1.Order (so MessageBatches can pass).
DECLARED: dict[str, str] = {
    "id": "int", "name": "string?", "x": "double?", "ts": "timestamp?", "tags": "json?", "raw": "bytes?",
    "flag": "bool?", "n": "uint?", "big": "uint?", "customer": "string?", "total": "double?", "paid": "bool?",
    "blob": "bytes?", "kind": "json?", "at": "timestamp?", "items": "json?", "counts": "json?", "note": "string?",
    "maybe": "int?", "first": "json?", "ratio": "double?",
}
# Names that stress the column handling: undeclared, empty, reserved by a dialect, non-ASCII, quote-like.
ODD_NAMES = ["", "_time", "_tp_delta", "é", "with space", "a'b", 'q"', "\\", "line\nbreak", "𝄞"]


# -- routes ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteSpec:
    """One route to fuzz: its YAML mapping and how its body reads back (``body``: see ``records``)."""

    name: str
    route: dict[str, Any]
    body: str  # "array", "ndjson", "compact", "obsrv", "csv", "csv-noheader"


def _routes(desc: str) -> list[RouteSpec]:
    url = "http://127.0.0.1:9"  # never contacted: prepare and build do no I/O
    cols = {"columns": DECLARED}
    tp_auth = {"username": "u", "password": "p"}
    ax_auth = {"token": "xaat-fuzz"}
    fel = {"pipeline": "p", "descriptor_set": desc}
    specs = [
        RouteSpec("http_ndjson", {"dialect": "http", "url": url, "options": {"descriptor_set": desc}}, "ndjson"),
        RouteSpec("http_ndjson_cols", {"dialect": "http", "url": url, "options": {"descriptor_set": desc}, **cols},
                  "ndjson"),
        RouteSpec("http_json_reject_batch", {"dialect": "http", "url": url, "on_bad_row": "reject_batch",
                                             "options": {"format": "json", "descriptor_set": desc}}, "array"),
        RouteSpec("http_csv", {"dialect": "http", "url": url, "options": {"format": "csv", "descriptor_set": desc}},
                  "csv"),
        # No descriptor_set: MessageBatches must be refused cleanly.
        RouteSpec("http_ndjson_nodesc", {"dialect": "http", "url": url}, "ndjson"),
        RouteSpec("timeplus_compact", {"dialect": "timeplus", "url": url, "target": "s", "auth": tp_auth,
                                       "options": {"descriptor_set": desc}}, "compact"),
        RouteSpec("timeplus_compact_cols", {"dialect": "timeplus", "url": url, "target": "s", "auth": tp_auth,
                                            "options": {"descriptor_set": desc}, **cols}, "compact"),
        # Epoch timestamps have no range check of their own: nanoseconds since 1970 can outgrow 64 bits.
        RouteSpec("timeplus_ndjson_changelog_epoch_ns",
                  {"dialect": "timeplus", "url": url, "target": "s", "auth": tp_auth,
                   "options": {"format": "ndjson", "changelog": True, "timestamps": "epoch_ns",
                               "descriptor_set": desc}}, "ndjson"),
        RouteSpec("axiom_json", {"dialect": "axiom", "url": url, "target": "d", "auth": ax_auth,
                                 "options": {"descriptor_set": desc}}, "array"),
        RouteSpec("axiom_json_cols", {"dialect": "axiom", "url": url, "target": "d", "auth": ax_auth,
                                      "options": {"descriptor_set": desc}, **cols}, "array"),
        RouteSpec("axiom_ndjson_epoch_ms", {"dialect": "axiom", "url": url, "target": "d", "auth": ax_auth,
                                            "options": {"format": "ndjson", "timestamps": "epoch_ms",
                                                        "descriptor_set": desc}}, "ndjson"),
        RouteSpec("feldera_json", {"dialect": "feldera", "url": url, "target": "t", "options": fel}, "array"),
        RouteSpec("feldera_json_cols", {"dialect": "feldera", "url": url, "target": "t", "options": fel, **cols},
                  "array"),
        RouteSpec("feldera_raw_lines", {"dialect": "feldera", "url": url, "target": "t",
                                        "options": {**fel, "array": False, "update_format": "raw"}}, "ndjson"),
        RouteSpec("feldera_debezium", {"dialect": "feldera", "url": url, "target": "t",
                                       "options": {**fel, "update_format": "debezium"}}, "array"),
        RouteSpec("feldera_csv_cols", {"dialect": "feldera", "url": url, "target": "t",
                                       "options": {**fel, "format": "csv"}, **cols}, "csv-noheader"),
        RouteSpec("obsrv", {"dialect": "obsrv", "url": url, "target": "d", "options": {"descriptor_set": desc}},
                  "obsrv"),
        RouteSpec("http_ndjson_epoch_s", {"dialect": "http", "url": url,
                                          "options": {"timestamps": "epoch_s", "descriptor_set": desc}}, "ndjson"),
        RouteSpec("timeplus_compact_changelog_epoch_us",
                  {"dialect": "timeplus", "url": url, "target": "s", "auth": tp_auth,
                   "options": {"changelog": True, "timestamps": "epoch_us", "descriptor_set": desc}}, "compact"),
    ]
    return specs


Built = tuple[dict[str, RoutePipeline], dict[str, RouteSpec], type]
# The route names need nothing built: the strategies sample them when the module is collected.
ROUTE_NAMES = [s.name for s in _routes("")]


@cache
def build() -> Built:
    """The pipelines (built once, on first use: building compiles the descriptor set and the dialects), their
    specs, and the Order class. Tests get them through the ``fuzz_routes`` fixture, never at collection."""
    # A temporary directory, not tests/: the fuzz run must leave nothing behind in the tree.
    out = Path(tempfile.mkdtemp(prefix="fuzz-desc-")) / "shop.desc"
    desc = compile_descriptor_set(out, "shop.proto")
    specs = {s.name: s for s in _routes(str(desc))}
    doc = {"listen": "127.0.0.1:0", "http": None, "routes": {n: s.route for n, s in specs.items()}}
    config = parse_config(yaml.safe_dump(doc, sort_keys=False), env={})
    pipelines = build_routes(config, Transport())
    return pipelines, specs, load_message_classes(desc)[ORDER]


@pytest.fixture(scope="module")
def fuzz_routes() -> Built:
    return build()


# -- values ------------------------------------------------------------------------------------------------------
# Text protobuf can carry (valid UTF-8: no lone surrogates), biased towards awkward characters.
text = st.text(st.characters(codec="utf-8"), max_size=12)
odd_text = st.one_of(text, st.sampled_from(["", "\n", "\r\n", "\u2028", "\x00", '"', "\\", "{", "\ufeff"]))
column_name = st.one_of(st.sampled_from(list(DECLARED)), st.sampled_from(ODD_NAMES), text)
doubles = st.one_of(st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 5e-324]))
ints = st.one_of(st.integers(*INT64), st.sampled_from([*INT64, 0, -1]))
uints = st.one_of(st.integers(*UINT64), st.sampled_from([*UINT64, 2**63]))
# Seconds and nanos over their whole wire range, the edges of RFC 3339 (0001..9999) and just past them, and
# nanos outside 0..999,999,999 (invalid per the Timestamp spec, but nothing stops a caller sending them).
seconds = st.one_of(
    st.integers(*INT64),
    st.sampled_from([-62135596800, -62135596801, 253402300799, 253402300800, 0, -1, *INT64]),
    st.integers(-62135596800, 253402300799),
)
nanos = st.one_of(
    st.integers(0, 999_999_999),
    st.sampled_from([0, 1, 999_999_999, 1_000_000_000, 2_000_000_000, -1, -1_000_000, *INT32]),
    st.integers(*INT32),
)
timestamps = st.builds(Timestamp, seconds=seconds, nanos=nanos)

leaf_values = st.one_of(
    st.just(pb.Value()),  # unset: null
    st.just(pb.Value(null=0)),
    st.builds(lambda b: pb.Value(bool=b), st.booleans()),
    st.builds(lambda i: pb.Value(int=i), ints),
    st.builds(lambda u: pb.Value(uint=u), uints),
    st.builds(lambda d: pb.Value(double=d), doubles),
    st.builds(lambda s: pb.Value(string=s), odd_text),
    st.builds(lambda b: pb.Value(bytes=b), st.binary(max_size=16)),
    st.builds(lambda t: pb.Value(timestamp=t), timestamps),
)


def _list_value(items: list[pb.Value]) -> pb.Value:
    v = pb.Value()
    v.list.values.extend(items)
    return v


def _map_value(fields: dict[str, pb.Value]) -> pb.Value:
    v = pb.Value()
    for k, x in fields.items():
        v.map.fields[k].CopyFrom(x)
    return v


values = st.recursive(
    leaf_values,
    lambda inner: st.one_of(
        st.builds(_list_value, st.lists(inner, max_size=4)),
        st.builds(_map_value, st.dictionaries(odd_text, inner, max_size=4)),
    ),
    max_leaves=12,
)
# Ops as the wire carries them: Op is an open proto3 enum, so unknown numbers arrive as they were sent.
ops = st.one_of(st.sampled_from([0, 0, 0, 1, 2]), st.integers(3, 9), st.sampled_from([-1, *INT32]))


# -- payloads ----------------------------------------------------------------------------------------------------
@st.composite
def row_batches(draw: st.DrawFn) -> pb.IngestRequest:
    """Typed rows: random names (duplicates, empty, undeclared), mostly-regular rows with ragged ones mixed in."""
    columns = draw(st.lists(column_name, max_size=6))
    batch = pb.RowBatch(columns=columns)
    with_ops = draw(st.booleans())
    for _ in range(draw(st.integers(0, 8))):
        width = draw(st.one_of(st.just(len(columns)), st.integers(0, len(columns) + 2)))
        row = batch.rows.add(values=draw(st.lists(values, min_size=width, max_size=width)))
        if with_ops:
            row.op = draw(ops)
    return pb.IngestRequest(route="r", rows=batch)


_COLUMN_KINDS = ("ints", "uints", "doubles", "bools", "strings", "bytes", "timestamps", "values", "none")


@st.composite
def columns(draw: st.DrawFn, length: int) -> pb.Column:
    """One column of ``length`` values (give or take one), of any kind, with null rows in and past range."""
    col = pb.Column(name=draw(column_name))
    kind = draw(st.sampled_from(_COLUMN_KINDS))
    n = draw(st.one_of(st.just(length), st.integers(max(0, length - 1), length + 1)))
    if kind == "ints":
        col.ints.values.extend(draw(st.lists(ints, min_size=n, max_size=n)))
    elif kind == "uints":
        col.uints.values.extend(draw(st.lists(uints, min_size=n, max_size=n)))
    elif kind == "doubles":
        col.doubles.values.extend(draw(st.lists(doubles, min_size=n, max_size=n)))
    elif kind == "bools":
        col.bools.values.extend(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    elif kind == "strings":
        col.strings.values.extend(draw(st.lists(odd_text, min_size=n, max_size=n)))
    elif kind == "bytes":
        col.bytes.values.extend(draw(st.lists(st.binary(max_size=8), min_size=n, max_size=n)))
    elif kind == "timestamps":
        nanos_since_epoch = st.one_of(st.integers(*INT64), st.sampled_from([*INT64, 0, -1]))
        col.timestamps.values.extend(draw(st.lists(nanos_since_epoch, min_size=n, max_size=n)))
    elif kind == "values":
        col.values.values.extend(draw(st.lists(values, min_size=n, max_size=n)))
    # Null rows stay small: a batch of only all-null columns takes its length from max(null_rows), so a
    # ten-byte request with null_rows [4294967295] asks for four billion rows; fuzzing that measures memory.
    col.null_rows.extend(draw(st.lists(st.integers(0, length + 2), max_size=3)))
    return col


@st.composite
def column_batches(draw: st.DrawFn) -> pb.IngestRequest:
    length = draw(st.integers(0, 6))
    batch = pb.ColumnBatch(columns=draw(st.lists(columns(length), max_size=5)))
    if draw(st.booleans()):
        n = draw(st.one_of(st.just(length), st.integers(0, length + 1)))
        batch.ops.extend(draw(st.lists(ops, min_size=n, max_size=n)))
    return pb.IngestRequest(route="r", columns=batch)


@st.composite
def orders(draw: st.DrawFn) -> bytes:
    """A serialized shop.v1.Order with fields over their whole range (timestamps included)."""
    order_cls = build()[2]
    m = order_cls(
        id=draw(ints), big=draw(uints), customer=draw(odd_text), total=draw(doubles), paid=draw(st.booleans()),
        blob=draw(st.binary(max_size=8)), kind=draw(st.one_of(st.integers(0, 2), st.integers(*INT32))),
        tags=draw(st.lists(odd_text, max_size=3)), ratio=draw(st.floats(width=32)),
    )
    if draw(st.booleans()):
        # Set field by field: the Order class comes from its own descriptor pool, not timestamp_pb2's.
        m.at.seconds, m.at.nanos = draw(seconds), draw(nanos)
    for k, v in draw(st.dictionaries(odd_text, ints, max_size=3)).items():
        m.counts[k] = v
    if draw(st.booleans()):
        m.note.value = draw(odd_text)
    if draw(st.booleans()):
        m.maybe = draw(st.integers(*INT32))
    for _ in range(draw(st.integers(0, 2))):
        m.items.add(sku=draw(odd_text), qty=draw(st.integers(*INT32)))
    return m.SerializeToString()


@st.composite
def message_entries(draw: st.DrawFn) -> bytes:
    """Valid Orders, random bytes, and Orders cut short or with junk appended."""
    kind = draw(st.sampled_from(["order", "order", "random", "cut", "junk"]))
    if kind == "random":
        return draw(st.binary(max_size=40))
    raw = draw(orders())
    if kind == "cut" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "junk":
        return raw + draw(st.binary(min_size=1, max_size=8))
    return raw


@st.composite
def message_batches(draw: st.DrawFn) -> pb.IngestRequest:
    entries = draw(st.lists(message_entries(), max_size=6))
    batch = pb.MessageBatch(type=draw(st.sampled_from([ORDER, ORDER, ORDER, "shop.v1.Item", "nope.X", ""])),
                            messages=entries)
    if draw(st.booleans()):
        n = draw(st.one_of(st.just(len(entries)), st.integers(0, len(entries) + 1)))
        batch.ops.extend(draw(st.lists(ops, min_size=n, max_size=n)))
    return pb.IngestRequest(route="r", messages=batch)


# JSON documents: keys favour the declared columns; integers past 64 bits are valid JSON.
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(*INT64), st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_docs = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(list(DECLARED)), text), inner, max_size=4)),
    max_leaves=12,
)
json_objects = st.dictionaries(st.one_of(st.sampled_from(list(DECLARED)), text), json_docs, max_size=5)


@st.composite
def json_entries(draw: st.DrawFn) -> bytes:
    """One JsonBatch entry: an object (pretty or compact), any JSON value, or something almost JSON."""
    kind = draw(st.sampled_from(["object", "object", "object", "value", "random", "tricky", "deep", "bad_utf8"]))
    if kind == "random":
        return draw(st.binary(max_size=40))
    if kind == "deep":
        # Nesting past what parsers allow (orjson stops at 1024, Python's recursion limit is about 1000).
        # Depths well past the limits, not near them: there a RecursionError depends on the stack depth of
        # the caller and hypothesis would report it as flaky.
        depth = draw(st.one_of(st.integers(1, 300), st.sampled_from([255, 256, 1024, 1025, 3000, 100_000])))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return b'{"a":' + opener * depth + b"1" + closer * depth + b"}"
    if kind == "tricky":
        literal = draw(st.sampled_from([
            b"1e400", b"-1e400", b"1e-400", b"123456789012345678901234567890", b"-0", b"0.0e0", b'"\\ud800"',
            b'"\\udc00\\ud800"', b'"\\u0000"', b'"\xe2\x80\xa8"', b"NaN", b"Infinity", b"1.", b"01", b'"\t"',
        ]))
        wrap = draw(st.sampled_from([b'{"x":%s}', b'{"x":[%s]}', b'\r\n{"x":%s}\r\n', b"\xef\xbb\xbf{\"x\":%s}",
                                     b'{"x":%s}\x00', b'{"x":%s,"x":2}', b" \t{\"x\" : %s } "]))
        return wrap % literal
    if kind == "bad_utf8":
        junk = draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"]))
        return b'{"name":"' + junk + b'"}'
    doc = draw(json_objects) if kind == "object" else draw(json_docs)
    indent = draw(st.sampled_from([None, None, 1]))  # indented: newlines inside one entry
    return json.dumps(doc, indent=indent, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def json_batches(draw: st.DrawFn) -> pb.IngestRequest:
    entries = draw(st.lists(json_entries(), max_size=6))
    batch = pb.JsonBatch(objects=entries)
    if draw(st.booleans()):
        n = draw(st.one_of(st.just(len(entries)), st.integers(0, len(entries) + 1)))
        batch.ops.extend(draw(st.lists(ops, min_size=n, max_size=n)))
    return pb.IngestRequest(route="r", json=batch)


# Numbers as JSON can write them, past what a double or an int64 holds too: property 4's own payload.
number_text = st.one_of(
    st.integers().map(str), st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.sampled_from(["1e400", "-1E400", "1e-400", "-0", "0.0e0", "0.10", "123456789012345678901234567890",
                     "-9223372036854775809", "18446744073709551616"]),
)


@st.composite
def json_number_batches(draw: st.DrawFn) -> pb.IngestRequest:
    """JSON rows of numbers only, under names the declared routes take as doubles or integers."""
    objects = []
    for _ in range(draw(st.integers(1, 4))):
        keys = draw(st.lists(st.sampled_from(["x", "total", "ratio", "id", "n"]), min_size=1, max_size=4))
        objects.append(("{" + ",".join(f'"{k}":{draw(number_text)}' for k in keys) + "}").encode())
    return pb.IngestRequest(route="r", json=pb.JsonBatch(objects=objects))


# -- the properties ----------------------------------------------------------------------------------------------
def rows_sent(request: pb.IngestRequest) -> int:
    """How many rows the caller sent, as the caller counts them (only meaningful when prepare returned)."""
    kind = request.WhichOneof("payload")
    if kind == "rows":
        return len(request.rows.rows)
    if kind == "messages":
        return len(request.messages.messages)
    if kind == "json":
        return len(request.json.objects)
    cols = request.columns.columns
    lengths = [len(getattr(c, c.WhichOneof("data")).values) for c in cols if c.WhichOneof("data")]
    if lengths:
        return lengths[0]  # prepare returned, so they are all equal
    return max((max(c.null_rows, default=-1) + 1 for c in cols), default=0)


def records(spec: RouteSpec, body: bytes, n_columns: int | None) -> int:
    """Parse a body back the way its target would, and count its records (raises if it does not parse).

    Passed-through JSON is read with the JSON grammar (the json module): a number past a double or a lone
    surrogate escape is valid JSON that some targets refuse, and theirs to refuse.
    """
    if spec.body == "array":
        data = json.loads(body)
        assert isinstance(data, list), f"{spec.name}: body is not a JSON array"
        return len(data)
    if spec.body == "obsrv":
        data = json.loads(body)["data"]
        assert isinstance(data, list)
        return len(data)
    if spec.body == "compact":
        doc = json.loads(body)  # numbers as written: 1e400 is valid JSON that orjson would refuse
        assert all(len(r) == len(doc["columns"]) for r in doc["data"]), "compact: a row's width is not the header's"
        return len(doc["data"])
    if spec.body == "ndjson":
        assert body.endswith(b"\n"), "NDJSON: no final newline"
        lines = body[:-1].split(b"\n")
        for line in lines:
            assert isinstance(json.loads(line), dict), "NDJSON: a line is not an object"
        return len(lines)
    # CSV: the text must decode, and quoted newlines must not add records.
    table = list(csv.reader(io.StringIO(body.decode(), newline="")))
    if n_columns == 0:
        return body.count(b"\n")  # rows of no columns are empty lines, which csv.reader skips
    return len(table) - (1 if spec.body == "csv" else 0)


def encode(pipeline: RoutePipeline, spec: RouteSpec, rows: Rows) -> list[bytes]:
    """Property 3: the accepted rows become request bodies as the batcher and sender would make them."""
    n = len(rows)
    if n == 0:
        return []  # the pipeline never sends an empty batch
    step = pipeline.max_rows
    parts = [rows] if n <= step else [rows.slice(i, min(n, i + step)) for i in range(0, n, step)]
    counted = 0
    bodies = []
    for part in parts:
        # Rows.concat is what _deliver hands the sender: it drops the caller indices.
        request = pipeline.dialect.build(Rows.concat([part]))
        if request.compression:
            compress(request.body, request.compression)
        counted += records(spec, request.body, None if rows.columns is None else len(rows.columns))
        bodies.append(request.body)
    assert counted == n, f"{spec.name}: {n} rows encoded as {counted} records"
    return bodies


def check(route: str, request: pb.IngestRequest, built: Built | None = None) -> str:
    """Properties 1-3 for one request on one route; returns the outcome for statistics."""
    pipelines, specs, _ = built or build()
    pipeline, spec = pipelines[route], specs[route]
    wire = request.SerializeToString()
    try:
        request = pb.IngestRequest.FromString(wire)
    except Exception:
        event("unparseable")
        return "unparseable"  # the gRPC server would refuse it before the bridge sees it
    n = rows_sent(request)
    try:
        rows, errors = pipeline.prepare(request)
    except BatchRejected as e:
        # Property 1: a whole-batch refusal is the caller's problem, never an internal one.
        assert e.code not in ("UNKNOWN", "INTERNAL"), f"BatchRejected {e.code} {e.reason}: {e.message}"
        assert e.reason and e.message
        event(f"batch-rejected {e.reason}")
        return f"batch-rejected {e.reason}"
    # Property 2: every row accounted for, once.
    bad = {e.index for e in errors}
    accepted = [rows.caller_index(p) for p in range(len(rows))]
    assert all(0 <= e.index < n for e in errors), f"error index out of 0..{n - 1}: {errors}"
    assert all(e.reason for e in errors), f"an error without a reason: {errors}"
    assert len(set(accepted)) == len(accepted), f"a row accepted twice: {accepted}"
    assert not bad & set(accepted), f"rows both accepted and rejected: {sorted(bad & set(accepted))}"
    assert len(rows) + len(bad) == n, f"{n} rows sent, {len(rows)} accepted + {len(bad)} rejected"
    # The caller's ack counts rows the way the service does: the same number the caller sent.
    assert acks.request_rows(request) == n, f"the ack would count {acks.request_rows(request)} of {n} rows"
    assert rows.ops is None or len(rows.ops) == len(rows)
    # Property 3, then 4 and 5 (tests/fuzz_values.py) on the bodies.
    bodies = encode(pipeline, spec, rows)
    kind = request.WhichOneof("payload")
    if bodies and kind == "json":
        fuzz_values.check_numbers_as_written(spec.body, rows.data, bodies)
    elif bodies:
        fuzz_values.check_maps_sorted(spec.body, spec.route, bodies, ("counts",) if kind == "messages" else None)
    outcome = "accepted" if not errors else ("none-accepted" if not rows else "partial")
    event(outcome)
    return outcome


# name -> strategy of requests; each property draws a route too.
PAYLOADS: dict[str, st.SearchStrategy[pb.IngestRequest]] = {
    "rows": row_batches(),
    "columns": column_batches(),
    "messages": message_batches(),
    "json": json_batches(),
    "numbers": json_number_batches(),
}


def make_property(payload: str, config: settings, tally: Counter | None = None,
                  built: Built | None = None) -> Callable[[], None]:
    """A hypothesis test of properties 1-3 for one payload kind over every route (``tally`` counts outcomes)."""

    @config
    @given(route=st.sampled_from(ROUTE_NAMES), request=PAYLOADS[payload])
    def prop(route: str, request: pb.IngestRequest) -> None:
        outcome = check(route, request, built)
        if tally is not None:
            tally[outcome.split()[0]] += 1

    prop.__name__ = f"fuzz_{payload}"
    return prop


def fuzz_settings(examples: int, derandomize: bool) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,  # no .hypothesis/ directory in the tree; failures are printed instead
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        # No explain phase: it costs seconds per failure (libcst) and the tracebacks name the faulty line anyway.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


# The CI run: bounded (the file takes a few seconds) and the same examples every time.
CI = fuzz_settings(examples=200, derandomize=True)


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_properties(payload: str, fuzz_routes: Built) -> None:
    make_property(payload, CI, built=fuzz_routes)()


def test_the_fixture_covers_the_dialects(fuzz_routes: Built) -> None:
    """The routes really are the dialects the properties claim to cover (a config typo would narrow them)."""
    pipelines, specs, _ = fuzz_routes
    assert list(specs) == ROUTE_NAMES
    dialects = {p.cfg.dialect for p in pipelines.values()}
    assert {"http", "timeplus", "axiom", "feldera", "obsrv"} <= dialects
    validators = [p.transcoder.validator for p in pipelines.values()]
    assert any(validators) and None in validators




@CI
@given(route=st.sampled_from(["http_ndjson", "http_ndjson_epoch_s", "timeplus_compact_changelog_epoch_us",
                              "timeplus_ndjson_changelog_epoch_ns"]), stamp=timestamps)
def test_timestamps_are_written_exactly(fuzz_routes: Built, route: str, stamp: Timestamp) -> None:
    """Property 6 (tests/fuzz_values.py): every timestamp is written exactly, or its row (never the batch) is
    rejected."""
    pipelines, specs, _ = fuzz_routes
    fuzz_values.check_timestamp(pipelines[route], specs[route].route, specs[route].body, stamp)
