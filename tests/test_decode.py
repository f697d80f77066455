"""The decode stage: every payload shape to JSON-ready rows, and bad rows named by index."""

from __future__ import annotations

import math

import orjson
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bridge.model.errors import BatchRejected, ConfigError
from bridge.proto import pb
from bridge.transcode.decode import Decoder
from bridge.transcode.descriptors import MessageTypes
from bridge.transcode.timefmt import formatter
from tests.protos_util import compile_descriptor_set, load_message_classes


@pytest.mark.parametrize(
    ("seconds", "nanos", "mode", "expected"),
    [
        (1767225600, 0, "rfc3339", "2026-01-01T00:00:00Z"),
        (1767225600, 120_000_000, "rfc3339", "2026-01-01T00:00:00.120Z"),
        (1767225600, 123_456_000, "rfc3339", "2026-01-01T00:00:00.123456Z"),
        (1767225600, 123_456_789, "rfc3339", "2026-01-01T00:00:00.123456789Z"),
        (-1, 0, "rfc3339", "1969-12-31T23:59:59Z"),
        (1767225600, 5_000_000, "epoch_ms", 1767225600005),
        (1767225600, 5_000, "epoch_us", 1767225600000005),
        (1767225600, 5, "epoch_ns", 1767225600000000005),
        (1767225600, 0, "epoch_s", 1767225600),
        (1767225600, 500_000_000, "epoch_s", orjson.Fragment(b"1767225600.500")),
    ],
)
def test_timestamps_keep_the_precision_given(seconds, nanos, mode, expected):
    # As JSON: epoch_s fractions are exact decimal text (an orjson.Fragment), not doubles.
    assert orjson.dumps(formatter(mode)(seconds, nanos)) == orjson.dumps(expected)


def test_columnar_batches_transpose_with_nulls_and_ops():
    d = Decoder(formatter("rfc3339"))
    b = pb.ColumnBatch()
    b.columns.add(name="id").ints.values.extend([1, 2, 3])
    c = b.columns.add(name="name")
    c.strings.values.extend(["a", "", "c"])
    c.null_rows.append(1)
    b.columns.add(name="x").doubles.values.extend([0.5, math.nan, math.inf])
    b.columns.add(name="raw").bytes.values.extend([b"\x01", b"", b"\xff"])
    b.columns.add(name="ts").timestamps.values.extend([0, 1_500_000_000, -1_000_000_000])
    b.columns.add(name="gone")  # no data: all null
    b.ops.extend([pb.OP_INSERT, pb.OP_DELETE, pb.OP_INSERT])
    rows, errors = d.column_batch(b)
    assert errors == []
    assert rows.columns == ("id", "name", "x", "raw", "ts", "gone")
    assert rows.data == [
        (1, "a", 0.5, "AQ==", "1970-01-01T00:00:00Z", None),
        (2, None, None, "", "1970-01-01T00:00:01.500Z", None),
        (3, "c", None, "/w==", "1969-12-31T23:59:59Z", None),
    ]
    assert rows.ops == [0, 1, 0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.columns[1].strings.values.append("extra"), "column 'name' has 3 values, column 'id' has 2"),
        (lambda b: b.columns.add(name="id").ints.values.extend([1, 2]), "column 'id' appears twice"),
        (lambda b: b.columns[1].null_rows.append(5), "null row 5 is past the last row 1"),
        (lambda b: b.ops.append(1), "1 ops for 2 rows"),
    ],
)
def test_columnar_batches_that_cannot_be_read_whole_are_invalid(mutate, message):
    b = pb.ColumnBatch()
    b.columns.add(name="id").ints.values.extend([1, 2])
    b.columns.add(name="name").strings.values.extend(["a", "b"])
    mutate(b)
    with pytest.raises(BatchRejected) as ei:
        Decoder(formatter("rfc3339")).column_batch(b)
    assert ei.value.code == "INVALID_ARGUMENT"
    assert message in ei.value.message


def test_typed_rows_name_bad_rows_and_keep_caller_indices():
    d = Decoder(formatter("epoch_ms"))
    b = pb.RowBatch(columns=["a", "t"])
    b.rows.add().values.extend([pb.Value(int=1), pb.Value(timestamp=Timestamp(seconds=1, nanos=2_000_000))])
    b.rows.add().values.extend([pb.Value(int=2)])
    r = b.rows.add(op=pb.OP_UPSERT)
    r.values.extend([pb.Value(double=math.inf), pb.Value()])
    rows, errors = d.row_batch(b)
    assert [(e.index, e.reason) for e in errors] == [(1, "row has 1 values for 2 columns")]
    assert rows.data == [(1, 1002), (None, None)]
    assert [rows.caller_index(p) for p in range(len(rows))] == [0, 2]
    assert rows.ops == [0, 2]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    path = compile_descriptor_set(tmp_path_factory.mktemp("desc") / "shop.desc", "shop.proto")
    return path, load_message_classes(path)


def test_user_messages_decode_through_the_descriptor_set(shop):
    path, classes = shop
    Order = classes["shop.v1.Order"]
    m = Order(id=-5, big=2**64 - 1, customer="ann", total=9.5, paid=True, blob=b"\x00\x01", kind=2,
              tags=["x", "y"], counts={"a": 3}, maybe=0, ratio=0.5)
    m.at.seconds = 1767225600
    m.items.add(sku="s1", qty=2)
    m.note.value = "hi"
    m.first.sku = "f"
    d = Decoder(formatter("rfc3339"), MessageTypes(str(path), formatter("rfc3339")))
    batch = pb.MessageBatch(type="shop.v1.Order", messages=[m.SerializeToString(), Order().SerializeToString()])
    rows, errors = d.message_batch(batch)
    assert errors == []
    assert rows.columns == ("id", "big", "customer", "total", "paid", "blob", "kind", "at", "tags", "items",
                            "counts", "note", "maybe", "first", "ratio")
    assert dict(zip(rows.columns, rows.data[0], strict=True)) == {
        "id": -5, "big": 2**64 - 1, "customer": "ann", "total": 9.5, "paid": True, "blob": "AAE=",
        "kind": "KIND_BUY", "at": "2026-01-01T00:00:00Z", "tags": ["x", "y"], "items": [{"sku": "s1", "qty": 2}],
        "counts": {"a": 3}, "note": "hi", "maybe": 0, "first": {"sku": "f", "qty": 0}, "ratio": 0.5,
    }
    # Defaults are written, unset messages and optional fields are null.
    assert dict(zip(rows.columns, rows.data[1], strict=True)) == {
        "id": 0, "big": 0, "customer": "", "total": 0.0, "paid": False, "blob": "", "kind": "KIND_UNSPECIFIED",
        "at": None, "tags": [], "items": [], "counts": {}, "note": None, "maybe": None, "first": None, "ratio": 0.0,
    }


def test_a_descriptor_set_without_its_imports_is_a_config_error(tmp_path):
    path = compile_descriptor_set(tmp_path / "bare.desc", "shop.proto", include_imports=False)
    with pytest.raises(ConfigError, match="not in the set"):
        MessageTypes(str(path), formatter("rfc3339"))
    (tmp_path / "junk.desc").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ConfigError, match="not a FileDescriptorSet"):
        MessageTypes(str(tmp_path / "junk.desc"), formatter("rfc3339"))
