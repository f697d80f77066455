"""Hostile inputs the fuzzing found, each pinned end to end: a clear answer, the row named, nothing else lost."""

from __future__ import annotations

import csv
import io

import grpc
import pytest

from bridge.model.rows import Rows
from bridge.proto import pb
from bridge.transcode.formats import csv_body
from bridge.transcode.timefmt import formatter
from tests.grpc_helpers import error_info, status_of
from tests.test_service import route_to


def ts_request(pairs: list[tuple[int, int]]) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r")
    req.rows.columns.extend(["id", "ts"])
    for i, (s, n) in enumerate(pairs):
        v = pb.Value()
        v.timestamp.seconds, v.timestamp.nanos = s, n
        req.rows.rows.add().values.extend([pb.Value(int=i), v])
    return req


@pytest.mark.parametrize("mode", ["rfc3339", "epoch_ns"])
async def test_timestamps_out_of_range_reject_their_row(sink, bridge_factory, channel_factory, mode):
    b = await bridge_factory({"r": route_to(sink, options={"timestamps": mode})})
    # nanos past a second, negative nanos, a year past 2262 (epoch_ns overflows int64), past 9999.
    ack = await channel_factory(b).IngestBatch(ts_request(
        [(0, 5), (0, 1_000_000_000), (0, -1), (10**10, 0), (10**12, 0)]))
    bad = [1, 2, 3, 4] if mode == "epoch_ns" else [1, 2, 4]
    assert [e.index for e in ack.errors] == bad
    assert all("timestamp" in e.reason for e in ack.errors)
    assert [r["id"] for r in sink.rows] == [i for i in range(5) if i not in bad]


def test_epoch_formats_stay_within_int64():
    # The check is on the number written: the largest int64 nanosecond instant is valid, one more is not.
    top_s, top_ns = divmod(2**63 - 1, 10**9)
    assert formatter("epoch_ns")(top_s, top_ns) == 2**63 - 1
    assert formatter("epoch_ns")(*divmod(-(2**63), 10**9)) == -(2**63)
    with pytest.raises(ValueError, match="epoch_ns"):
        formatter("epoch_ns")(top_s, top_ns + 1)
    for mode, per_second in (("epoch_us", 10**6), ("epoch_ms", 10**3)):
        too_far = 2**63 // per_second + 1
        with pytest.raises(ValueError, match=mode):
            formatter(mode)(too_far, 0)
        assert formatter(mode)(too_far - 2, 0) == (too_far - 2) * per_second


async def test_an_op_number_from_a_newer_caller_is_named_not_a_crash(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"a":1}', b'{"a":2}'])
    req.json.ops.extend([pb.OP_INSERT, 7])
    ack = await channel_factory(b).IngestBatch(req)
    assert [e.index for e in ack.errors] == [1] and "op 7 (unknown) is not supported" in ack.errors[0].reason
    assert sink.rows == [{"a": 1}]


@pytest.mark.parametrize("columns, reason, text", [
    # An empty column is 0 rows, not unknown.
    ([("id", "ints", [], [0])], "INVALID_BATCH", "column 'id': null row 0 is past the last row"),
    # All null: 4 billion rows from 10 bytes.
    ([("id", None, None, [4_000_000_000])], "TOO_MANY_ROWS", "the message holds 4000000001 rows; the limit is 100000"),
])
async def test_column_shapes_that_cannot_be_rows_are_refused(sink, bridge_factory, channel_factory, columns, reason,
                                                             text):
    b = await bridge_factory({"r": route_to(sink)})
    req = pb.IngestRequest(route="r")
    for name, kind, values, nulls in columns:
        c = req.columns.columns.add(name=name)
        if kind:
            getattr(c, kind).values.extend(values)
            getattr(c, kind).SetInParent()
        c.null_rows.extend(nulls)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await channel_factory(b).IngestBatch(req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(status_of(e.value)).reason == reason and text in e.value.details()
    assert not sink.requests


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
async def test_json_that_strict_parsers_refuse(sink, bridge_factory, channel_factory, fmt):
    b = await bridge_factory({"r": route_to(sink, options={"format": fmt})}, limits={"max_depth": 64})
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([
        b'{"ok":1}',
        b'{"x":1e400}',  # valid JSON; a double cannot hold it
        b'{"s":"\\ud800"}',  # a lone surrogate escape: the syntax check refuses it
        b'{"a":' + b"[" * 100 + b"]" * 100 + b"}",  # past max_depth
        b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep enough to exhaust a recursive parser
        b'{"big":123456789012345678901234567890}',  # a long integer
    ])
    # One rule on every route: the same rows are refused whatever the form, and numbers go as written.
    if fmt == "csv":
        ack = await channel_factory(b).IngestBatch(req)
        assert [e.index for e in ack.errors] == [2, 3, 4]
        assert "not valid JSON" in ack.errors[0].reason and "deeper than 64" in ack.errors[1].reason
        (cap,) = sink.requests
        assert cap.body == b'"ok","x","big"\n1,\\N,\\N\n\\N,1e400,\\N\n\\N,\\N,123456789012345678901234567890\n'
    else:
        # This target's parser (orjson) refuses 1e400: the target decides, and the batch fails as it says.
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await channel_factory(b).IngestBatch(req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cannot parse body" in e.value.details()
        assert sink.requests[0].body == b'{"ok":1}\n{"x":1e400}\n{"big":123456789012345678901234567890}\n'


def test_csv_quotes_a_bare_carriage_return():
    rows = Rows(("a", "b\rc"), [("x\ry", 1), ("plain", 2)])
    body = csv_body(rows).decode()
    assert body == '"a","b\rc"\n"x\ry",1\n"plain",2\n'
    assert list(csv.reader(io.StringIO(body, newline=""))) == [["a", "b\rc"], ["x\ry", "1"], ["plain", "2"]]


async def test_a_dot_segment_target_stays_a_name(bridge_factory, channel_factory):
    from bridge.dev.emulators.obsrv import ObsrvEmulator

    obsrv = ObsrvEmulator()
    await obsrv.start()
    try:
        b = await bridge_factory({"r": {"dialect": "obsrv", "url": obsrv.url, "target": "..",
                                        "batch": {"linger": "0s"}, "delivery": {"max_elapsed": "1s"}}})
        req = pb.IngestRequest(route="r")
        req.json.objects.append(b'{"a":1}')
        with pytest.raises(grpc.aio.AioRpcError):
            await channel_factory(b).IngestBatch(req)
        assert [c.raw_path for c in obsrv.requests] == ["/v2/data/in/%2E%2E"]
    finally:
        await obsrv.stop()


@pytest.mark.parametrize("name", ["../r", "r/../r", "http://127.0.0.1:1/r", "r\r\nX-Evil: 1", "r?x=1", "%72", " r"])
async def test_a_route_name_is_only_ever_a_lookup(sink, bridge_factory, channel_factory, name):
    b = await bridge_factory({"r": route_to(sink)})
    req = pb.IngestRequest(route=name)
    req.json.objects.append(b'{"a":1}')
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await channel_factory(b).IngestBatch(req)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(status_of(e.value)).reason == "ROUTE_NOT_FOUND"
    assert sink.url not in e.value.details()
    assert not sink.requests


def test_pretty_printed_json_rows_become_one_line_each_and_stay_as_written():
    from bridge.transcode.decode import Decoder

    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{\r\n  "a": "x\\ny",\n  "n": 1e400\n}', b'{"b":2}'])
    rows, errors, _ = Decoder(formatter("rfc3339")).json_batch(req.json)
    # CR and LF outside strings are whitespace: a space keeps the row as written (1e400 too, for the target).
    assert errors == [] and rows.data == [b'{    "a": "x\\ny",   "n": 1e400 }', b'{"b":2}']


async def test_an_all_null_column_batch_is_counted_by_its_null_rows(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"r": route_to(sink)})
    req = pb.IngestRequest(route="r")
    req.columns.columns.add(name="a").null_rows.extend([0, 2])
    req.columns.columns.add(name="b").null_rows.append(1)
    ack = await channel_factory(b).IngestBatch(req)
    assert (ack.accepted, ack.rejected) == (3, 0)
    assert sink.rows == [{"a": None, "b": None}] * 3
