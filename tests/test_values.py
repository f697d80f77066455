"""Every typed value arrives as written: maps, doubles, well-known types, enums, floats, timestamps, columns.

Through a real bridge over gRPC to a capture server; each body is read back with a JSON reader that keeps
every number's text (``N``), so a rounded or reformatted number cannot pass for the right one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.proto import pb
from tests.grpc_helpers import error_info, status_of
from tests.protos_util import compile_descriptor_set, load_message_classes
from tests.test_service import route_to


@dataclass(frozen=True)
class N:
    """A JSON number as its text."""

    text: str


def exact(body: bytes) -> object:
    return json.loads(body, parse_int=N, parse_float=N)


def lines(body: bytes) -> list:
    return [exact(x) for x in body.splitlines()]


@pytest.fixture(scope="module")
def values_desc(tmp_path_factory) -> tuple[Path, dict]:
    path = compile_descriptor_set(tmp_path_factory.mktemp("desc") / "values.desc", "values.proto", "shop.proto")
    return path, load_message_classes(path)


def messages(type_name: str, *msgs) -> pb.IngestRequest:
    return pb.IngestRequest(route="r", messages=pb.MessageBatch(type=type_name,
                                                                messages=[m.SerializeToString() for m in msgs]))


async def ingest(bridge_factory, channel_factory, route: dict, req: pb.IngestRequest, **top):
    b = await bridge_factory({"r": route}, **top)
    return await channel_factory(b).IngestBatch(req)


async def test_map_keys_of_every_type_are_strings_in_sorted_order(sink, bridge_factory, channel_factory,
                                                                   values_desc):
    path, classes = values_desc
    m = classes["values.v1.Maps"](i32={10: "a", 9: "b", -1: "c"}, i64={2**62: 1}, u64={2**64 - 1: True, 5: False},
                                  flags={True: "t", False: "f"}, named={"é": 1.5, "b": 2.0, "B": math.nan},
                                  colors={3: 1, -2: 7})
    req = messages("values.v1.Maps", m)
    ack = await ingest(bridge_factory, channel_factory, route_to(sink, options={"descriptor_set": str(path)}), req)
    assert (ack.accepted, ack.rejected) == (1, 0)
    (cap,) = sink.requests
    assert cap.body == (
        b'{"i32":{"-1":"c","10":"a","9":"b"},"i64":{"4611686018427387904":1},'
        b'"u64":{"18446744073709551615":true,"5":false},"flags":{"false":"f","true":"t"},'
        b'"named":{"B":null,"b":2.0,"\xc3\xa9":1.5},"colors":{"-2":"7","3":"COLOR_RED"}}\n')


async def test_a_map_value_is_written_with_sorted_keys(sink, bridge_factory, channel_factory):
    v = pb.Value()
    for key in ("zeta", "alpha", "Ärger", "beta"):
        v.map.fields[key].int = len(key)
    req = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=["m"], rows=[pb.Row(values=[v])]))
    await ingest(bridge_factory, channel_factory, route_to(sink), req)
    assert sink.requests[0].body == '{"m":{"alpha":5,"beta":4,"zeta":4,"Ärger":5}}\n'.encode()


async def test_doubles_columns_that_overflow_or_hold_infinities_keep_their_rows(sink, bridge_factory,
                                                                                 channel_factory):
    req = pb.IngestRequest(route="r")
    req.columns.columns.add(name="id").ints.values.extend([1, 2, 3])
    req.columns.columns.add(name="big").doubles.values.extend([1e308, 1e308, -1e308])
    odd = req.columns.columns.add(name="odd")
    odd.doubles.values.extend([math.inf, -math.inf, math.nan])
    odd.null_rows.append(2)
    ack = await ingest(bridge_factory, channel_factory, route_to(sink), req)
    assert (ack.accepted, ack.rejected) == (3, 0)
    assert lines(sink.requests[0].body) == [
        {"id": N("1"), "big": N("1e+308"), "odd": None},
        {"id": N("2"), "big": N("1e+308"), "odd": None},
        {"id": N("3"), "big": N("-1e+308"), "odd": None},
    ]


async def test_well_known_types_follow_protobufs_json_mapping(sink, bridge_factory, channel_factory, values_desc):
    path, classes = values_desc
    Known, Item = classes["values.v1.Known"], classes["shop.v1.Item"]
    k = Known()
    k.blob.value = b"\xff"
    k.took.seconds, k.took.nanos = -1, -500_000_000
    k.extra.Pack(Item(sku="s", qty=2))
    k.ratio.value = 0.1
    k.score.value = math.inf
    k.attrs.update({"z": 1, "a": [1.5, "x", None, {"q": True}]})
    k.dynamic.null_value = 0
    k.items.values.add().string_value = "v"
    k.mask.paths.extend(["foo_bar", "baz.qux_quux"])
    k.empty.SetInParent()
    k.big.value = 2**63 - 1
    k.label.value = ""
    wkt_in_any = Known()
    wkt_in_any.extra.type_url = "type.googleapis.com/google.protobuf.Duration"
    wkt_in_any.extra.value = duration_pb2.Duration(seconds=1, nanos=500_000_000).SerializeToString()
    unknown = Known()
    unknown.extra.type_url = "type.googleapis.com/nope.v1.Missing"
    req = messages("values.v1.Known", k, wkt_in_any, unknown, Known())
    ack = await ingest(bridge_factory, channel_factory, route_to(sink, options={"descriptor_set": str(path)}), req)
    assert [e.index for e in ack.errors] == [2] and "'nope.v1.Missing'" in ack.errors[0].reason
    first, second, empty = lines(sink.requests[0].body)
    assert first == {
        "blob": "/w==", "took": "-1.500s",
        "extra": {"@type": "type.googleapis.com/shop.v1.Item", "sku": "s", "qty": N("2")},
        "nothing": None, "ratio": N("0.1"), "score": None,
        "attrs": {"a": [N("1.5"), "x", None, {"q": True}], "z": N("1.0")},
        "dynamic": None, "items": ["v"], "mask": "fooBar,baz.quxQuux", "empty": {},
        "big": N("9223372036854775807"), "small": None, "label": "",
    }
    assert second["extra"] == {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.500s"}
    assert set(empty.values()) == {None}  # unset wrappers and messages are null


async def test_floats_at_float_precision_and_enums_always_as_strings(sink, bridge_factory, channel_factory,
                                                                      values_desc):
    path, classes = values_desc
    s = classes["values.v1.Scalars"](f=0.1, fs=[0.5, 3.4028234663852886e38, 1e-45, 16777217.0], d=-math.inf,
                                     color=7, colors=[1, 9])
    req = messages("values.v1.Scalars", s, classes["values.v1.Scalars"](color=1))
    await ingest(bridge_factory, channel_factory, route_to(sink, options={"descriptor_set": str(path)}), req)
    assert lines(sink.requests[0].body) == [
        {"f": N("0.1"), "fs": [N("0.5"), N("3.4028235e+38"), N("1e-45"), N("16777216.0")], "d": None,
         "color": "7", "colors": ["COLOR_RED", "9"]},
        {"f": N("0.0"), "fs": [], "d": N("0.0"), "color": "COLOR_RED", "colors": []},
    ]


def ts_rows(*stamps: tuple[int, int]) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r")
    req.rows.columns.extend(["i", "t"])
    for i, (s, n) in enumerate(stamps):
        req.rows.rows.add().values.extend([pb.Value(int=i), pb.Value(timestamp=Timestamp(seconds=s, nanos=n))])
    return req


STAMPS = [(1_700_000_000, 999_999_999), (253_402_300_799, 999_999_999), (1_700_000_000, 0), (-1, 500_000_000),
          (1, 500_000_000), (0, 1_000), (-62_135_596_800, 0)]


@pytest.mark.parametrize(("mode", "expected"), [
    ("epoch_s", ["1700000000.999999999", "253402300799.999999999", "1700000000", "-0.500", "1.500", "0.000001",
                 "-62135596800"]),
    ("epoch_ms", ["1700000000999", "253402300799999", "1700000000000", "-500", "1500", "0", "-62135596800000"]),
    ("rfc3339", ["2023-11-14T22:13:20.999999999Z", "9999-12-31T23:59:59.999999999Z", "2023-11-14T22:13:20Z",
                 "1969-12-31T23:59:59.500Z", "1970-01-01T00:00:01.500Z", "1970-01-01T00:00:00.000001Z",
                 "0001-01-01T00:00:00Z"]),
])
async def test_timestamps_are_exact_in_every_mode(sink, bridge_factory, channel_factory, mode, expected):
    ack = await ingest(bridge_factory, channel_factory, route_to(sink, options={"timestamps": mode}), ts_rows(*STAMPS))
    assert ack.accepted == len(STAMPS)
    got = [r["t"] for r in lines(sink.requests[0].body)]
    assert got == [x if mode == "rfc3339" else N(x) for x in expected]


async def test_epoch_ns_holds_every_int64_instant_and_refuses_only_the_rows_past_it(sink, bridge_factory,
                                                                                     channel_factory):
    top = divmod(2**63 - 1, 10**9)
    ack = await ingest(bridge_factory, channel_factory, route_to(sink, options={"timestamps": "epoch_ns"}),
                       ts_rows(top, (top[0], top[1] + 1), (0, 5), (253_402_300_799, 0)))
    assert [e.index for e in ack.errors] == [1, 3] and "int64" in ack.errors[0].reason
    assert [r["t"] for r in lines(sink.requests[0].body)] == [N(str(2**63 - 1)), N("5")]
    # A timestamps column is int64 nanoseconds: every value of it is valid, the extremes included.
    req = pb.IngestRequest(route="r", sequence=1)
    req.columns.columns.add(name="t").timestamps.values.extend([2**63 - 1, -(2**63), 1])
    ack = await channel_factory(await bridge_factory({"r": route_to(sink, options={"timestamps": "epoch_ns"})})
                                ).IngestBatch(req)
    assert ack.accepted == 3
    assert [r["t"] for r in lines(sink.requests[1].body)] == [N(str(2**63 - 1)), N(str(-(2**63))), N("1")]


async def test_an_out_of_range_timestamp_is_a_row_error(sink, bridge_factory, channel_factory):
    ack = await ingest(bridge_factory, channel_factory, route_to(sink),
                       ts_rows((0, 0), (253_402_300_800, 0), (0, -1), (-62_135_596_801, 0)))
    assert [e.index for e in ack.errors] == [1, 2, 3] and ack.accepted == 1


async def test_tp_time_is_always_rfc3339_on_timeplus(bridge_factory, channel_factory, values_desc):
    path, classes = values_desc
    tp = TimeplusEmulator(streams={"ev": ["at", "name"]})
    await tp.start()
    try:
        r = {"dialect": "timeplus", "url": tp.url + "/default", "target": "ev", "batch": {"linger": "0s"},
             "auth": {"username": "ingest", "password": "secret"},
             "options": {"timestamps": "epoch_ms", "descriptor_set": str(path)}}
        stub = channel_factory(await bridge_factory({"r": r}))
        ev = classes["values.v1.Event"](name="e")
        ev._tp_time.seconds, ev._tp_time.nanos = 1_700_000_000, 5_000_000
        ev.at.seconds = 1_700_000_000
        rows = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=["_tp_time", "at", "name"], rows=[pb.Row(values=[
            pb.Value(timestamp=Timestamp(seconds=1_700_000_000, nanos=5_000_000)),
            pb.Value(timestamp=Timestamp(seconds=1_700_000_000)), pb.Value(string="e")])]))
        cols = pb.IngestRequest(route="r")
        cols.columns.columns.add(name="_tp_time").timestamps.values.append(1_700_000_000_005_000_000)
        cols.columns.columns.add(name="at").timestamps.values.append(1_700_000_000_000_000_000)
        cols.columns.columns.add(name="name").strings.values.append("e")
        for req in (rows, cols, messages("values.v1.Event", ev)):
            assert (await stub.IngestBatch(req)).accepted == 1
        for cap in tp.requests:
            assert exact(cap.body) == {"columns": ["_tp_time", "at", "name"],
                                       "data": [["2023-11-14T22:13:20.005Z", N("1700000000000"), "e"]]}
    finally:
        await tp.stop()


DECLARED = {"i": "int?", "u": "uint?", "b": "bytes?", "t": "timestamp?", "d": "double?"}


def json_rows(*objs: bytes) -> pb.IngestRequest:
    return pb.IngestRequest(route="r", json=pb.JsonBatch(objects=list(objs)))


@pytest.mark.parametrize(("mode", "good", "bad"), [
    ("rfc3339", [b'{"t":"2026-01-01T00:00:00Z"}', b'{"t":"2026-01-01T01:00:00.5+01:00"}'],
     [b'{"t":1700000000}', b'{"t":"2026-13-01T00:00:00Z"}', b'{"t":"2026-01-01"}', b'{"t":"2026-01-01T00:00:00"}']),
    ("epoch_ms", [b'{"t":1700000000000}', b'{"t":-1}'], [b'{"t":1.5}', b'{"t":"2026-01-01T00:00:00Z"}']),
    ("epoch_s", [b'{"t":1.5}', b'{"t":-1E30}'], [b'{"t":"1"}', b'{"t":true}']),
])
async def test_declared_timestamps_follow_the_routes_mode(sink, bridge_factory, channel_factory, mode, good, bad):
    r = route_to(sink, columns=DECLARED, options={"timestamps": mode})
    ack = await ingest(bridge_factory, channel_factory, r, json_rows(*good, *bad))
    assert [e.index for e in ack.errors] == list(range(len(good), len(good) + len(bad)))
    assert all(e.column == "t" for e in ack.errors)


async def test_declared_columns_refuse_values_outside_their_type(sink, bridge_factory, channel_factory):
    r = route_to(sink, columns=DECLARED)
    stub = channel_factory(await bridge_factory({"r": r}))
    req = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=["i", "u", "b"], rows=[
        pb.Row(values=[pb.Value(uint=2**64 - 1), pb.Value(), pb.Value()]),  # past int64
        pb.Row(values=[pb.Value(uint=2**63 - 1), pb.Value(uint=2**64 - 1), pb.Value(bytes=b"\x00")]),
        pb.Row(values=[pb.Value(int=-1), pb.Value(int=-1), pb.Value()]),  # a negative uint
        pb.Row(values=[pb.Value(), pb.Value(), pb.Value(string="not base64!")]),
        pb.Row(values=[pb.Value(), pb.Value(), pb.Value(string="AAE=")]),
    ]))
    ack = await stub.IngestBatch(req)
    assert [(e.index, e.column) for e in ack.errors] == [(0, "i"), (2, "u"), (3, "b")]
    ack = await stub.IngestBatch(json_rows(
        b'{"i":9223372036854775808}', b'{"i":-9223372036854775808,"u":18446744073709551615}', b'{"i":1.0}',
        b'{"u":18446744073709551616}', b'{"b":"not base64!"}', b'{"b":"AAE"}', b'{"b":"AAE="}', b'{"d":-1E300}',
        b'{"d":"1"}'))
    assert [(e.index, e.column) for e in ack.errors] == [(0, "i"), (2, "i"), (3, "u"), (4, "b"), (5, "b"), (8, "d")]
    assert sink.requests[-1].body == (b'{"i":-9223372036854775808,"u":18446744073709551615}\n{"b":"AAE="}\n'
                                      b'{"d":-1E300}\n')


async def test_a_whole_batch_failure_names_the_reserved_column(bridge_factory, channel_factory, values_desc):
    path, classes = values_desc
    tp = TimeplusEmulator(streams={"kv": ["k"]}, changelog=("kv",))
    await tp.start()
    try:
        r = {"dialect": "timeplus", "url": tp.url + "/default", "target": "kv", "batch": {"linger": "0s"},
             "auth": {"username": "ingest", "password": "secret"},
             "options": {"changelog": True, "descriptor_set": str(path)}}
        stub = channel_factory(await bridge_factory({"r": r}))
        rows = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=["k", "_tp_delta"], rows=[
            pb.Row(values=[pb.Value(string="a"), pb.Value(int=-1)])]))
        cols = pb.IngestRequest(route="r")
        cols.columns.columns.add(name="k").strings.values.append("a")
        cols.columns.columns.add(name="_tp_delta").ints.values.append(-1)
        msgs = messages("values.v1.Change", classes["values.v1.Change"](k="a", _tp_delta=-1))
        for req in (rows, cols, msgs):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.IngestBatch(req)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(status_of(e.value)).reason == "RESERVED_COLUMN"
        assert not tp.requests
    finally:
        await tp.stop()
