"""Validate stage: rows against the route's declared columns.

Values are already JSON-ready, so the checks are JSON-level: an ``int`` is an
integer in int64, ``bytes`` base64 text that decodes, a ``timestamp`` what the
route's ``timestamps`` option writes (an RFC 3339 string, or an epoch number).
JSON rows are checked on each value's JSON text with the same rules, never
read as doubles. A bad row is named by index and column; whole-batch problems
(an undeclared column in a table-shaped batch) raise BatchRejected.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from bridge.model.config import ColumnSpec
from bridge.model.errors import BatchRejected
from bridge.model.rows import RowError, Rows

_INT64 = 2**63
_UINT64 = 2**64
_INTEGER = re.compile(rb"-?(?:0|[1-9][0-9]*)")
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
                      r"(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))")
_NUMBER_START = frozenset(b"-0123456789")


def is_rfc3339(s: str) -> bool:
    """An RFC 3339 date-time: full date, time, optional fraction, Z or a numeric offset; a real calendar date."""
    m = _RFC3339.fullmatch(s)
    if m is None:
        return False
    y, mo, d, h, mi, sec, oh, om = m.groups()
    try:
        datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec))
    except ValueError:
        return False
    return oh is None or (int(oh) <= 23 and int(om) <= 59)


def is_base64(s: str) -> bool:
    """Standard base64 with padding that decodes."""
    try:
        base64.b64decode(s, validate=True)
    except (ValueError, binascii.Error):
        return False
    return True


def _is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is float or t is orjson.Fragment  # a Fragment: an exact epoch_s number


def _raw_int(raw: bytes, lo: int, hi: int) -> bool:
    return _INTEGER.fullmatch(raw) is not None and lo <= int(raw) < hi


def _raw_string(raw: bytes, check: Callable[[str], bool]) -> bool:
    return raw[:1] == b'"' and check(orjson.loads(raw))


def _checks(spec: ColumnSpec, mode: str) -> tuple[Callable[[Any], bool], Callable[[bytes], bool], str]:
    """(check of a JSON-ready value, check of a JSON value's text, what is expected) for one column."""
    t = spec.type
    if t == "int":
        return ((lambda v: type(v) is int and -_INT64 <= v < _INT64), (lambda r: _raw_int(r, -_INT64, _INT64)),
                "an integer in int64")
    if t == "uint":
        return ((lambda v: type(v) is int and 0 <= v < _UINT64), (lambda r: _raw_int(r, 0, _UINT64)),
                "an integer in 0..2^64-1")
    if t == "double":
        return _is_number, (lambda r: r[0] in _NUMBER_START), "a number"
    if t == "bool":
        return (lambda v: type(v) is bool), (lambda r: r in (b"true", b"false")), "a boolean"
    if t == "string":
        return (lambda v: type(v) is str), (lambda r: r[:1] == b'"'), "a string"
    if t == "bytes":
        return ((lambda v: type(v) is str and is_base64(v)), (lambda r: _raw_string(r, is_base64)),
                "base64 text (standard alphabet, padded)")
    if t == "timestamp":
        if mode == "rfc3339":
            return ((lambda v: type(v) is str and is_rfc3339(v)), (lambda r: _raw_string(r, is_rfc3339)),
                    "an RFC 3339 timestamp")
        if mode == "epoch_s":
            return _is_number, (lambda r: r[0] in _NUMBER_START), f"a number ({mode})"
        return ((lambda v: type(v) is int), (lambda r: _INTEGER.fullmatch(r) is not None),
                f"an integer ({mode})")
    return (lambda v: True), (lambda r: True), "any value"  # json


def shown(v: Any) -> str:
    """A value as a reason shows it: its ``repr``, cut to 40 characters."""
    if isinstance(v, bytes):
        text = v.decode("utf-8", "replace")
    elif type(v) is orjson.Fragment:  # an exact epoch_s number: its JSON text, not the object's address
        text = orjson.dumps(v).decode()
    else:
        text = repr(v)
    return text[:37] + "..." if len(text) > 40 else text


class Validator:
    """Checks rows against declared columns; ``mode`` is the route's ``timestamps`` option, columns in
    ``rfc3339_columns`` always hold RFC 3339 (Timeplus' ``_tp_time``). ``drop``: a column or key the columns do
    not hold is left out of the row instead of refused (``unknown_columns: drop``); ``discovered``: the columns
    are the target's own (the messages say so)."""

    def __init__(self, columns: tuple[ColumnSpec, ...], mode: str = "rfc3339",
                 rfc3339_columns: frozenset[str] = frozenset(), drop: bool = False, discovered: bool = False
                 ) -> None:
        self.columns = columns
        self.drop = drop
        self.discovered = discovered
        self.by_name = {c.name: c for c in columns}
        self._checks = {c.name: _checks(c, "rfc3339" if c.name in rfc3339_columns else mode) for c in columns}

    def expected(self, name: str) -> str:
        """What a column expects, as its reasons say it."""
        return self._checks[name][2]

    def _problem(self, spec: ColumnSpec, v: Any, raw: bool = False) -> str | None:
        """What is wrong with one value (``raw``: a JSON value's text), or None."""
        if v is None or (raw and v == b"null"):
            return None if spec.nullable else f"column {spec.name!r} is not nullable"
        value_ok, raw_ok, expected = self._checks[spec.name]
        if (raw_ok if raw else value_ok)(v):
            return None
        return f"column {spec.name!r} expects {expected}, got {shown(v)}"

    def _check_table_columns(self, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in self.by_name]
        if unknown:
            raise BatchRejected(
                "INVALID_ARGUMENT",
                "UNKNOWN_COLUMN",
                (f"column {unknown[0]!r} is not in the target's schema; its columns: " if self.discovered else
                 f"column {unknown[0]!r} is not declared for this route; declared: ") + ", ".join(self.by_name),
                {"column": unknown[0]},
            )
        missing = [c.name for c in self.columns if c.name not in names and not c.nullable]
        if missing:
            raise BatchRejected(
                "INVALID_ARGUMENT",
                "MISSING_COLUMN",
                f"{'column' if self.discovered else 'declared column'} {missing[0]!r} is missing from the batch"
                + (f": it is not nullable and expects {self._checks[missing[0]][2]}" if self.discovered else ""),
                {"column": missing[0]},
            )

    def check(self, rows: Rows, objects: list[dict] | None = None) -> tuple[Rows, list[RowError]]:
        """The rows that pass, and an error per row that does not (by caller index).

        ``objects``: JSON rows split at their top level ({key: raw value}), as the decoder returns them.
        """
        errors: list[RowError] = []
        keep: list[int] = []
        if rows.columns is not None:
            if self.drop and any(n not in self.by_name for n in rows.columns):
                rows = _project(rows, [i for i, n in enumerate(rows.columns) if n in self.by_name])
            self._check_table_columns(rows.columns)
            specs = [(self.by_name[n], self._checks[n][0]) for n in rows.columns]
            for pos, values in enumerate(rows.data):
                for (spec, ok), v in zip(specs, values, strict=True):
                    if (v is None and spec.nullable) or (v is not None and ok(v)):
                        continue
                    errors.append(RowError(rows.caller_index(pos), spec.name, self._problem(spec, v)))
                    break
                else:
                    keep.append(pos)
        else:
            assert objects is not None
            data = None
            for pos, obj in enumerate(objects):
                if self.drop and any(k not in self.by_name for k in obj):
                    obj = {k: v for k, v in obj.items() if k in self.by_name}
                    if data is None:
                        data = list(rows.data)
                    data[pos] = _object(obj)
                problem, column = self._check_object(obj)
                if problem:
                    errors.append(RowError(rows.caller_index(pos), column, problem))
                else:
                    keep.append(pos)
            if data is not None:
                rows = Rows(None, data, rows.ops, rows.index)
        if not errors:
            return rows, errors
        return rows.select(keep), errors

    def _check_object(self, obj: dict) -> tuple[str | None, str]:
        for key in obj:
            if key not in self.by_name:
                where = "in the target's schema" if self.discovered else "a declared column"
                return f"key {key!r} is not {where}", key
        for spec in self.columns:
            if spec.name not in obj:
                if not spec.nullable:
                    if self.discovered:
                        return (f"column {spec.name!r} is missing: it is not nullable and expects "
                                f"{self._checks[spec.name][2]}"), spec.name
                    return f"declared column {spec.name!r} is missing", spec.name
                continue
            problem = self._problem(spec, bytes(obj[spec.name]), raw=True)
            if problem:
                return problem, spec.name
        return None, ""


def _project(rows: Rows, keep: list[int]) -> Rows:
    """Table-shaped rows with only the columns at ``keep``."""
    assert rows.columns is not None
    return Rows(tuple(rows.columns[i] for i in keep), [tuple(r[i] for i in keep) for r in rows.data], rows.ops,
                rows.index)


def _object(obj: dict[str, bytes]) -> bytes:
    """A split JSON object joined again (its members' JSON text as it came)."""
    return b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in obj.items()) + b"}"
