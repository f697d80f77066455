"""Column types between the bridge and its targets, both ways, and reading a target's own schema.

``TYPES`` maps each bridge column type to the target type that reads what the
bridge writes for it (``ingest-bridge schema`` writes DDL with it); the
functions below map a target's type back to the bridge type whose values it
takes, for ``columns: discover``. A target type with no closer bridge type is
``json`` (any value: the target has the last word).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bridge.model.config import ColumnSpec

# bridge type -> (Timeplus / Proton, Feldera, ClickHouse, Axiom, JSON Schema)
TYPES: dict[str, tuple[str, str, str, str, dict]] = {
    "int": ("int64", "BIGINT", "Int64", "integer", {"type": "integer"}),
    "uint": ("uint64", "DECIMAL(20, 0)", "UInt64", "integer", {"type": "integer", "minimum": 0}),
    "double": ("float64", "DOUBLE", "Float64", "float", {"type": "number"}),
    "bool": ("bool", "BOOLEAN", "Bool", "boolean", {"type": "boolean"}),
    "string": ("string", "VARCHAR", "String", "string", {"type": "string"}),
    "bytes": ("string", "VARCHAR", "String", "string", {"type": "string", "contentEncoding": "base64"}),
    "timestamp": ("datetime64(9, 'UTC')", "TIMESTAMP", "DateTime64(9, 'UTC')", "datetime",
                  {"type": "string", "format": "date-time"}),
    "json": ("json", "VARIANT", "String", "object", {}),
}

_INSERT_INTO = re.compile(r"\bINSERT\s+INTO\s+([`\"\w.]+)", re.IGNORECASE)
_WRAPPER = re.compile(r"^(nullable|lowcardinality|low_cardinality)\((.*)\)$", re.IGNORECASE | re.DOTALL)

# ClickHouse and Timeplus share one type family (Timeplus spells it in lower case): by the name before "(".
_CH_FAMILY: dict[str, str] = {
    **dict.fromkeys(("int8", "int16", "int32", "int64", "int128", "int256"), "int"),
    **dict.fromkeys(("uint8", "uint16", "uint32", "uint64", "uint128", "uint256"), "uint"),
    **dict.fromkeys(("float32", "float64", "float", "double", "decimal", "decimal32", "decimal64",
                     "decimal128", "decimal256"), "double"),
    **dict.fromkeys(("bool", "boolean"), "bool"),
    **dict.fromkeys(("string", "fixedstring", "fixed_string", "uuid", "enum", "enum8", "enum16", "date",
                     "date32", "ipv4", "ipv6"), "string"),
    **dict.fromkeys(("datetime", "datetime64"), "timestamp"),
}
# Feldera's SqlType names (its OpenAPI ``SqlType``).
_FELDERA: dict[str, str] = {
    **dict.fromkeys(("TINYINT", "SMALLINT", "INTEGER", "BIGINT"), "int"),
    **dict.fromkeys(("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"), "uint"),
    **dict.fromkeys(("REAL", "DOUBLE"), "double"),
    "BOOLEAN": "bool",
    **dict.fromkeys(("CHAR", "VARCHAR", "UUID", "DATE", "TIME"), "string"),
    **dict.fromkeys(("TIMESTAMP", "TIMESTAMP_TZ"), "timestamp"),
}


class SchemaError(Exception):
    """A target's answer that holds no schema the bridge can read (the message says what it lacks)."""


def clickhouse_type(text: str) -> ColumnSpec:
    """A ClickHouse (or Timeplus) type as a nameless bridge column: ``Nullable(Int64)`` -> int?."""
    t, nullable = text.strip(), False
    while m := _WRAPPER.match(t):
        nullable = nullable or m.group(1).lower() == "nullable"
        t = m.group(2).strip()
    family = t.split("(", 1)[0].strip().lower()
    return ColumnSpec("", _CH_FAMILY.get(family, "json"), nullable)


def feldera_type(columntype: dict) -> ColumnSpec:
    """A Feldera ``ColumnType`` as a nameless bridge column; ``DECIMAL(20, 0)`` (the bridge's uint) reads back
    as uint, other decimals as double."""
    name = str(columntype.get("type") or "")
    nullable = bool(columntype.get("nullable"))
    if name == "DECIMAL":
        whole = columntype.get("scale") in (0, None) and columntype.get("precision") == 20
        return ColumnSpec("", "uint" if whole else "double", nullable)
    return ColumnSpec("", _FELDERA.get(name, "json"), nullable)


def _named(name: Any, spec: ColumnSpec, optional: bool = False) -> ColumnSpec:
    if not isinstance(name, str) or not name:
        raise SchemaError(f"a column without a name: {name!r}")
    return ColumnSpec(name, spec.type, spec.nullable or optional)


def clickhouse_columns(body: Any) -> tuple[ColumnSpec, ...]:
    """``DESCRIBE TABLE t FORMAT JSON``: its ``data`` rows. MATERIALIZED and ALIAS columns take no value (they
    are left out); a column with a DEFAULT may be left out of a row."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data:
        raise SchemaError("the answer has no `data` rows of columns")
    out = []
    for c in data:
        if not isinstance(c, dict) or not isinstance(c.get("type"), str):
            raise SchemaError(f"a column without a type: {c!r}")
        kind = str(c.get("default_type") or "").upper()
        if kind in ("MATERIALIZED", "ALIAS", "EPHEMERAL"):
            continue
        out.append(_named(c.get("name"), clickhouse_type(c["type"]), optional=kind == "DEFAULT"))
    return tuple(out)


def timeplus_columns(body: Any) -> tuple[ColumnSpec, ...]:
    """A Timeplus stream (``GET .../streams/{name}``): its ``columns``, each ``{name, type, nullable, default}``.
    A column with a default (``_tp_time``: the time of ingestion) may be left out."""
    cols = body.get("columns") if isinstance(body, dict) else None
    if not isinstance(cols, list) or not cols:
        raise SchemaError("the stream has no `columns`")
    out = []
    for c in cols:
        if not isinstance(c, dict) or not isinstance(c.get("type"), str):
            raise SchemaError(f"a column without a type: {c!r}")
        spec = clickhouse_type(c["type"])
        optional = bool(c.get("nullable")) or bool(c.get("default"))
        out.append(_named(c.get("name"), spec, optional))
    return tuple(out)


def feldera_columns(body: Any, table: str) -> tuple[ColumnSpec, ...]:
    """A Feldera pipeline (``GET /v0/pipelines/{name}``): the fields of ``table`` in
    ``program_info.schema.inputs``. An unquoted table name matches case-insensitively."""
    info = body.get("program_info") if isinstance(body, dict) else None
    schema = info.get("schema") if isinstance(info, dict) else None
    inputs = schema.get("inputs") if isinstance(schema, dict) else None
    if not isinstance(inputs, list):
        raise SchemaError("the pipeline has no compiled program (program_info.schema.inputs)")
    quoted = len(table) > 1 and table.startswith('"') and table.endswith('"')
    want = table[1:-1] if quoted else table.lower()
    for rel in inputs:
        if not isinstance(rel, dict):
            continue
        name = str(rel.get("name", ""))
        exact = bool(rel.get("case_sensitive"))
        if (name if quoted or exact else name.lower()) == want:
            fields = rel.get("fields")
            if not isinstance(fields, list) or not fields:
                raise SchemaError(f"table {name!r} has no fields")
            out = []
            for f in fields:
                if not isinstance(f, dict) or not isinstance(f.get("columntype"), dict):
                    raise SchemaError(f"a field without a columntype: {f!r}")
                out.append(_named(f.get("name"), feldera_type(f["columntype"]), optional=f.get("default") is not None))
            return tuple(out)
    names = ", ".join(str(r.get("name")) for r in inputs if isinstance(r, dict)) or "none"
    raise SchemaError(f"the pipeline has no table {table!r} (its tables: {names})")


def clickhouse_table(url: str, options: dict) -> str | None:
    """The table an http route inserts into, from ``INSERT INTO t`` in its query option or URL."""
    queries = [v for k, v in options.get("query", {}).items() if k.lower() == "query"]
    queries += [v for k, v in parse_qsl(urlsplit(url).query) if k.lower() == "query"]
    for q in queries:
        m = _INSERT_INTO.search(str(q))
        if m:
            return m.group(1)
    return None
