"""CSV files as JSON objects for ``ingest-bridge send``: values keep their text unless a type is asked for.

``infer`` (the default) types a cell only where its text is already the JSON
of a value and so reaches the target exactly as written: a JSON number
(``42``, ``-1.50``, ``1e3``), ``true``, ``false``; an empty cell is ``null``.
Anything else is a string, so ``01234``, ``1_000``, `` 42 `` and ``NaN`` stay
as they were. ``string`` makes every cell a string (empty ones ``""``).
``--column name=type`` sets one column's type; a cell that is not of it
stops the file with its line number and column.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from typing import BinaryIO

import orjson

COLUMN_TYPES = ("auto", "string", "int", "double", "bool", "json")
CSV_TYPES = ("infer", "string")

_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_TEXT = re.compile(_NUMBER.pattern.decode())
_INT = re.compile(r"[+-]?[0-9]+")
_NUMBER_START = frozenset(b"-0123456789")


class _Wrong(Exception):
    """A cell that is not of its column's type; the message says what it should be."""


def parse_columns(specs: list[str]) -> dict[str, str]:
    """``["id=int", "zip=string"]`` as a mapping; ValueError naming the bad one."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, typ = spec.partition("=")
        if not sep or not name:
            raise ValueError(f"--column {spec!r}: expected NAME=TYPE, TYPE one of {', '.join(COLUMN_TYPES)}")
        if typ not in COLUMN_TYPES:
            raise ValueError(f"--column {spec!r}: unknown type {typ!r}; types: {', '.join(COLUMN_TYPES)}")
        out[name] = typ
    return out


def _auto(cell: str) -> bytes:
    if not cell:
        return b"null"
    raw = cell.encode()
    if raw[0] in _NUMBER_START and _NUMBER.fullmatch(raw):
        return raw
    if cell == "true" or cell == "false":
        return raw
    return orjson.dumps(cell)


def _string(cell: str) -> bytes:
    return orjson.dumps(cell)


def _int(cell: str) -> bytes:
    if not cell:
        return b"null"
    if not _INT.fullmatch(cell):
        raise _Wrong("an int")
    return str(int(cell)).encode()


def _double(cell: str) -> bytes:
    if not cell:
        return b"null"
    raw = cell.encode()
    if _NUMBER.fullmatch(raw):
        return raw
    try:
        if not cell.isascii() or "_" in cell:
            raise ValueError
        f = float(cell)
    except ValueError:
        raise _Wrong("a double") from None
    if not math.isfinite(f):
        raise _Wrong("a finite double (JSON has no NaN or infinity)")
    return repr(f).encode()


def _bool(cell: str) -> bytes:
    if not cell:
        return b"null"
    low = cell.lower()
    if low not in ("true", "false"):
        raise _Wrong("true or false")
    return low.encode()


def _json(cell: str) -> bytes:
    if not cell:
        return b"null"
    try:
        orjson.loads(cell)
    except orjson.JSONDecodeError:
        raise _Wrong("JSON text") from None
    return cell.encode()


_CONVERT = {"auto": _auto, "string": _string, "int": _int, "double": _double, "bool": _bool, "json": _json}


def read_csv(stream: BinaryIO, types: str = "infer", columns: dict[str, str] | None = None
             ) -> Iterator[tuple[int, bytes]]:
    """(line number, one JSON object) per record; ValueError with the line number for a file that is not right."""
    # utf-8-sig: a spreadsheet's byte order mark is not part of the first name.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _read(csv.reader(text), types, columns)
    finally:
        text.detach()  # the stream is the caller's: dropping the wrapper must not close it


def _read(reader, types: str, columns: dict[str, str] | None) -> Iterator[tuple[int, bytes]]:
    header = next(reader, None)
    if header is None:
        return
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise ValueError(f"line 1: the header names the column {name!r} twice")
        seen.add(name)
    columns = columns or {}
    unknown = [name for name in columns if name not in seen]
    if unknown:
        raise ValueError(f"--column names {', '.join(map(repr, unknown))}, not in the header ({', '.join(header)})")
    default = "auto" if types == "infer" else "string"
    converters = [_CONVERT[columns.get(name, default)] for name in header]
    keys = [orjson.dumps(name) + b":" for name in header]
    width = len(header)
    pairs = list(zip(keys, converters, strict=True))
    line = reader.line_num
    if all(conv is _auto for conv in converters):
        yield from _read_auto(reader, keys, header)
        return
    for record in reader:
        start, line = line + 1, reader.line_num
        if not record:
            continue  # a blank line
        if len(record) > width:
            raise ValueError(f"line {start}: {len(record)} fields, the header has {width}")
        try:
            if len(record) == width:
                body = b",".join([k + conv(cell) for (k, conv), cell in zip(pairs, record, strict=True)])
            else:  # fewer fields than the header: the missing ones are null
                body = b",".join([k + conv(cell) for (k, conv), cell in zip(pairs, record, strict=False)]
                                 + [k + b"null" for k, _ in pairs[len(record):]])
        except _Wrong as e:
            i = next(i for i, ((_, conv), cell) in enumerate(zip(pairs, record, strict=False))
                     if not _converts(conv, cell))
            raise ValueError(f"line {start}, column {header[i]!r}: {record[i]!r} is not {e}") from None
        yield start, b"{" + body + b"}"


def _converts(conv, cell: str) -> bool:
    try:
        conv(cell)
    except _Wrong:
        return False
    return True


def _read_auto(reader, keys: list[bytes], header: list[str]) -> Iterator[tuple[int, bytes]]:
    """The default, inline: the same rules as ``_auto``, without a call per cell (most of CSV's cost)."""
    width = len(keys)
    number, dumps, starts = _NUMBER_TEXT.fullmatch, orjson.dumps, "-0123456789"
    line = reader.line_num
    for record in reader:
        start, line = line + 1, reader.line_num
        if not record:
            continue
        if len(record) > width:
            raise ValueError(f"line {start}: {len(record)} fields, the header has {width}")
        parts = []
        for k, cell in zip(keys, record, strict=False):
            if not cell:
                parts.append(k + b"null")
            elif (cell[0] in starts and number(cell)) or cell == "true" or cell == "false":
                parts.append(k + cell.encode())
            else:
                parts.append(k + dumps(cell))
        for k in keys[len(record):]:
            parts.append(k + b"null")
        yield start, b"{" + b",".join(parts) + b"}"
