"""Body encoders shared by the dialects: NDJSON, JSON array, compact, CSV.

One call per batch where the encoder allows; JSON objects that came in as
bytes are joined, not re-encoded. A form that re-forms JSON rows (compact,
CSV) splits each object at its top level and copies each value's JSON text:
numbers arrive exactly as the caller wrote them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec
import orjson

from bridge.model.rows import Rows
from bridge.transcode.jsonrows import split

__all__ = ["compact", "csv_body", "json_array", "json_table", "ndjson", "object_bytes", "raw_compact", "split"]

_STR = msgspec.json.Decoder(str)
_SPLIT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODE = msgspec.json.Encoder().encode
Fragment = orjson.Fragment

@lru_cache(maxsize=256)
def row_to_dict(columns: tuple[str, ...]) -> Callable[[tuple], dict[str, Any]]:
    """A function building one row's dict, made once per column set: twice as fast as dict(zip(...))."""
    body = ", ".join(f"{name!r}: r[{i}]" for i, name in enumerate(columns))
    return eval(f"lambda r: {{{body}}}")  # names are repr()-quoted literals: no code comes from data


def object_bytes(rows: Rows) -> list[bytes]:
    """Each row as one compact JSON object (bytes)."""
    if rows.columns is None:
        return rows.data
    dumps = orjson.dumps
    make = row_to_dict(rows.columns)
    return [dumps(make(values)) for values in rows.data]


def ndjson(rows: Rows) -> bytes:
    """One object per line, each line ending in a newline."""
    if not rows.data:
        return b""
    return b"\n".join([*object_bytes(rows), b""])  # one copy of the body, the last newline included


def json_array(rows: Rows) -> bytes:
    if rows.columns is None:
        return b"[" + b",".join(rows.data) + b"]"
    make = row_to_dict(rows.columns)
    return orjson.dumps([make(values) for values in rows.data])


def json_table(rows: Rows) -> tuple[list[str], list[list[msgspec.Raw | None]]]:
    """JSON rows as a table: the union of their keys in first-seen order, each cell its value's JSON text.

    A key missing from a row is None there (null in compact and CSV; NDJSON keeps it absent).
    """
    objs = [_SPLIT.decode(raw) for raw in rows.data]
    names: dict[str, None] = {}
    for obj in objs:
        names.update(dict.fromkeys(obj))
    cols = list(names)
    return cols, [[obj.get(c) for c in cols] for obj in objs]


def raw_compact(columns: list[str], data: list[list]) -> bytes:
    """Compact from cells that hold JSON text (msgspec.Raw, copied as written), None and ints."""
    return _ENCODE({"columns": columns, "data": data})


def compact(rows: Rows) -> bytes:
    """Timeplus' ``{"columns": [...], "data": [[...], ...]}``."""
    if rows.columns is not None:
        return orjson.dumps({"columns": rows.columns, "data": rows.data})
    return raw_compact(*json_table(rows))


# -- CSV ---------------------------------------------------------------------------------------------------------
# One writer for every target, only the NULL token differs. Every string is quoted (header names too), so no
# string can be read as NULL, lose its edge spaces or be taken for a number; NULL is the one unquoted token.
def _quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _raw_cell(raw: bytes, null: str) -> str:
    """A JSON value's text as a CSV cell: strings and nested values quoted, numbers and booleans as written."""
    first = raw[:1]
    if first == b'"':
        return _quote(_STR.decode(raw))
    if first in (b"{", b"["):
        return _quote(raw.decode())
    if raw == b"null":
        return null
    return raw.decode()  # a number as written, true or false


def _cell(v: Any, null: str) -> str:
    t = type(v)
    if t is str:
        return _quote(v)
    if v is None:
        return null
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float or t is Fragment:
        return orjson.dumps(v).decode()  # shortest round-trip text; a Fragment is an exact number
    if t is msgspec.Raw:
        return _raw_cell(bytes(v), null)
    return _quote(orjson.dumps(v).decode())  # lists and maps as JSON text


def csv_body(rows: Rows, header: bool = True, delimiter: str = ",", columns: list[str] | None = None,
             null: str = "") -> bytes:
    """CSV (RFC 4180 quoting, LF line ends): strings quoted, numbers as written, booleans true/false, nested
    values as JSON text, null as the target's ``null`` token, unquoted."""
    if rows.columns is not None:
        cols, data = list(rows.columns), rows.data
    else:
        cols, data = json_table(rows)
    if columns is not None:
        # Re-order to the target's column order (missing columns are null).
        pos = {c: i for i, c in enumerate(cols)}
        data = [[r[pos[c]] if c in pos else None for c in columns] for r in data]
        cols = columns
    lines = [delimiter.join(map(_quote, cols))] if header else []
    lines += [delimiter.join([_cell(v, null) for v in r]) for r in data]
    return ("\n".join(lines) + "\n").encode() if lines else b""
