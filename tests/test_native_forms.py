"""The routes whose bodies are tables, natively: Timeplus compact (v1beta2, Proton, the changelog) and every CSV
form (http, Axiom, Feldera), against the Python path at the level of the request sent.

The native transcoder writes a RowBatch's or ColumnBatch's rows pre-encoded in the route's form (compact arrays,
CSV lines) with their columns; the dialect joins them. As in tests/test_native_routes.py, Hypothesis draws
requests of each payload shape, both pipelines ``prepare`` the same wire bytes and the dialect's ``build`` must
give the same method, URL, headers and body, with the same row errors.
"""

from __future__ import annotations

import asyncio
from unittest import mock

import orjson
import pytest
import yaml
from google.protobuf.message import DecodeError
from hypothesis import event, given
from hypothesis import strategies as st

from bridge import transcode
from bridge.config import parse_config
from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.model.rows import RowForm, Rows
from bridge.proto import pb
from bridge.route.pipeline import RoutePipeline
from bridge.send.http import HttpResponse
from bridge.send.transport import Transport
from bridge.spool import records
from bridge.transcode import formats
from bridge.transcode.native import _native
from tests.conftest import fast_delivery
from tests.test_fuzz import column_batches, json_batches, row_batches
from tests.test_native_diff import DIFF, damaged
from tests.test_native_routes import (
    AXIOM,
    COLUMNS,
    FELDERA,
    NULLABLE,
    TIMEPLUS,
    URL,
    _opts,
    compare,
    declared_column_batches,
    declared_row_batches,
)

pytestmark = pytest.mark.skipif(_native is None, reason="bridge._native is not built (no cargo at install time)")

PROTON = {"dialect": "timeplus", "url": URL, "target": "s", "auth": {"username": "u", "password": "p"},
          "options": {"api": "proton"}}
ROUTES: dict[str, dict] = {
    "timeplus_compact": TIMEPLUS,
    "timeplus_compact_changelog_epoch_ms": _opts(TIMEPLUS, changelog=True, timestamps="epoch_ms"),
    "timeplus_compact_declared": {**TIMEPLUS, "columns": COLUMNS},
    "proton_compact_drop_epoch_s": {**_opts(PROTON, timestamps="epoch_s"), "columns": NULLABLE,
                                    "unknown_columns": "drop"},
    "http_csv": {"dialect": "http", "url": URL, "options": {"format": "csv"}},
    "http_csv_semicolon_declared": {"dialect": "http", "url": URL, "columns": COLUMNS,
                                    "options": {"format": "csv", "csv_delimiter": ";", "csv_header": False,
                                                "timestamps": "epoch_s"}},
    "axiom_csv": _opts(AXIOM, format="csv"),
    "axiom_csv_tab_drop_epoch_ns": {**_opts(AXIOM, format="csv", csv_delimiter="\t", timestamps="epoch_ns"),
                                    "columns": NULLABLE, "unknown_columns": "drop"},
    "feldera_csv": {**_opts(FELDERA, format="csv"), "columns": NULLABLE},
    "feldera_csv_declared_drop": {**_opts(FELDERA, format="csv", timestamps="epoch_us"), "columns": COLUMNS,
                                  "unknown_columns": "drop"},
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


routes = st.sampled_from(list(ROUTES))


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


def _prepare(p: RoutePipeline, request: pb.IngestRequest):
    raw = request.SerializeToString()
    return p.prepare(request, len(raw), raw)


def _rows(route: str, columns: list[str], *rows: list[pb.Value]) -> pb.IngestRequest:
    return pb.IngestRequest(route=route, rows=pb.RowBatch(columns=columns, rows=[pb.Row(values=v) for v in rows]))


def test_compact_rows_are_arrays_of_their_columns(sides) -> None:
    """Each row is its compact array; the body is Timeplus' columns + data, byte for byte the Python path's."""
    fast, _ = sides
    request = _rows("timeplus_compact", ["a", "b"], [pb.Value(int=1), pb.Value(string='x"y')],
                    [pb.Value(double=1.5), pb.Value()])
    rows, errors = _prepare(fast["timeplus_compact"], request)
    assert not errors and rows.columns == ("a", "b") and rows.form == formats.COMPACT
    assert rows.data == [b'[1,"x\\"y"]', b"[1.5,null]"]
    assert fast["timeplus_compact"].dialect.build(rows).body == b'{"columns":["a","b"],"data":[[1,"x\\"y"],[1.5,null]]}'
    assert compare(sides, "timeplus_compact", request.SerializeToString()) == "native"


def test_changelog_deltas_join_each_compact_array(sides) -> None:
    request = _rows("timeplus_compact_changelog_epoch_ms", ["k"], [pb.Value(int=1)], [pb.Value(int=2)])
    request.rows.rows[1].op = pb.OP_DELETE
    rows, _ = _prepare(sides[0]["timeplus_compact_changelog_epoch_ms"], request)
    body = sides[0]["timeplus_compact_changelog_epoch_ms"].dialect.build(rows).body
    assert body == b'{"columns":["k","_tp_delta"],"data":[[1,1],[2,-1]]}'
    assert compare(sides, "timeplus_compact_changelog_epoch_ms", request.SerializeToString()) == "native"


def test_csv_lines_quote_every_string_and_write_the_targets_null(sides) -> None:
    """Strings quoted with quotes doubled (a newline kept inside), nested values as quoted JSON, null unquoted."""
    fast, _ = sides
    nested = pb.Value(map=pb.MapValue(fields={"k": pb.Value(string="v")}))
    request = _rows("http_csv", ["s", "m", "n", "t"],
                    [pb.Value(string='say "hi"\nthere'), nested, pb.Value(), pb.Value(bool=True)])
    rows, errors = _prepare(fast["http_csv"], request)
    assert not errors and rows.form == RowForm("csv", ",", "\\N")
    assert rows.data == [b'"say ""hi""\nthere","{""k"":""v""}",\\N,true']
    assert fast["http_csv"].dialect.build(rows).body == b'"s","m","n","t"\n' + rows.data[0] + b"\n"
    for route in ("http_csv", "axiom_csv", "axiom_csv_tab_drop_epoch_ns"):
        request.route = route
        assert compare(sides, route, request.SerializeToString()) == "native"


def test_feldera_csv_is_in_table_order_and_refuses_what_it_would_read_as_null(sides) -> None:
    """Cells in the declared order (missing columns NULL); a nullable string holding NULL, null or an empty
    non-string field is refused by index with the Python path's reason."""
    fast, _ = sides
    request = _rows("feldera_csv", ["note", "id"],
                    [pb.Value(string="fine"), pb.Value(int=1)],
                    [pb.Value(string="NULL"), pb.Value(int=2)],
                    [pb.Value(string='a "null" inside'), pb.Value(int=3)],
                    [pb.Value(string="null"), pb.Value(int=4)])
    rows, errors = _prepare(fast["feldera_csv"], request)
    order = [c.name for c in fast["feldera_csv"].cfg.columns]
    assert rows.form is not None and rows.form.order == tuple(order)
    first = ["NULL"] * len(order)
    first[order.index("id")], first[order.index("note")] = "1", '"fine"'
    assert rows.data[0] == ",".join(first).encode()
    assert [(e.index, e.column) for e in errors] == [(1, "note"), (3, "note")]
    assert errors[0].reason == ("Feldera's CSV reads 'NULL' in nullable column 'note' as NULL; "
                                "send this row with format: json")
    assert compare(sides, "feldera_csv", request.SerializeToString()) == "native with errors"


def test_requests_of_other_columns_never_share_a_batch(sides) -> None:
    """Pre-encoded rows' shape is their form and columns: the batcher joins only rows that share both."""
    fast, _ = sides
    p = fast["timeplus_compact"]
    a1, _ = _prepare(p, _rows("timeplus_compact", ["a"], [pb.Value(int=1)]))
    b, _ = _prepare(p, _rows("timeplus_compact", ["b"], [pb.Value(int=2)]))
    a2, _ = _prepare(p, _rows("timeplus_compact", ["a"], [pb.Value(int=3)]))
    assert a1.shape == a2.shape != b.shape
    assert a1.shape != Rows(("a",), [(1,)]).shape  # nor with a table of values the Python path gave
    assert p.dialect.build(Rows.concat([a1, a2])).body == b'{"columns":["a"],"data":[[1],[3]]}'


@pytest.mark.parametrize("route", ["timeplus_compact", "http_csv", "feldera_csv", "axiom_csv_tab_drop_epoch_ns"])
def test_pre_encoded_rows_survive_the_spool_and_read_back_as_values(sides, route: str) -> None:
    """An ``E`` record keeps each row's bytes (CSV newlines included), its columns, ops and form; its rows read
    back as the Python path's values (dead letters); another form re-encodes them."""
    fast, pure = sides
    request = _rows(route, ["note", "id", "x"], [pb.Value(string='two\nlines, "q"'), pb.Value(int=1),
                                                 pb.Value(double=0.1)],
                    [pb.Value(), pb.Value(int=-2), pb.Value(uint=2**64 - 1)])
    rows, _ = _prepare(fast[route], request)
    want, _ = _prepare(pure[route], request)
    back = records.load(records.dump(rows))
    assert (back.columns, back.data, back.ops, back.form) == (rows.columns, rows.data, rows.ops, rows.form)
    assert fast[route].dialect.build(back).body == pure[route].dialect.build(want).body
    assert orjson.dumps(records.as_objects(back)) == orjson.dumps(records.as_objects(want))  # as written
    assert formats.ndjson(back) == formats.ndjson(want)


@pytest.mark.parametrize("spooled", [False, True])
async def test_a_bridge_sends_each_column_set_in_its_own_compact_request(bridge_factory, channel_factory, tmp_path,
                                                                          monkeypatch, spooled: bool) -> None:
    """Three requests waiting together, two with columns [a] and one with [b]: Timeplus gets one compact body per
    column set, the rows of [a] together; through the spool (E records) alike."""
    monkeypatch.setenv(transcode.PURE_ENV, "0")
    tp = TimeplusEmulator(streams={"ab": ["a", "b"]})
    await tp.start()
    try:
        r = {"dialect": "timeplus", "url": tp.url + "/default", "target": "ab", "auth": {"api_key": tp.api_key},
             "batch": {"linger": "300ms"}, "delivery": fast_delivery()}
        if spooled:
            r["spool"] = {"dir": str(tmp_path)}
        b = await bridge_factory({"r": r})
        assert b.routes["r"].transcoder.name == "native"
        stub = channel_factory(b)
        acks = await asyncio.gather(*(stub.IngestBatch(_rows("r", [c], [pb.Value(int=v)]))
                                      for c, v in (("a", 1), ("b", 2), ("a", 3))))
        assert [a.accepted for a in acks] == [1, 1, 1]
        for _ in range(100):
            if sum(len(orjson.loads(c.body)["data"]) for c in tp.requests) == 3:
                break
            await asyncio.sleep(0.05)
        bodies = sorted((d["columns"], sorted(d["data"])) for d in (orjson.loads(c.body) for c in tp.requests))
        assert bodies == [(["a"], [[1], [3]]), (["b"], [[2]])]  # the [a] rows in one request, in arrival order
        if spooled:  # the rows went through the log as pre-encoded records
            logged = b"".join(f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())
            assert logged.count(b'E{"c":[') == 3
    finally:
        await tp.stop()


def _outcome(o) -> tuple:
    return o.code, o.accepted, [(e.index, e.column, e.reason) for e in o.row_errors or []]


def test_answers_name_the_same_rows_from_csv_lines(sides) -> None:
    """Axiom's failures (by the time field) and Feldera's parse errors (by the line sent) name the same rows of
    pre-encoded CSV lines as of the Python path's values."""
    fast, pure = sides
    stamps = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:01.5Z", "2024-01-01T00:00:02Z"]
    def request(route: str, time_column: str) -> pb.IngestRequest:
        return _rows(route, [time_column, "note", "id"],
                     *[[pb.Value(string=t), pb.Value(string=f"n{i}, \"q\""), pb.Value(int=i)]
                       for i, t in enumerate(stamps)])

    failures = {"ingested": 1, "failed": 2, "failures": [
        {"timestamp": "2024-01-01T00:00:01.500000000Z", "error": "bad"},
        {"timestamp": "2024-01-01T00:00:02Z", "error": "worse"}]}
    answer = HttpResponse(200, {}, orjson.dumps(failures))
    got, want = (_prepare(side["axiom_csv"], request("axiom_csv", "_time"))[0] for side in (fast, pure))
    assert got.form is not None
    assert _outcome(fast["axiom_csv"].dialect.classify(answer, got)) == _outcome(
        pure["axiom_csv"].dialect.classify(answer, want)) == ("OK", 1, [(1, "_time", "Axiom: bad"),
                                                                    (2, "_time", "Axiom: worse")])
    got, want = (_prepare(side["feldera_csv"], request("feldera_csv", "at"))[0] for side in (fast, pure))
    line = fast["feldera_csv"].dialect.build(got).body.split(b"\n")[1].decode()
    answer = HttpResponse(400, {}, orjson.dumps({"error_code": "ParseErrors", "message": "parse errors", "details": {
        "num_errors": 1, "errors": [{"invalid_text": line, "description": "no", "field": "id"}]}}))
    named = _outcome(fast["feldera_csv"].dialect.classify(answer, got))
    assert named == _outcome(pure["feldera_csv"].dialect.classify(answer, want))
    assert named[2] == [(1, "id", "Feldera: no")]


def test_a_refused_epoch_seconds_value_is_shown_as_its_number(sides) -> None:
    """Under ``timestamps: epoch_s`` a fractional second is an exact JSON number (an orjson Fragment inside):
    a reason shows that number, the same on both paths, never the object's repr with its address."""
    request = pb.IngestRequest(route="r")
    column = request.columns.columns.add(name="id")
    column.timestamps.values.extend([1_000_000, -80_499_011])  # microseconds
    for side in sides:
        _, errors = _prepare(side["http_csv_semicolon_declared"], request)
        assert [(e.index, e.column, e.reason) for e in errors] == [
            (0, "id", "column 'id' expects an integer in int64, got 0.001"),
            (1, "id", "column 'id' expects an integer in int64, got -0.080499011"),
        ]
