"""The bridge's internal row model, shared by every stage after decode.

A request decodes to ``Rows``: either a table (column names plus one tuple of
JSON-ready values per row) or JSON objects kept as the caller's bytes. Values
are already what the target's JSON needs (bytes as base64, timestamps as
strings or epoch numbers), so encoders never look at types.

A table may also come pre-encoded (``Rows.form`` set, by the native transcoder):
each row is then its bytes in the route's body form, a compact JSON array or a
CSV line, and the dialect joins them. Whatever needs values back (a form the
route no longer writes, dead letters, matching a target's answer to rows)
decodes them with ``bridge.transcode.formats.plain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Op(IntEnum):
    """What a row does at the target (mirrors ingestbridge.v1.Op)."""

    INSERT = 0
    DELETE = 1
    UPSERT = 2


@dataclass(slots=True)
class RowError:
    """A rejected row: its index in the caller's request, the column if known, why."""

    index: int
    column: str
    reason: str


@dataclass(frozen=True, slots=True)
class RowForm:
    """How pre-encoded table rows are written: ``compact`` (``[v1,v2]``, the values' JSON text) or ``csv``
    (one line as bridge/transcode/formats.py ``csv_body`` writes it, with this delimiter and NULL token, its
    cells in ``order`` where given (a column the rows lack is null), else in the rows' column order)."""

    kind: str
    delimiter: str = ","
    null: str = ""
    order: tuple[str, ...] | None = None


@dataclass(slots=True)
class Rows:
    """Rows of one shape.

    ``columns`` is None when ``data`` holds JSON objects as bytes; otherwise
    ``data`` holds one tuple per row, in column order. ``ops`` is None when
    every row is an insert. ``index`` maps each row to its index in the
    caller's request (None: the identity, nothing was removed). ``form`` set:
    ``data`` holds each table row as bytes in that form (see the module doc).
    """

    columns: tuple[str, ...] | None
    data: list
    ops: list[int] | None = None
    index: list[int] | None = None
    form: RowForm | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def shape(self) -> tuple[str, ...] | None:
        """Rows of the same shape can share one request (pre-encoded rows only with rows of their form)."""
        return self.columns if self.form is None else (self.form, self.columns)

    def caller_index(self, position: int) -> int:
        return position if self.index is None else self.index[position]

    def select(self, positions: list[int]) -> Rows:
        """The rows at ``positions`` (ascending), keeping their caller indices."""
        data = self.data
        return Rows(
            self.columns,
            [data[p] for p in positions],
            None if self.ops is None else [self.ops[p] for p in positions],
            [self.caller_index(p) for p in positions],
            self.form,
        )

    def slice(self, start: int, stop: int) -> Rows:
        return Rows(
            self.columns,
            self.data[start:stop],
            None if self.ops is None else self.ops[start:stop],
            list(range(start, stop)) if self.index is None else self.index[start:stop],
            self.form,
        )

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """Join rows of one shape; caller indices are dropped (positions are what matter after)."""
        if len(parts) == 1:
            p = parts[0]
            return Rows(p.columns, p.data, p.ops, None, p.form)
        data: list = []
        for p in parts:
            data.extend(p.data)
        ops = None
        if any(p.ops is not None for p in parts):
            ops = []
            for p in parts:
                ops.extend(p.ops if p.ops is not None else [0] * len(p.data))
        return Rows(parts[0].columns, data, ops, None, parts[0].form)
