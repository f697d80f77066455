"""Sample rows in every payload shape, for the demo and the benchmark.

The rows have eight columns: id, user, price, ok, ts, category, count,
message. ``Click`` is a message type defined here in code, so the demo
needs no protoc: its descriptor set is written to a file for the route.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from bridge.proto import pb

COLUMNS = ("id", "user", "price", "ok", "ts", "category", "count", "message")
CATEGORIES = ("books", "games", "music", "tools", "garden")
BASE_TS = 1_767_225_600  # 2026-01-01T00:00:00Z
MESSAGE_TYPE = "ingestbridge.sample.Click"


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="ingestbridge/sample/click.proto", package="ingestbridge.sample", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    m = f.message_type.add(name="Click")
    T = descriptor_pb2.FieldDescriptorProto
    for num, (name, typ) in enumerate(
        [("id", T.TYPE_INT64), ("user", T.TYPE_STRING), ("price", T.TYPE_DOUBLE), ("ok", T.TYPE_BOOL),
         ("ts", T.TYPE_MESSAGE), ("category", T.TYPE_STRING), ("count", T.TYPE_INT32), ("message", T.TYPE_STRING)],
        start=1,
    ):
        fd = m.field.add(name=name, number=num, type=typ, label=T.LABEL_OPTIONAL)
        if typ == T.TYPE_MESSAGE:
            fd.type_name = ".google.protobuf.Timestamp"
    return f


def descriptor_set() -> bytes:
    fds = descriptor_pb2.FileDescriptorSet()
    timestamp_pb2.DESCRIPTOR.CopyToProto(fds.file.add())
    fds.file.append(_file())
    return fds.SerializeToString()


def write_descriptor_set(path: Path) -> Path:
    path.write_bytes(descriptor_set())
    return path


def click_class():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(_file().SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(MESSAGE_TYPE))


def row(i: int) -> tuple:
    """Row i as plain values: ts as (seconds, nanos)."""
    return (
        i, f"user-{i % 1000:04d}", round(i * 0.25, 2), i % 2 == 0, (BASE_TS + i // 1000, (i % 1000) * 1_000_000),
        CATEGORIES[i % 5], i % 7, f"clicked item {i} on page {i % 97} of the catalogue",
    )


def expected_json(i: int) -> dict:
    """Row i as the target should receive it (RFC 3339 timestamps)."""
    r = row(i)
    from bridge.transcode.timefmt import formatter

    return dict(zip(COLUMNS, (*r[:4], formatter("rfc3339")(*r[4]), *r[5:]), strict=True))


def rows_request(route: str, seq: int, ids: range) -> pb.IngestRequest:
    req = pb.IngestRequest(route=route, sequence=seq)
    req.rows.columns.extend(COLUMNS)
    for i in ids:
        r = row(i)
        values = req.rows.rows.add().values
        values.add(int=r[0])
        values.add(string=r[1])
        values.add(double=r[2])
        values.add(bool=r[3])
        values.add(timestamp=Timestamp(seconds=r[4][0], nanos=r[4][1]))
        values.add(string=r[5])
        values.add(int=r[6])
        values.add(string=r[7])
    return req


def columns_request(route: str, seq: int, ids: range) -> pb.IngestRequest:
    rows = [row(i) for i in ids]
    cols = list(zip(*rows, strict=True))
    req = pb.IngestRequest(route=route, sequence=seq)
    c = req.columns.columns
    c.add(name="id").ints.values.extend(cols[0])
    c.add(name="user").strings.values.extend(cols[1])
    c.add(name="price").doubles.values.extend(cols[2])
    c.add(name="ok").bools.values.extend(cols[3])
    c.add(name="ts").timestamps.values.extend(s * 1_000_000_000 + n for s, n in cols[4])
    c.add(name="category").strings.values.extend(cols[5])
    c.add(name="count").ints.values.extend(cols[6])
    c.add(name="message").strings.values.extend(cols[7])
    return req


def messages_request(route: str, seq: int, ids: range, cls=None) -> pb.IngestRequest:
    cls = cls or click_class()
    req = pb.IngestRequest(route=route, sequence=seq)
    req.messages.type = MESSAGE_TYPE
    for i in ids:
        r = row(i)
        m = cls(id=r[0], user=r[1], price=r[2], ok=r[3], category=r[5], count=r[6], message=r[7])
        m.ts.seconds, m.ts.nanos = r[4]
        req.messages.messages.append(m.SerializeToString())
    return req


def json_request(route: str, seq: int, ids: range) -> pb.IngestRequest:
    req = pb.IngestRequest(route=route, sequence=seq)
    req.json.objects.extend(orjson.dumps(expected_json(i)) for i in ids)
    return req


SHAPES = {
    "rows": rows_request,
    "columns": columns_request,
    "messages": messages_request,
    "json": json_request,
}
