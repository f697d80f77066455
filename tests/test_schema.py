"""``ingest-bridge schema``: the DDL runs on a real ClickHouse and takes what the bridge sends; the other DDL
parses in its SQL dialect (sqlglot) with the types the README's table gives; Axiom and Obsrv get their forms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
import pytest
import sqlglot
import yaml
from google.protobuf import descriptor_pb2, struct_pb2, timestamp_pb2, wrappers_pb2
from sqlglot import exp

from bridge.dev import sample
from bridge.proto import pb

DT = exp.DataType.Type
DECLARED = {"id": "int", "name": "string?", "score": "double", "ok": "bool", "at": "timestamp", "raw": "bytes?",
            "big": "uint", "extra": "json?"}


def schema(tmp_path: Path, route: dict, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text(yaml.safe_dump({"routes": {"r": route}}))
    return subprocess.run([sys.executable, "-m", "bridge", "schema", "--config", str(cfg), "--route", "r", *args],
                          capture_output=True, text=True, timeout=60)


def columns_of(ddl: str, dialect: str | None) -> dict[str, tuple[DT, bool, bool]]:
    """name -> (type, nullable, NOT NULL constraint), from the parsed statement."""
    stmt = sqlglot.parse_one(ddl, read=dialect)
    assert isinstance(stmt, exp.Create)
    out = {}
    for col in stmt.this.expressions:
        kind = col.args["kind"]
        not_null = any(isinstance(c.args.get("kind"), exp.NotNullColumnConstraint) for c in col.constraints)
        out[col.name] = (kind.this, bool(kind.args.get("nullable")), not_null)
    return out


def test_timeplus_and_proton_streams_parse_as_clickhouse_sql_with_the_mapped_types(tmp_path):
    route = {"dialect": "timeplus", "url": "http://127.0.0.1:1/default", "target": "clicks",
             "auth": {"api_key": "k-0123456789"}, "columns": {**DECLARED, "_tp_time": "timestamp"}}
    p = schema(tmp_path, route)
    assert p.returncode == 0, p.stderr
    assert "CREATE STREAM IF NOT EXISTS `clicks`" in p.stdout and "-- Timeplus" in p.stdout
    # Timeplus SQL is ClickHouse's with streams: the statement parses as ClickHouse once STREAM reads TABLE.
    cols = columns_of(p.stdout.replace("CREATE STREAM", "CREATE TABLE"), "clickhouse")
    assert cols == {
        "id": (DT.BIGINT, False, False), "name": (DT.TEXT, True, False), "score": (DT.DOUBLE, False, False),
        "ok": (DT.BOOLEAN, False, False), "at": (DT.DATETIME64, False, False), "raw": (DT.TEXT, True, False),
        "big": (DT.UBIGINT, False, False), "extra": (DT.JSON, True, False),
    }  # _tp_time: every stream has it already
    p = schema(tmp_path, {**route, "options": {"api": "proton"}, "auth": {}, "url": "http://127.0.0.1:1"})
    assert p.returncode == 0 and "-- Proton" in p.stdout
    assert columns_of(p.stdout.replace("CREATE STREAM", "CREATE TABLE"), "clickhouse") == cols


def test_feldera_table_parses_with_not_null_where_the_column_is_not_nullable(tmp_path):
    route = {"dialect": "feldera", "url": "http://127.0.0.1:1", "target": "clicks", "options": {"pipeline": "shop"},
             "columns": DECLARED}
    p = schema(tmp_path, route)
    assert p.returncode == 0, p.stderr
    # sqlglot has no Feldera dialect; Feldera's SQL (Calcite) is standard SQL for CREATE TABLE.
    assert columns_of(p.stdout, None) == {
        "id": (DT.BIGINT, False, True), "name": (DT.VARCHAR, False, False), "score": (DT.DOUBLE, False, True),
        "ok": (DT.BOOLEAN, False, True), "at": (DT.TIMESTAMP, False, True), "raw": (DT.VARCHAR, False, False),
        "big": (DT.DECIMAL, False, True), "extra": (DT.VARIANT, False, False),
    }
    p = schema(tmp_path, {**route, "options": {"pipeline": "shop", "timestamps": "epoch_ms"}})
    assert columns_of(p.stdout, None)["at"] == (DT.BIGINT, False, True)  # the target gets numbers


def test_axiom_lists_fields_and_the_dataset_call_without_the_token(tmp_path):
    p = schema(tmp_path, {"dialect": "axiom", "url": "https://us-east-1.aws.edge.axiom.co", "target": "events",
                          "auth": {"token": "xaat-secret-token-1"}, "columns": {"_time": "timestamp", "n": "int?"}})
    assert p.returncode == 0, p.stderr
    assert "xaat-secret-token-1" not in p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert "  _time  datetime   (the event time)" in lines and "  n      integer, or null" in lines
    assert lines[-1] == ("curl -X POST https://api.axiom.co/v2/datasets -H 'Authorization: Bearer ***' "
                         "-H 'Content-Type: application/json' "
                         "-d '{\"name\":\"events\",\"description\":\"rows from ingest-bridge route r\"}'")


def test_obsrv_json_schema_takes_what_the_bridge_writes_and_refuses_the_rest(tmp_path):
    p = schema(tmp_path, {"dialect": "obsrv", "url": "http://127.0.0.1:1", "target": "clicks", "columns": DECLARED})
    assert p.returncode == 0, p.stderr
    doc = orjson.loads(p.stdout)
    ok = {"id": -3, "name": None, "score": 1.5, "ok": True, "at": "2026-01-01T00:00:00.5Z", "big": 2**64 - 1}
    jsonschema.validate(ok, doc, format_checker=jsonschema.FormatChecker())
    for bad in ({**ok, "id": "3"}, {k: v for k, v in ok.items() if k != "score"}, {**ok, "at": "yesterday"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, doc, format_checker=jsonschema.FormatChecker())


def test_message_type_fields_map_as_the_transcoder_writes_them(tmp_path):
    f = descriptor_pb2.FileDescriptorProto(name="shop.proto", package="shop", syntax="proto3",
                                           dependency=["google/protobuf/timestamp.proto",
                                                       "google/protobuf/wrappers.proto",
                                                       "google/protobuf/struct.proto"])
    T = descriptor_pb2.FieldDescriptorProto
    e = f.enum_type.add(name="Kind")
    e.value.add(name="A", number=0)
    m = f.message_type.add(name="Order")
    for num, (name, typ, type_name, label) in enumerate([
        ("id", T.TYPE_SINT64, "", T.LABEL_OPTIONAL), ("qty", T.TYPE_FIXED32, "", T.LABEL_OPTIONAL),
        ("kind", T.TYPE_ENUM, ".shop.Kind", T.LABEL_OPTIONAL), ("at", T.TYPE_MESSAGE, ".google.protobuf.Timestamp",
                                                                T.LABEL_OPTIONAL),
        ("note", T.TYPE_MESSAGE, ".google.protobuf.StringValue", T.LABEL_OPTIONAL),
        ("tags", T.TYPE_STRING, "", T.LABEL_REPEATED), ("meta", T.TYPE_MESSAGE, ".google.protobuf.Struct",
                                                        T.LABEL_OPTIONAL),
        ("blob", T.TYPE_BYTES, "", T.LABEL_OPTIONAL), ("price", T.TYPE_FLOAT, "", T.LABEL_OPTIONAL),
    ], start=1):
        fd = m.field.add(name=name, number=num, type=typ, label=label)
        if type_name:
            fd.type_name = type_name
    opt = m.field.add(name="maybe", number=20, type=T.TYPE_INT32, label=T.LABEL_OPTIONAL, proto3_optional=True,
                      oneof_index=0)
    m.oneof_decl.add(name="_maybe")
    assert opt.proto3_optional
    fds = descriptor_pb2.FileDescriptorSet()
    for dep in (timestamp_pb2, wrappers_pb2, struct_pb2):
        dep.DESCRIPTOR.CopyToProto(fds.file.add())
    fds.file.append(f)
    path = tmp_path / "shop.desc"
    path.write_bytes(fds.SerializeToString())
    route = {"dialect": "feldera", "url": "http://127.0.0.1:1", "target": "orders", "options": {
        "pipeline": "shop", "descriptor_set": str(path)}}
    p = schema(tmp_path, route)
    assert p.returncode == 0, p.stderr
    assert "from its message type shop.Order" in p.stdout
    assert columns_of(p.stdout, None) == {
        "id": (DT.BIGINT, False, True), "qty": (DT.DECIMAL, False, True), "kind": (DT.VARCHAR, False, True),
        "at": (DT.TIMESTAMP, False, False), "note": (DT.VARCHAR, False, False), "tags": (DT.VARIANT, False, True),
        "meta": (DT.VARIANT, False, False), "blob": (DT.VARCHAR, False, True), "price": (DT.DOUBLE, False, True),
        "maybe": (DT.BIGINT, False, False),
    }
    p = schema(tmp_path, route, "--message-type", "shop.Nope")
    assert p.returncode == 2 and "no message type 'shop.Nope'" in p.stderr


def test_a_route_without_columns_or_clickhouse_says_what_is_missing(tmp_path):
    p = schema(tmp_path, {"dialect": "timeplus", "url": "http://127.0.0.1:1", "target": "t",
                          "auth": {"api_key": "k-0123456789"}})
    assert p.returncode == 2 and "declares no columns and has no descriptor set" in p.stderr
    p = schema(tmp_path, {"dialect": "http", "url": "http://127.0.0.1:1/in", "columns": {"id": "int"}})
    assert p.returncode == 2 and "without INSERT INTO" in p.stderr


# -- ClickHouse: the DDL runs, and what the bridge sends reads back equal -----------------------------------


def ch_version(ch) -> str:
    return ch.query("SELECT version()").strip()


@pytest.mark.clickhouse
async def test_clickhouse_ddl_from_a_descriptor_set_takes_message_rows(clickhouse, tmp_path, bridge_factory,
                                                                     channel_factory):
    desc = sample.write_descriptor_set(tmp_path / "click.desc")
    route = {"dialect": "http", "url": clickhouse.http_url, "batch": {"linger": "0s"},
             "options": {"query": {"query": "INSERT INTO clicks_pb FORMAT JSONEachRow"}, "descriptor_set": str(desc),
                         "timestamps": "epoch_ms"}}
    p = schema(tmp_path, route, "--clickhouse-version", ch_version(clickhouse))
    assert p.returncode == 0, p.stderr
    assert "ENGINE = MergeTree ORDER BY `id`" in p.stdout and "`ts` Nullable(Int64)" in p.stdout
    clickhouse.query(p.stdout)
    b = await bridge_factory({"ch": route})
    ack = await channel_factory(b).IngestBatch(sample.messages_request("ch", 1, range(50)))
    assert ack.accepted == 50, ack
    old_bool = tuple(int(x) for x in ch_version(clickhouse).split(".")[:2]) < (21, 12)  # UInt8, not Bool
    want = []
    for i in range(50):
        row = dict(sample.expected_json(i))
        s, n = sample.row(i)[4]
        row["ts"] = s * 1000 + n // 1_000_000
        row["ok"] = int(row["ok"]) if old_bool else row["ok"]
        want.append(row)
    assert clickhouse.rows("clicks_pb") == want


@pytest.mark.clickhouse
async def test_clickhouse_ddl_from_declared_columns_takes_typed_rows(clickhouse, tmp_path, bridge_factory,
                                                                   channel_factory):
    cols = {k: v for k, v in DECLARED.items() if k != "extra"}  # json: ClickHouse reads objects as text only
    route = {"dialect": "http", "url": clickhouse.http_url, "batch": {"linger": "0s"}, "columns": cols,
             "options": {"query": {"query": "INSERT INTO typed FORMAT JSONEachRow",
                                   "date_time_input_format": "best_effort"}}}
    version = ch_version(clickhouse)
    p = schema(tmp_path, route, "--clickhouse-version", version)
    assert p.returncode == 0, p.stderr
    assert "ORDER BY `at`" in p.stdout and "`name` Nullable(String)" in p.stdout and "`big` UInt64" in p.stdout
    clickhouse.query(p.stdout)
    assert columns_of(p.stdout, "clickhouse")["big"] == (DT.UBIGINT, False, False)
    b = await bridge_factory({"ch": route})
    req = pb.IngestRequest(route="ch", sequence=1)
    req.rows.columns.extend(cols)
    sent = [(1, "a", 0.5, True, 1_767_225_605, b"\x00\xff", 2**64 - 1), (2, None, -1e300, False, 86_400, None, 0)]
    for i, name, score, ok, at, raw, big in sent:
        v = req.rows.rows.add().values
        v.add(int=i)
        v.add(string=name) if name is not None else v.add()
        v.add(double=score)
        v.add(bool=ok)
        v.add().timestamp.seconds = at
        v.add(bytes=raw) if raw is not None else v.add()
        v.add(uint=big)
    ack = await channel_factory(b).IngestBatch(req)
    assert ack.accepted == 2, ack
    back = clickhouse.rows("typed")
    # DateTime (before 20.1) shows whole seconds; DateTime64(9) adds nine zeros.
    assert [(r["id"], r["name"], r["score"], bool(r["ok"]), r["at"][:19], r["raw"], r["big"]) for r in back] == [
        (1, "a", 0.5, True, "2026-01-01 00:00:05", "AP8=", 2**64 - 1),
        (2, None, -1e300, False, "1970-01-02 00:00:00", None, 0),
    ]
