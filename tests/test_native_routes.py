"""Every route the native transcoder serves, against the Python path, at the level of the request sent.

For each dialect and option on the native path (http NDJSON/JSON, Timeplus NDJSON with and without the
changelog, Axiom JSON/NDJSON, Obsrv in both batch modes, Feldera JSON in each update format), with declared
columns (rejected or dropped when unknown), RFC 3339 columns under each ``timestamps`` option: Hypothesis
draws requests of each payload shape (every Value kind, ops, ragged rows, null rows, damaged bytes), both
pipelines ``prepare`` the same wire bytes, and the dialect's ``build`` of each side's rows must give the
same method, URL, headers and body; the row errors (index, column, reason) and a whole-batch rejection must
be the same. The native side may hand a request to the Python path; how often it does is counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from unittest import mock

import pytest
import yaml
from google.protobuf.message import DecodeError
from hypothesis import event, given
from hypothesis import strategies as st

from bridge import transcode
from bridge.config import parse_config
from bridge.ingest import acks
from bridge.model.errors import BatchRejected
from bridge.proto import pb
from bridge.route.pipeline import RoutePipeline
from bridge.send.transport import Transport
from bridge.transcode.native import _native
from tests.test_fuzz import (
    DECLARED,
    ODD_NAMES,
    column_batches,
    doubles,
    ints,
    json_batches,
    odd_text,
    ops,
    row_batches,
    timestamps,
    uints,
    values,
)
from tests.test_native_diff import DIFF, damaged

pytestmark = pytest.mark.skipif(_native is None, reason="bridge._native is not built (no cargo at install time)")

URL = "http://127.0.0.1:9"
COLUMNS = {**DECLARED, "_tp_time": "timestamp?"}
NULLABLE = {k: v if v.endswith("?") else v + "?" for k, v in COLUMNS.items()}
TIMEPLUS = {"dialect": "timeplus", "url": URL, "target": "s", "auth": {"api_key": "k" * 60}}
AXIOM = {"dialect": "axiom", "url": URL, "target": "d", "auth": {"token": "xaat-1"}}
FELDERA = {"dialect": "feldera", "url": URL, "target": "t", "options": {"pipeline": "p"}}


def _opts(base: dict, **options: object) -> dict:
    return {**base, "options": {**base.get("options", {}), **options}}


ROUTES: dict[str, dict] = {
    "http_ndjson": {"dialect": "http", "url": URL},
    "http_json_epoch_s": {"dialect": "http", "url": URL, "options": {"format": "json", "timestamps": "epoch_s"}},
    "http_declared": {"dialect": "http", "url": URL, "columns": COLUMNS},
    "http_declared_drop_epoch_s": {"dialect": "http", "url": URL, "columns": NULLABLE, "unknown_columns": "drop",
                                   "options": {"timestamps": "epoch_s"}},
    "timeplus_ndjson": _opts(TIMEPLUS, format="ndjson"),
    "timeplus_ndjson_epoch_ms": _opts(TIMEPLUS, format="ndjson", timestamps="epoch_ms"),
    "timeplus_changelog_epoch_ns": _opts(TIMEPLUS, format="ndjson", changelog=True, timestamps="epoch_ns"),
    "timeplus_declared_epoch_us": {**_opts(TIMEPLUS, format="ndjson", timestamps="epoch_us"), "columns": NULLABLE},
    "axiom_json": AXIOM,
    "axiom_ndjson_epoch_s": _opts(AXIOM, format="ndjson", timestamps="epoch_s"),
    "axiom_declared": {**AXIOM, "columns": NULLABLE, "unknown_columns": "drop"},
    "obsrv": {"dialect": "obsrv", "url": URL, "target": "d"},
    "obsrv_single_epoch_ms": {"dialect": "obsrv", "url": URL, "target": "d",
                              "options": {"batch_mode": False, "timestamps": "epoch_ms"}},
    "feldera_insert_delete": FELDERA,
    "feldera_raw_declared": {**_opts(FELDERA, update_format="raw"), "columns": NULLABLE},
    "feldera_debezium_lines": _opts(FELDERA, update_format="debezium", array=False, timestamps="epoch_us"),
}


def _pipelines() -> dict[str, RoutePipeline]:
    cfg = parse_config(yaml.safe_dump({"routes": ROUTES}), env={})
    transport = Transport()
    return {name: RoutePipeline(r, transport) for name, r in cfg.routes.items()}


@pytest.fixture(scope="module")
def sides() -> tuple[dict[str, RoutePipeline], dict[str, RoutePipeline]]:
    with mock.patch.dict("os.environ", {transcode.PURE_ENV: "0"}):
        fast = _pipelines()
    with mock.patch.dict("os.environ", {transcode.PURE_ENV: "1"}):
        pure = _pipelines()
    return fast, pure


def test_every_route_here_runs_natively(sides) -> None:
    fast, pure = sides
    assert {n for n, p in fast.items() if p.transcoder.name == "native"} == set(ROUTES)
    assert all(p.transcoder.name == "python" for p in pure.values())


def _fixed_ids() -> Callable[[], uuid.UUID]:
    """uuid4 made repeatable (Obsrv's msgid): each side's n-th batch gets the same id."""
    n = iter(range(1 << 30))
    return lambda: uuid.UUID(int=next(n))


def prepared(p: RoutePipeline, request: pb.IngestRequest, raw: bytes) -> tuple:
    try:
        rows, errors = p.prepare(request, len(raw), raw)
    except BatchRejected as e:
        return None, ("rejected", e.reason, str(e))
    return rows, [(e.index, e.column, e.reason) for e in errors]


def compare(sides, name: str, raw: bytes) -> str:
    """Both pipelines of route ``name`` on wire bytes ``raw``: the same errors, the same request built."""
    fast, pure = sides
    raw += b"\x0a" + bytes([len(name)]) + name.encode()  # the route named last (the last one counts), bytes kept
    request = pb.IngestRequest.FromString(raw)
    if acks.request_rows(request) > 1000:
        return "too many rows"
    got, got_errors = prepared(fast[name], request, raw)
    want, want_errors = prepared(pure[name], request, raw)
    assert got_errors == want_errors, (name, raw)
    if want is None:
        return "rejected"
    if not len(want):
        assert not len(got)
        return "no rows"
    requests = []
    for p, rows in ((fast[name], got), (pure[name], want)):
        with mock.patch("uuid.uuid4", _fixed_ids()), mock.patch("time.time", lambda: 1_700_000_000.0):
            requests.append(p.dialect.build(rows))
    a, b = requests
    assert (a.method, a.url, a.headers, a.compression) == (b.method, b.url, b.headers, b.compression), name
    assert a.body == b.body, (name, raw)
    native = got.form is not None or (
        got.columns is None and (want.columns is not None or request.WhichOneof("payload") == "json"))
    return ("native" if native else "python decides") + (" with errors" if want_errors else "")


routes = st.sampled_from(list(ROUTES))


def _typed(kind: str) -> st.SearchStrategy[pb.Value]:
    """Values a column of this declared type mostly takes (the Python path's own output types)."""
    base = kind.rstrip("?")
    return {
        "int": st.builds(lambda i: pb.Value(int=i), ints),
        "uint": st.builds(lambda u: pb.Value(uint=u), uints),
        "double": st.builds(lambda d: pb.Value(double=d), doubles),
        "bool": st.builds(lambda b: pb.Value(bool=b), st.booleans()),
        "string": st.builds(lambda s: pb.Value(string=s), odd_text),
        "bytes": st.one_of(st.builds(lambda b: pb.Value(bytes=b), st.binary(max_size=8)),
                           st.builds(lambda s: pb.Value(string=s),
                                     st.sampled_from(["", "AQ==", "YQ", "AAAA=", "a b", "é", "AA=A", "+/8="]))),
        "timestamp": st.one_of(st.builds(lambda t: pb.Value(timestamp=t), timestamps),
                               st.builds(lambda s: pb.Value(string=s), st.sampled_from(
                                   ["2024-02-29T23:59:59.5Z", "2023-02-29T00:00:00Z", "2024-01-01T00:00:00+24:00",
                                    "0001-01-01t00:00:00z", "2024-01-01 00:00:00Z", "1"]))),
        "json": values,
    }[base]


@st.composite
def declared_row_batches(draw: st.DrawFn) -> pb.IngestRequest:
    """Rows of declared names (with an odd or reserved one now and then), values mostly of each column's type."""
    names = draw(st.lists(st.one_of(st.sampled_from(list(COLUMNS)), st.sampled_from(ODD_NAMES[1:])),
                          unique=True, max_size=6))
    if draw(st.integers(0, 3)):
        names = ["id", *[n for n in names if n != "id"]]
    batch = pb.RowBatch(columns=names)
    for _ in range(draw(st.integers(0, 6))):
        row = batch.rows.add(values=[draw(st.one_of(_typed(COLUMNS.get(n, "json")), values)
                                          if draw(st.integers(0, 4)) else values) for n in names])
        row.op = draw(ops) if draw(st.integers(0, 3)) == 0 else 0
    return pb.IngestRequest(route="r", rows=batch)


@st.composite
def declared_column_batches(draw: st.DrawFn) -> pb.IngestRequest:
    """Columns of declared names, each of the column kind its type reads, or of another."""
    length = draw(st.integers(1, 5))
    names = draw(st.lists(st.sampled_from(list(COLUMNS)), unique=True, max_size=5))
    if draw(st.integers(0, 3)):
        names = ["id", *[n for n in names if n != "id"]]
    batch = pb.ColumnBatch()
    for n in names:
        col = batch.columns.add(name=n)
        kind = draw(st.sampled_from([COLUMNS[n].rstrip("?"), "int", "uint", "double", "bool", "string", "bytes",
                                     "timestamp", "json"]))
        vals = draw(st.lists(_typed(kind), min_size=length, max_size=length))
        if kind == "int":
            col.ints.values.extend(v.int for v in vals)
        elif kind == "uint":
            col.uints.values.extend(v.uint for v in vals)
        elif kind == "double":
            col.doubles.values.extend(v.double for v in vals)
        elif kind == "bool":
            col.bools.values.extend(v.bool for v in vals)
        elif kind == "string":
            col.strings.values.extend(v.string for v in vals)
        elif kind == "timestamp" and draw(st.booleans()):
            col.timestamps.values.extend(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=length,
                                                       max_size=length)))
        else:
            col.values.values.extend(vals)
        col.null_rows.extend(draw(st.lists(st.integers(0, length - 1), max_size=2)))
    if draw(st.booleans()):
        batch.ops.extend(draw(st.lists(ops, min_size=length, max_size=length)))
    return pb.IngestRequest(route="r", columns=batch)


@DIFF
@given(name=routes, request=st.one_of(row_batches(), declared_row_batches()))
def test_row_batches_build_the_same_requests(sides, name: str, request: pb.IngestRequest) -> None:
    event(compare(sides, name, request.SerializeToString()))


@DIFF
@given(name=routes, request=st.one_of(column_batches(), declared_column_batches()))
def test_column_batches_build_the_same_requests(sides, name: str, request: pb.IngestRequest) -> None:
    event(compare(sides, name, request.SerializeToString()))


@DIFF
@given(name=routes, request=json_batches())
def test_json_batches_build_the_same_requests(sides, name: str, request: pb.IngestRequest) -> None:
    event(compare(sides, name, request.SerializeToString()))


@DIFF
@given(name=routes, request=st.one_of(declared_row_batches(), declared_column_batches()),
       seed=st.integers(0, 2**32 - 1))
def test_damaged_requests_build_the_same_requests(sides, name: str, request: pb.IngestRequest, seed: int) -> None:
    for raw in damaged(request.SerializeToString(), seed, copies=10):
        try:
            pb.IngestRequest.FromString(raw)
        except DecodeError:
            continue
        event(compare(sides, name, raw))


def test_declared_columns_refuse_rows_with_the_python_reasons(sides) -> None:
    """Each kind of refusal on the native path, literally: type, null, out of range, RFC 3339, base64."""
    fast, _ = sides
    rows = [
        [pb.Value(int=1), pb.Value(string="2024-01-01T00:00:00Z"), pb.Value(string="AQ==")],
        [pb.Value(double=1.5), pb.Value(), pb.Value()],
        [pb.Value(uint=2**63), pb.Value(), pb.Value()],
        [pb.Value(), pb.Value(), pb.Value()],
        [pb.Value(int=2), pb.Value(string="2023-02-29T00:00:00Z"), pb.Value()],
        [pb.Value(int=3), pb.Value(), pb.Value(string="a b")],
        [pb.Value(int=4), pb.Value(string="x" * 50), pb.Value()],
    ]
    request = pb.IngestRequest(route="http_declared", rows=pb.RowBatch(
        columns=["id", "ts", "raw"], rows=[pb.Row(values=v) for v in rows]))
    raw = request.SerializeToString()
    got, errors = fast["http_declared"].prepare(request, len(raw), raw)
    assert got.columns is None and got.data == [b'{"id":1,"ts":"2024-01-01T00:00:00Z","raw":"AQ=="}']
    assert [(e.index, e.column, e.reason) for e in errors] == [
        (1, "id", "column 'id' expects an integer in int64, got 1.5"),
        (2, "id", "column 'id' expects an integer in int64, got 9223372036854775808"),
        (3, "id", "column 'id' is not nullable"),
        (4, "ts", "column 'ts' expects an RFC 3339 timestamp, got '2023-02-29T00:00:00Z'"),
        (5, "raw", "column 'raw' expects base64 text (standard alphabet, padded), got 'a b'"),
        (6, "ts", "column 'ts' expects an RFC 3339 timestamp, got '" + "x" * 36 + "..."),
    ]
    assert compare(sides, "http_declared", raw) == "native with errors"


def test_rfc3339_columns_under_epoch_timestamps(sides) -> None:
    """Timeplus' _tp_time stays RFC 3339 when the route writes epoch numbers, natively too."""
    fast, _ = sides
    stamp = pb.Value(timestamp={"seconds": 1, "nanos": 5_000_000})
    request = pb.IngestRequest(route="timeplus_ndjson_epoch_ms", rows=pb.RowBatch(
        columns=["_tp_time", "at"], rows=[pb.Row(values=[stamp, stamp])]))
    raw = request.SerializeToString()
    rows, errors = fast["timeplus_ndjson_epoch_ms"].prepare(request, len(raw), raw)
    assert not errors and rows.data == [b'{"_tp_time":"1970-01-01T00:00:01.005Z","at":1005}']
    assert compare(sides, "timeplus_ndjson_epoch_ms", raw) == "native"


def test_a_reserved_column_is_refused_as_the_python_path_refuses_it(sides) -> None:
    """A changelog route's own _tp_delta column: the batch is refused whole, on both paths."""
    request = pb.IngestRequest(route="timeplus_changelog_epoch_ns", rows=pb.RowBatch(
        columns=["_tp_delta"], rows=[pb.Row(values=[pb.Value(int=1)])]))
    assert compare(sides, "timeplus_changelog_epoch_ns", request.SerializeToString()) == "rejected"
