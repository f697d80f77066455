"""Validate stage: rows against the route's declared columns.

Values are already JSON-ready, so the checks are JSON-level: a timestamp is
an RFC 3339 string (or an epoch number), bytes are base64 text. A bad row is
named by index and column; whole-batch problems (an undeclared column in a
table-shaped batch) raise BatchRejected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.config_model import ColumnSpec
from bridge.errors import BatchRejected
from bridge.rows import RowError, Rows


def _is_timestamp(v: Any) -> bool:
    if isinstance(v, str):
        try:
            datetime.fromisoformat(v)
        except ValueError:
            return False
        return True
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_CHECKS = {
    "int": lambda v: type(v) is int,
    "uint": lambda v: type(v) is int and v >= 0,
    "double": lambda v: type(v) in (int, float),
    "bool": lambda v: type(v) is bool,
    "string": lambda v: type(v) is str,
    "bytes": lambda v: type(v) is str,
    "timestamp": _is_timestamp,
    "json": lambda v: True,
}

_EXPECTED = {
    "int": "an integer",
    "uint": "a non-negative integer",
    "double": "a number",
    "bool": "a boolean",
    "string": "a string",
    "bytes": "base64 text",
    "timestamp": "an RFC 3339 timestamp",
    "json": "any value",
}


def _problem(spec: ColumnSpec, v: Any) -> str | None:
    if v is None:
        return None if spec.nullable else f"column {spec.name!r} is not nullable"
    if _CHECKS[spec.type](v):
        return None
    shown = repr(v)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"column {spec.name!r} expects {_EXPECTED[spec.type]}, got {shown}"


class Validator:
    def __init__(self, columns: tuple[ColumnSpec, ...]) -> None:
        self.columns = columns
        self.by_name = {c.name: c for c in columns}

    def _check_table_columns(self, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in self.by_name]
        if unknown:
            raise BatchRejected(
                "INVALID_ARGUMENT",
                "UNKNOWN_COLUMN",
                f"column {unknown[0]!r} is not declared for this route; declared: {', '.join(self.by_name)}",
                {"column": unknown[0]},
            )
        missing = [c.name for c in self.columns if c.name not in names and not c.nullable]
        if missing:
            raise BatchRejected(
                "INVALID_ARGUMENT",
                "MISSING_COLUMN",
                f"declared column {missing[0]!r} is missing from the batch",
                {"column": missing[0]},
            )

    def check(self, rows: Rows, objects: list[dict] | None = None) -> tuple[Rows, list[RowError]]:
        """The rows that pass, and an error per row that does not (by caller index)."""
        errors: list[RowError] = []
        keep: list[int] = []
        if rows.columns is not None:
            self._check_table_columns(rows.columns)
            specs = [self.by_name[n] for n in rows.columns]
            for pos, values in enumerate(rows.data):
                for spec, v in zip(specs, values, strict=True):
                    problem = _problem(spec, v)
                    if problem:
                        errors.append(RowError(rows.caller_index(pos), spec.name, problem))
                        break
                else:
                    keep.append(pos)
        else:
            assert objects is not None
            for pos, obj in enumerate(objects):
                problem, column = self._check_object(obj)
                if problem:
                    errors.append(RowError(rows.caller_index(pos), column, problem))
                else:
                    keep.append(pos)
        if not errors:
            return rows, errors
        return rows.select(keep), errors

    def _check_object(self, obj: dict) -> tuple[str | None, str]:
        for key in obj:
            if key not in self.by_name:
                return f"key {key!r} is not a declared column", key
        for spec in self.columns:
            if spec.name not in obj:
                if not spec.nullable:
                    return f"declared column {spec.name!r} is missing", spec.name
                continue
            problem = _problem(spec, obj[spec.name])
            if problem:
                return problem, spec.name
        return None, ""
