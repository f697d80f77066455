"""Body encoders shared by the dialects: NDJSON, JSON array, compact, CSV.

One call per batch where the encoder allows; JSON objects that came in as
bytes are joined, not re-encoded. A form that re-forms JSON rows (compact,
CSV) splits each object at its top level and copies each value's JSON text:
numbers arrive exactly as the caller wrote them. Table rows pre-encoded in the
form asked (``Rows.form``) are joined; in another form they are decoded first
(``plain``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec
import orjson

from bridge.model.rows import Joined, RowForm, Rows
from bridge.transcode.jsonrows import split

__all__ = ["COMPACT", "as_form", "compact", "csv_body", "csv_cells", "json_array", "json_table", "ndjson",
           "object_bytes", "plain", "raw_compact", "split"]

COMPACT = RowForm("compact")

_STR = msgspec.json.Decoder(str)
_SPLIT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODE = msgspec.json.Encoder().encode
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
Fragment = orjson.Fragment

@lru_cache(maxsize=256)
def row_to_dict(columns: tuple[str, ...]) -> Callable[[tuple], dict[str, Any]]:
    """A function building one row's dict, made once per column set: twice as fast as dict(zip(...))."""
    body = ", ".join(f"{name!r}: r[{i}]" for i, name in enumerate(columns))
    return eval(f"lambda r: {{{body}}}")  # names are repr()-quoted literals: no code comes from data


def object_bytes(rows: Rows) -> list[bytes]:
    """Each row as one compact JSON object (bytes)."""
    rows = plain(rows)
    if rows.columns is None:
        return rows.data
    dumps = orjson.dumps
    make = row_to_dict(rows.columns)
    return [dumps(make(values)) for values in rows.data]


def ndjson(rows: Rows) -> bytes:
    """One object per line, each line ending in a newline."""
    if not rows.data:
        return b""
    if type(rows.data) is Joined:
        return rows.data.ndjson()  # already one object per line
    return b"\n".join([*object_bytes(rows), b""])  # one copy of the body, the last newline included


def json_array(rows: Rows) -> bytes:
    rows = plain(rows)
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
    if rows.form == COMPACT:
        return b'{"columns":' + orjson.dumps(rows.columns) + b',"data":[' + b",".join(rows.data) + b"]}"
    rows = plain(rows)
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
    if rows.form is not None and rows.form == RowForm("csv", delimiter, null, None if columns is None
                                                      else tuple(columns)):
        cols = rows.columns if columns is None else columns
        encoded = [delimiter.join(map(_quote, cols)).encode(), *rows.data] if header else rows.data
        return b"\n".join(encoded) + b"\n" if encoded else b""
    rows = plain(rows)
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


# -- pre-encoded rows back to values -----------------------------------------------------------------------------
def as_form(rows: Rows, form: RowForm | None) -> Rows:
    """``rows`` as a dialect of this form takes them: pre-encoded in another form (a spooled record written before
    the route's options changed), decoded to values."""
    return rows if rows.form is None or rows.form == form else plain(rows)


def plain(rows: Rows) -> Rows:
    """Pre-encoded table rows as tuples of values, for what reads values (dead letters, a target's answer).

    Strings, booleans, integers and null come back as they were; other numbers as their exact JSON text
    (``orjson.Fragment``). From compact arrays nested values come back too; a CSV line holds them as quoted
    text, so they come back as strings.
    """
    form = rows.form
    if form is None:
        return rows
    assert rows.columns is not None
    if form.kind == "compact":
        data = [tuple(_value(bytes(c)) for c in _ARRAY.decode(r)) for r in rows.data]
    else:
        cols = rows.columns
        at = list(range(len(cols))) if form.order is None else [form.order.index(c) for c in cols]
        data = []
        for line in rows.data:
            cells = csv_cells(line.decode(), form.delimiter) if cols or form.order else []
            data.append(tuple(_csv_value(*cells[i], form.null) for i in at))
    return Rows(rows.columns, data, rows.ops, rows.index)


def _value(raw: bytes) -> Any:
    first = raw[:1]
    if first == b'"':
        return _STR.decode(raw)
    if first in (b"{", b"["):
        return orjson.loads(raw)
    return _scalar(raw.decode())


def _scalar(text: str) -> Any:
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return Fragment(text)


def _csv_value(quoted: bool, text: str, null: str) -> Any:
    if quoted:
        return text
    return None if text == null else _scalar(text)


def csv_cells(line: str, delimiter: str) -> list[tuple[bool, str]]:
    """A line ``csv_body`` wrote, as its cells: (whether quoted, the text without its quotes)."""
    cells = []
    i, n = 0, len(line)
    while True:
        if line.startswith('"', i):
            parts, j = [], i + 1
            while True:
                k = line.index('"', j)
                parts.append(line[j:k])
                if line.startswith('"', k + 1):  # a doubled quote
                    parts.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            cells.append((True, "".join(parts)))
        else:
            k = line.find(delimiter, i)
            k = n if k < 0 else k
            cells.append((False, line[i:k]))
            i = k
        if i >= n:
            return cells
        i += len(delimiter)
