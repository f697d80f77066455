"""``ingest-bridge schema``: the target's DDL for a route, from its declared columns or its descriptor set.

The column types are the bridge's (``int``, ``uint``, ``double``, ``bool``,
``string``, ``bytes``, ``timestamp``, ``json``); ``TYPES`` maps each to the
type that reads what the bridge writes for it (README: "Schemas"). A message
type's fields map as the transcoder writes them: scalars as themselves
(defaults included, so not nullable), enums as names, Timestamps as
timestamps, wrappers as their value (nullable), other messages, lists and
maps as JSON.
"""

from __future__ import annotations

import argparse
import re
import sys
from urllib.parse import urlsplit

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from bridge.dialects.schema import TYPES
from bridge.dialects.schema import clickhouse_table as _table
from bridge.inspect.explain import UnknownRoute, load_route
from bridge.model.config import ColumnSpec, RouteConfig
from bridge.ops.redact import Redactor, route_secrets
from bridge.transcode.descriptors import load_pool

# With ``timestamps: epoch_*`` the target gets numbers, and a timestamp column is a number column.
EPOCH_TYPES = {"epoch_s": "double"}
_INTS = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT32,
         FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64}
_UINTS = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
          FieldDescriptor.TYPE_FIXED64}
_SCALARS = {FieldDescriptor.TYPE_DOUBLE: "double", FieldDescriptor.TYPE_FLOAT: "double",
            FieldDescriptor.TYPE_BOOL: "bool", FieldDescriptor.TYPE_STRING: "string",
            FieldDescriptor.TYPE_BYTES: "bytes", FieldDescriptor.TYPE_ENUM: "string",
            **dict.fromkeys(_INTS, "int"), **dict.fromkeys(_UINTS, "uint")}
_WKT = "google.protobuf."


class NoSchema(Exception):
    """The route has nothing to build a schema from, or a target schema cannot describe."""


def field_column(f: FieldDescriptor) -> ColumnSpec:
    """A message field as the column the transcoder writes for it."""
    if f.is_repeated:
        return ColumnSpec(f.name, "json")  # a list or a map, [] or {} when empty
    if f.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        name = f.message_type.full_name
        if name == _WKT + "Timestamp":
            return ColumnSpec(f.name, "timestamp", True)
        if name.startswith(_WKT) and name.endswith("Value") and name not in (_WKT + "Value", _WKT + "ListValue"):
            return ColumnSpec(f.name, _SCALARS[f.message_type.fields_by_name["value"].type], True)
        if name == _WKT + "Duration":
            return ColumnSpec(f.name, "string", True)
        return ColumnSpec(f.name, "json", True)
    return ColumnSpec(f.name, _SCALARS[f.type], f.has_presence)


def message_columns(path: str, type_name: str | None) -> tuple[str, tuple[ColumnSpec, ...]]:
    """The message type (named, or the set's only one outside google.*) and its columns."""
    pool = load_pool(path)
    if type_name is None:
        from google.protobuf import descriptor_pb2

        with open(path, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        names = [f"{f.package}.{m.name}".lstrip(".") for f in fds.file if not f.package.startswith("google.")
                 for m in f.message_type]
        if len(names) != 1:
            raise NoSchema(f"descriptor set {path} holds {len(names)} message types ({', '.join(names)}): "
                           "name one with --message-type")
        type_name = names[0]
    try:
        desc: Descriptor = pool.FindMessageTypeByName(type_name)
    except KeyError:
        raise NoSchema(f"descriptor set {path} has no message type {type_name!r}") from None
    return type_name, tuple(field_column(f) for f in desc.fields)


def route_columns(route: RouteConfig, message_type: str | None = None) -> tuple[str, tuple[ColumnSpec, ...]]:
    """(where they come from, the columns): the declared columns, else the descriptor set's message type."""
    ds = route.options.get("descriptor_set") or ""
    if route.columns and message_type is None:
        return "declared columns", route.columns
    if ds:
        name, cols = message_columns(ds, message_type)
        return f"message type {name}", cols
    if message_type:
        raise NoSchema(f"route {route.name!r} has no options.descriptor_set to find {message_type!r} in")
    raise NoSchema(f"route {route.name!r} declares no columns and has no descriptor set: add `columns:` "
                   "(or options.descriptor_set) to the route")


def bridge_type(spec: ColumnSpec, timestamps: str) -> str:
    if spec.type == "timestamp" and timestamps != "rfc3339":
        return EPOCH_TYPES.get(timestamps, "int")
    return spec.type


def ch_quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def sql_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def clickhouse_table(route: RouteConfig) -> str | None:
    """The table an http route inserts into, from ``INSERT INTO t`` in its query option or URL."""
    return _table(route.url, route.options)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2]) or (99,)


def clickhouse_ddl(route: RouteConfig, cols: tuple[ColumnSpec, ...], order_by: list[str] | None,
                   version: str = "latest") -> str:
    table = clickhouse_table(route)
    if table is None:
        raise NoSchema(f"route {route.name!r} is an http route without INSERT INTO in its query: schema knows "
                       "ClickHouse's HTTP interface only")
    v = _version(version) if version != "latest" else (99,)
    ts = route.options.get("timestamps", "rfc3339")
    lines, notes = [], []
    for c in cols:
        t = bridge_type(c, ts)
        ch = TYPES[t][2]
        if t == "bool" and v < (21, 12):
            ch = "UInt8"  # Bool came in 21.12; JSON true/false land in UInt8 as 1/0
        if t == "timestamp" and v < (20, 1):
            ch = "DateTime('UTC')"
            notes.append(f"-- {c.name}: ClickHouse {version} has no DateTime64: whole seconds only")
        lines.append(f"    {ch_quote(c.name)} {f'Nullable({ch})' if c.nullable else ch}")
    if order_by is None:
        firm = [c for c in cols if not c.nullable and bridge_type(c, ts) != "json"]
        first = [c for c in firm if bridge_type(c, ts) == "timestamp"] or firm[:1]
        order_by = [c.name for c in first[:1]]
    key = ", ".join(ch_quote(n) for n in order_by) if order_by else "tuple()"
    if len(order_by) > 1:
        key = f"({key})"
    out = [f"CREATE TABLE IF NOT EXISTS {table}", "(", ",\n".join(lines), ")", f"ENGINE = MergeTree ORDER BY {key};"]
    if any(bridge_type(c, ts) == "timestamp" for c in cols):
        notes.append("-- RFC 3339 timestamps: insert with the setting date_time_input_format=best_effort "
                     "(options.query: {date_time_input_format: best_effort})")
    return "\n".join(notes + out)


def timeplus_ddl(route: RouteConfig, cols: tuple[ColumnSpec, ...]) -> str:
    ts = route.options.get("timestamps", "rfc3339")
    lines = []
    for c in cols:
        if c.name in ("_tp_time", "_tp_delta"):
            continue  # every stream has _tp_time; the route writes _tp_delta from ops
        t = TYPES[bridge_type(c, ts)][0]
        lines.append(f"    {ch_quote(c.name)} {f'nullable({t})' if c.nullable else t}")
    head = "-- Proton" if route.options.get("api") == "proton" else "-- Timeplus"
    out = [head, f"CREATE STREAM IF NOT EXISTS {ch_quote(route.target)}", "(", ",\n".join(lines), ");"]
    if route.options.get("changelog"):
        out.insert(1, "-- options.changelog: rows carry _tp_delta; make it a changelog stream (add a PRIMARY KEY "
                      "and SETTINGS mode='changelog_kv')")
    return "\n".join(out)


def feldera_ddl(route: RouteConfig, cols: tuple[ColumnSpec, ...]) -> str:
    ts = route.options.get("timestamps", "rfc3339")
    lines = [f"    {sql_quote(c.name)} {TYPES[bridge_type(c, ts)][1]}{'' if c.nullable else ' NOT NULL'}" for c in cols]
    return "\n".join([f"-- Feldera pipeline {route.options.get('pipeline', '')!r}",
                      f"CREATE TABLE {sql_quote(route.target)}", "(", ",\n".join(lines), ");"])


def axiom_schema(route: RouteConfig, cols: tuple[ColumnSpec, ...], redact: Redactor) -> str:
    ts = route.options.get("timestamps", "rfc3339")
    time_field = route.options.get("timestamp_field") or "_time"
    width = max((len(c.name) for c in cols), default=0)
    out = [f"Axiom dataset {route.target!r} takes any JSON fields; the route sends these (Axiom's types):"]
    for c in cols:
        note = "   (the event time)" if c.name == time_field else ""
        out.append(f"  {c.name:<{width}}  {TYPES[bridge_type(c, ts)][3]}{'' if not c.nullable else ', or null'}{note}")
    if not any(c.name == time_field for c in cols):
        out.append(f"  (no {time_field!r} field: Axiom stamps each event with the time it is received)")
    parts = urlsplit(route.url)
    base = "https://api.axiom.co" if parts.hostname and parts.hostname.endswith(".axiom.co") else \
        route.url.rstrip("/")
    body = orjson.dumps({"name": route.target, "description": f"rows from ingest-bridge route {route.name}"})
    out += ["", "Create the dataset:",
            f"curl -X POST {base}/v2/datasets -H 'Authorization: Bearer {route.auth['token'].value}' "
            f"-H 'Content-Type: application/json' -d '{body.decode()}'"]
    return redact("\n".join(out))


def obsrv_schema(route: RouteConfig, cols: tuple[ColumnSpec, ...]) -> str:
    """An Obsrv dataset's data schema is a JSON Schema."""
    ts = route.options.get("timestamps", "rfc3339")
    props = {}
    for c in cols:
        s = dict(TYPES[bridge_type(c, ts)][4])
        if c.nullable and "type" in s:
            s["type"] = [s["type"], "null"]
        props[c.name] = s
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": route.target, "type": "object",
           "properties": props, "required": [c.name for c in cols if not c.nullable]}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


def schema(route: RouteConfig, message_type: str | None = None, order_by: list[str] | None = None,
           clickhouse_version: str = "latest") -> str:
    source, cols = route_columns(route, message_type)
    d = route.dialect
    if d == "http":
        text = clickhouse_ddl(route, cols, order_by, clickhouse_version)
    elif d == "timeplus":
        text = timeplus_ddl(route, cols)
    elif d == "feldera":
        text = feldera_ddl(route, cols)
    elif d == "axiom":
        text = axiom_schema(route, cols, Redactor(route_secrets(route)))
    elif d == "obsrv":
        text = obsrv_schema(route, cols)
    else:
        raise NoSchema(f"schema does not know the {d!r} dialect")
    return f"-- route {route.name!r} ({d}), from its {source}\n{text}" if d != "obsrv" else text


def main(args: argparse.Namespace) -> int:
    try:
        pipe = load_route(args.config, args.route)
        order = [c.strip() for c in args.order_by.split(",")] if args.order_by else None
        if not pipe.cfg.targets:
            print(schema(pipe.cfg, args.message_type, order, args.clickhouse_version))
    except (UnknownRoute, NoSchema) as e:
        print(f"ingest-bridge schema: {e.args[0]}", file=sys.stderr)
        return 2
    status = 0
    for t in pipe.cfg.targets:  # several targets: each one's schema, and why not for those it cannot write
        try:
            print(f"-- target {t.name!r}\n" + schema(t.cfg, args.message_type, order, args.clickhouse_version))
        except NoSchema as e:
            print(f"ingest-bridge schema: target {t.name!r}: {e.args[0]}", file=sys.stderr)
            status = 2
    return status
