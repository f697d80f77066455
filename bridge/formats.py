"""Body encoders shared by the dialects: NDJSON, JSON array, compact, CSV.

One call per batch where the encoder allows; JSON objects that came in as
bytes are joined, not re-encoded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import orjson

from bridge.rows import Rows


@lru_cache(maxsize=256)
def row_to_dict(columns: tuple[str, ...]) -> Callable[[tuple], dict[str, Any]]:
    """A function building one row's dict, made once per column set: twice as fast as dict(zip(...))."""
    body = ", ".join(f"{name!r}: r[{i}]" for i, name in enumerate(columns))
    return eval(f"lambda r: {{{body}}}")  # names are repr()-quoted literals: no code comes from data


def dicts(rows: Rows) -> Iterator[dict[str, Any]]:
    """Each row as a dict (JSON objects are parsed again)."""
    if rows.columns is None:
        loads = orjson.loads
        for raw in rows.data:
            yield loads(raw)
    else:
        make = row_to_dict(rows.columns)
        for values in rows.data:
            yield make(values)


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
    return b"\n".join(object_bytes(rows)) + b"\n"


def json_array(rows: Rows) -> bytes:
    if rows.columns is None:
        return b"[" + b",".join(rows.data) + b"]"
    make = row_to_dict(rows.columns)
    return orjson.dumps([make(values) for values in rows.data])


def table(rows: Rows) -> tuple[list[str], list]:
    """Column names and row arrays; JSON objects are aligned on the union of their keys."""
    if rows.columns is not None:
        return list(rows.columns), rows.data
    objs = list(dicts(rows))
    names: dict[str, None] = {}
    for obj in objs:
        for key in obj:
            names.setdefault(key, None)
    cols = list(names)
    return cols, [[obj.get(c) for c in cols] for obj in objs]


def compact(rows: Rows) -> bytes:
    """Timeplus' ``{"columns": [...], "data": [[...], ...]}``."""
    cols, data = table(rows)
    return orjson.dumps({"columns": cols, "data": data})


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


def csv_body(rows: Rows, header: bool = True, delimiter: str = ",", columns: list[str] | None = None) -> bytes:
    """RFC 4180 CSV; nested values as JSON text, null as an empty field."""
    cols, data = table(rows)
    if columns is not None:
        # Re-order to the target's column order (missing columns are empty).
        pos = {c: i for i, c in enumerate(cols)}
        data = [[r[pos[c]] if c in pos else None for c in columns] for r in data]
        cols = columns
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if header:
        writer.writerow(cols)
    writer.writerows([_csv_cell(v) for v in r] for r in data)
    text = out.getvalue()
    if "\r" in text:
        text = _csv_quoting_cr(cols if header else None, data, delimiter)
    return text.encode()


def _csv_quoting_cr(cols: list[str] | None, data: list, delimiter: str) -> str:
    """The rare body with a carriage return in a value: the csv module quotes CR only when it ends lines."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    lines = []
    for row in ([cols] if cols is not None else []) + [[_csv_cell(v) for v in r] for r in data]:
        out.seek(0)
        out.truncate()
        writer.writerow(row)
        lines.append(out.getvalue()[:-2])
    return "\n".join(lines) + "\n" if lines else ""
