"""JSON rows: one rule on every route, numbers as written; _tp_delta on changelog routes; CSV NULL per target.

Through a real bridge to each target's emulator; bodies are read back keeping every number's text, and CSV
with the target's own NULL rules.
"""

from __future__ import annotations

import contextlib

import grpc
import pytest

from bridge.dev.emulators import csvread
from bridge.dev.emulators.axiom import AxiomEmulator
from bridge.dev.emulators.feldera import FelderaEmulator, Pipeline
from bridge.dev.emulators.obsrv import Dataset, ObsrvEmulator
from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.proto import pb
from tests.conftest import fast_delivery
from tests.test_service import route_to
from tests.test_values import N, exact, lines

NUMS = ("m", "n", "f", "g")
ROW = b'{"m":100000000000000000000000,"n":-9223372036854775809,"f":1E400,"g":0.10}'
AS_WRITTEN = {"m": N("100000000000000000000000"), "n": N("-9223372036854775809"), "f": N("1E400"), "g": N("0.10")}
TP_AUTH = {"username": "ingest", "password": "secret"}
AX_TOKEN = "xaat-values"


@pytest.fixture
async def targets(sink):
    started = {"sink": sink,
               "tp": TimeplusEmulator(streams={"nums": list(NUMS), "kv": ["k", "note"]}, changelog=("nums", "kv")),
               "fel": FelderaEmulator({"p": Pipeline({"nums": list(NUMS)})}),
               "ax": AxiomEmulator(datasets=("nums",), tokens=(AX_TOKEN,)),
               "obsrv": ObsrvEmulator([Dataset("nums")])}
    for name, e in started.items():
        if name != "sink":
            await e.start()
    yield started
    for name, e in started.items():
        if name != "sink":
            await e.stop()


def json_rows(*objs: bytes, ops: list[int] | None = None, route: str = "r") -> pb.IngestRequest:
    return pb.IngestRequest(route=route, json=pb.JsonBatch(objects=list(objs), ops=ops or []))


def csv_rows(body: bytes, header: bool = True) -> list[dict]:
    """CSV with every unquoted number kept as its text (N)."""
    recs = csvread.records(body.decode())
    names = [f.text for f in recs[0].fields] if header else list(NUMS)
    return [{n: f.text if f.quoted else N(f.text) for n, f in zip(names, r.fields, strict=True)}
            for r in recs[1 if header else 0:]]


def routes(t: dict) -> dict[str, tuple[dict, object, object]]:
    """route name -> (route config, the emulator it sends to, how to read the rows back from a body)."""
    cfg = {"batch": {"linger": "0s"}, "delivery": fast_delivery(max_elapsed="300ms")}
    tp = {"dialect": "timeplus", "url": t["tp"].url + "/default", "target": "nums", "auth": TP_AUTH, **cfg}
    fel = {"dialect": "feldera", "url": t["fel"].url, "target": "nums", **cfg}
    ax = {"dialect": "axiom", "url": t["ax"].url, "target": "nums", "auth": {"token": AX_TOKEN}, **cfg}
    sink = t["sink"]

    def compact(body: bytes) -> list[dict]:
        doc = exact(body)
        return [dict(zip(doc["columns"], r, strict=True)) for r in doc["data"]]

    return {
        "http_ndjson": (route_to(sink), sink, lines),
        "http_json": (route_to(sink, options={"format": "json"}), sink, exact),
        "http_csv": (route_to(sink, options={"format": "csv"}), sink, csv_rows),
        "tp_compact": ({**tp, "options": {}}, t["tp"], compact),
        "tp_ndjson": ({**tp, "options": {"format": "ndjson"}}, t["tp"], lines),
        "tp_changelog_compact": ({**tp, "options": {"changelog": True}}, t["tp"], compact),
        "tp_changelog_ndjson": ({**tp, "options": {"changelog": True, "format": "ndjson"}}, t["tp"], lines),
        "fel_array": ({**fel, "options": {"pipeline": "p"}}, t["fel"], lambda b: [r["insert"] for r in exact(b)]),
        "fel_raw_lines": ({**fel, "options": {"pipeline": "p", "update_format": "raw", "array": False}}, t["fel"],
                          lines),
        "fel_csv": ({**fel, "options": {"pipeline": "p", "format": "csv"}, "columns": dict.fromkeys(NUMS, "double")},
                    t["fel"], lambda b: csv_rows(b, header=False)),
        "ax_json": ({**ax, "options": {"compression": "none"}}, t["ax"], exact),
        "ax_ndjson": ({**ax, "options": {"format": "ndjson", "compression": "none"}}, t["ax"], lines),
        "ax_csv": ({**ax, "options": {"format": "csv", "compression": "none"}}, t["ax"], csv_rows),
        "obsrv": ({"dialect": "obsrv", "url": t["obsrv"].url, "target": "nums", **cfg}, t["obsrv"],
                  lambda b: exact(b)["data"]),
    }


async def test_json_numbers_arrive_as_written_on_every_route(targets, bridge_factory, channel_factory):
    table = routes(targets)
    stub = channel_factory(await bridge_factory({name: r for name, (r, _, _) in table.items()}))
    for name, (_, target, read) in table.items():
        before = len(target.requests)
        # A target whose parser cannot hold 1E400 refuses the batch: the target decides, as it should.
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.IngestBatch(json_rows(ROW, route=name))
        body = target.requests[before].raw
        (row,) = read(body)
        if name.startswith("tp_changelog"):
            assert row.pop("_tp_delta") == N("1"), name
        assert row == AS_WRITTEN, f"{name}: {body!r}"


DEEP = b'{"a":' + b"[" * 40 + b"]" * 40 + b"}"


@pytest.mark.parametrize("name", ["http_ndjson", "http_json", "http_csv", "tp_ndjson", "tp_compact", "fel_array",
                                  "ax_ndjson", "obsrv"])
async def test_every_route_refuses_the_same_rows(targets, bridge_factory, channel_factory, name):
    r, target, read = routes(targets)[name]
    stub = channel_factory(await bridge_factory({"r": r}))
    ack = await stub.IngestBatch(json_rows(b'{"m":1,"n":2,"f":3,"g":4}', DEEP, b"[1]", b'{"m":"\xff"}',
                                           b'{"m":1}{"m":2}', b'{"m":1,"n":2,"f":3,"g":5}'))
    assert [e.index for e in ack.errors] == [1, 2, 3, 4], name
    assert "deeper than 32 levels" in ack.errors[0].reason
    assert [r["g"] for r in read(target.requests[-1].raw)] == [N("4"), N("5")]


async def test_a_missing_key_is_null_in_compact_and_absent_in_ndjson(targets, bridge_factory, channel_factory):
    table = routes(targets)
    tp = targets["tp"]
    stub = channel_factory(await bridge_factory({n: table[n][0] for n in ("tp_compact", "tp_ndjson")}))
    rows = (b'{"m":1,"n":1,"f":1}', b'{"g":2,"m":2,"n":2,"f":2}')
    assert (await stub.IngestBatch(json_rows(*rows, route="tp_compact"))).accepted == 2
    assert tp.requests[-1].raw == b'{"columns":["m","n","f","g"],"data":[[1,1,1,null],[2,2,2,2]]}'
    # NDJSON keeps each object as written (Timeplus Enterprise wants every column in each line).
    assert (await stub.IngestBatch(json_rows(rows[1], route="tp_ndjson"))).accepted == 1
    assert tp.requests[-1].raw == rows[1] + b"\n"


@pytest.mark.parametrize("fmt", ["ndjson", "compact"])
async def test_a_callers_tp_delta_is_refused_by_row_on_a_changelog_route(targets, bridge_factory, channel_factory,
                                                                         fmt):
    tp = targets["tp"]
    r = {"dialect": "timeplus", "url": tp.url + "/default", "target": "kv", "auth": TP_AUTH,
         "batch": {"linger": "0s"}, "options": {"changelog": True, "format": fmt}}
    stub = channel_factory(await bridge_factory({"r": r}))
    ack = await stub.IngestBatch(json_rows(
        b'{"k":"a","note":null,"_tp_delta":-1}', b'{"k":"b","note":null,"\\u005ftp_delta":1}',
        b'{"k":"c","note":null}', b'{"k":"d", "note":"_tp_delta"}',
        ops=[pb.OP_INSERT, pb.OP_INSERT, pb.OP_DELETE, pb.OP_INSERT]))
    assert [(e.index, e.column) for e in ack.errors] == [(0, "_tp_delta"), (1, "_tp_delta")]
    (cap,) = tp.requests
    if fmt == "ndjson":
        assert cap.body == b'{"k":"c","note":null,"_tp_delta":-1}\n{"k":"d", "note":"_tp_delta","_tp_delta":1}\n'
    else:
        assert exact(cap.body) == {"columns": ["k", "note", "_tp_delta"],
                                   "data": [["c", None, N("-1")], ["d", "_tp_delta", N("1")]]}
    assert tp.changes == [(-1, {"k": "c", "note": None}), (1, {"k": "d", "note": "_tp_delta"})]


def typed(columns: list[str], *rows: list[pb.Value]) -> pb.IngestRequest:
    return pb.IngestRequest(route="r", rows=pb.RowBatch(columns=columns, rows=[pb.Row(values=v) for v in rows]))


def s(x: str) -> pb.Value:
    return pb.Value(string=x)


NULL = pb.Value()
NESTED = pb.Value(list=pb.ListValue(values=[pb.Value(int=1), s("x")]))


async def test_csv_null_on_the_http_route_is_clickhouses_backslash_n(sink, bridge_factory, channel_factory):
    req = typed(["s", "n", "j"], [NULL, NULL, NULL], [s(""), pb.Value(int=0), NESTED],
                [s("\\N"), pb.Value(double=1.5), NULL], [s("NULL"), pb.Value(bool=True), s(" padded ")])
    await channel_factory(await bridge_factory({"r": route_to(sink, options={"format": "csv"})})).IngestBatch(req)
    (cap,) = sink.requests
    assert cap.body == (b'"s","n","j"\n\\N,\\N,\\N\n"",0,"[1,""x""]"\n"\\N",1.5,\\N\n"NULL",true," padded "\n')
    assert [r["s"] for r in sink.rows] == [None, "", "\\N", "NULL"]


async def test_feldera_csv_writes_null_as_NULL_and_refuses_strings_it_would_read_as_null(bridge_factory,
                                                                                         channel_factory):
    fel = FelderaEmulator({"p": Pipeline({"t": ["k", "s", "n", "j"]},
                                         csv_types={"t": {"k": "string", "s": "string?", "n": "other?",
                                                          "j": "other?"}})})
    await fel.start()
    try:
        r = {"dialect": "feldera", "url": fel.url, "target": "t", "batch": {"linger": "0s"},
             "options": {"pipeline": "p", "format": "csv"},
             "columns": {"k": "string", "s": "string?", "n": "int?", "j": "json?"}}
        req = typed(["k", "s", "n", "j"], [s("a"), NULL, NULL, NULL], [s("b"), s(""), pb.Value(int=5), NESTED],
                    [s("c"), s("NULL"), NULL, NULL], [s("d"), s("null"), NULL, NULL],
                    [s("NULL"), s("x"), NULL, NULL], [s("e"), s("x"), NULL, s("")])
        ack = await channel_factory(await bridge_factory({"r": r})).IngestBatch(req)
        assert [(e.index, e.column) for e in ack.errors] == [(2, "s"), (3, "s"), (5, "j")]
        assert "as NULL" in ack.errors[0].reason
        (cap,) = fel.requests
        assert cap.body == b'"a",NULL,NULL,NULL\n"b","",5,"[1,""x""]"\n"NULL","x",NULL,NULL\n'
        assert fel.rows == [{"k": "a", "s": None, "n": None, "j": None}, {"k": "b", "s": "", "n": "5", "j": '[1,"x"]'},
                            {"k": "NULL", "s": "x", "n": None, "j": None}]
    finally:
        await fel.stop()


async def test_axiom_csv_writes_null_as_an_empty_field_and_the_empty_string_quoted(targets, bridge_factory,
                                                                                   channel_factory):
    r, ax, _ = routes(targets)["ax_csv"]
    req = typed(["s", "n"], [NULL, NULL], [s(""), pb.Value(int=1)])
    await channel_factory(await bridge_factory({"r": r})).IngestBatch(req)
    assert ax.requests[0].raw == b'"s","n"\n,\n"",1\n'
