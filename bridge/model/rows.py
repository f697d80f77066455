"""The bridge's internal row model, shared by every stage after decode.

A request decodes to ``Rows``: either a table (column names plus one tuple of
JSON-ready values per row) or JSON objects kept as the caller's bytes. Values
are already what the target's JSON needs (bytes as base64, timestamps as
strings or epoch numbers), so encoders never look at types.
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


@dataclass(slots=True)
class Rows:
    """Rows of one shape.

    ``columns`` is None when ``data`` holds JSON objects as bytes; otherwise
    ``data`` holds one tuple per row, in column order. ``ops`` is None when
    every row is an insert. ``index`` maps each row to its index in the
    caller's request (None: the identity, nothing was removed).
    """

    columns: tuple[str, ...] | None
    data: list
    ops: list[int] | None = None
    index: list[int] | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def shape(self) -> tuple[str, ...] | None:
        """Rows of the same shape can share one request."""
        return self.columns

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
        )

    def slice(self, start: int, stop: int) -> Rows:
        return Rows(
            self.columns,
            self.data[start:stop],
            None if self.ops is None else self.ops[start:stop],
            list(range(start, stop)) if self.index is None else self.index[start:stop],
        )

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """Join rows of one shape; caller indices are dropped (positions are what matter after)."""
        if len(parts) == 1:
            p = parts[0]
            return Rows(p.columns, p.data, p.ops)
        data: list = []
        for p in parts:
            data.extend(p.data)
        ops = None
        if any(p.ops is not None for p in parts):
            ops = []
            for p in parts:
                ops.extend(p.ops if p.ops is not None else [0] * len(p.data))
        return Rows(parts[0].columns, data, ops)
