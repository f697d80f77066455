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

from collections.abc import Iterator, Sequence
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


# One run of JSON rows in a buffer: (buffer, the offset past each row's newline, first row, row after the last).
Run = tuple[bytes, Sequence[int], int, int]


class Joined(Sequence[bytes]):
    """JSON rows kept as runs of buffers in which each row ends in a newline (the native transcoder's rows).

    A row is its bytes without the newline, made when asked for; an NDJSON body of these rows is the runs as
    they stand (``ndjson``), so the hot path makes no Python object per row.
    """

    __slots__ = ("_len", "_runs")

    def __init__(self, runs: list[Run]) -> None:
        self._runs = runs
        self._len = sum(hi - lo for _, _, lo, hi in runs)

    @classmethod
    def of(cls, body: bytes, ends: bytes) -> Joined:
        """``ends``: native-endian u64 offsets, each just past a row's newline."""
        offsets = memoryview(ends).cast("Q")
        return cls([(body, offsets, 0, len(offsets))])

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[bytes]:
        for buf, ends, lo, hi in self._runs:
            if lo == hi:
                continue
            start, stop = ends[lo - 1] if lo else 0, ends[hi - 1]
            rows = (buf if start == 0 and stop == len(buf) else buf[start:stop]).split(b"\n")
            rows.pop()  # after the last newline
            if len(rows) == hi - lo:  # no row holds a newline of its own: split in C, as fast as a list
                yield from rows
                continue
            for k in range(lo, hi):
                end = ends[k]
                yield buf[start:end - 1]
                start = end

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            start, stop, step = i.indices(self._len)
            return self._cut(start, max(start, stop)) if step == 1 else list(self)[i]
        if i < 0:
            i += self._len
        if 0 <= i < self._len:
            for buf, ends, lo, hi in self._runs:
                if i < hi - lo:
                    k = lo + i
                    return buf[ends[k - 1] if k else 0:ends[k] - 1]
                i -= hi - lo
        raise IndexError("row index out of range")

    def _cut(self, a: int, b: int) -> Joined:
        runs, offset = [], 0
        for buf, ends, lo, hi in self._runs:
            s, t = max(a - offset, 0), min(b - offset, hi - lo)
            if s < t:
                runs.append((buf, ends, lo + s, lo + t))
            offset += hi - lo
        return Joined(runs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Joined, list)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Joined({list(self)!r})"

    def ndjson(self) -> bytes:
        """Every row followed by a newline: one copy of the rows at most, none for a whole buffer."""
        parts = []
        for buf, ends, lo, hi in self._runs:
            start, stop = ends[lo - 1] if lo else 0, ends[hi - 1] if hi else 0
            if start == 0 and stop == len(buf):
                parts.append(buf)
            elif start < stop:
                parts.append(memoryview(buf)[start:stop])
        if len(parts) == 1 and type(parts[0]) is bytes:
            return parts[0]
        return b"".join(parts)

    @staticmethod
    def join(parts: list[Joined]) -> Joined:
        return Joined([run for p in parts for run in p._runs])


@dataclass(slots=True)
class Rows:
    """Rows of one shape.

    ``columns`` is None when ``data`` holds JSON objects as bytes (a list, or ``Joined``); otherwise
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
        data: list | Joined
        if all(type(p.data) is Joined for p in parts):
            data = Joined.join([p.data for p in parts])  # the rows stay in their buffers
        else:
            data = []
            for p in parts:
                data.extend(p.data)
        ops = None
        if any(p.ops is not None for p in parts):
            ops = []
            for p in parts:
                ops.extend(p.ops if p.ops is not None else [0] * len(p.data))
        return Rows(parts[0].columns, data, ops, None, parts[0].form)
