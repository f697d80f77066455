"""Decode stage: a protobuf IngestRequest payload to ``Rows`` of JSON-ready values.

Bad rows are named by index and left out; a batch that cannot be read as a
whole (columns of unequal length, an unknown message type) raises
BatchRejected. No per-row json_format: typed values go through a small
dispatch, columns are transposed with zip, user messages through getters
built once per type.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.message import DecodeError

from bridge.model.config import LimitsConfig
from bridge.model.errors import BatchRejected
from bridge.model.rows import RowError, Rows
from bridge.transcode import jsonrows
from bridge.transcode.descriptors import MessageTypes
from bridge.transcode.timefmt import TimeFormatter, format_nanos, formatter
from bridge.transcode.values import b64

_PLAIN = frozenset(("int", "uint", "string", "bool"))


def _invalid(message: str, reason: str = "INVALID_BATCH") -> BatchRejected:
    return BatchRejected("INVALID_ARGUMENT", reason, message)


class LimitExceeded(ValueError):
    """A value over one of ``limits``: its row is rejected with this message."""


def _check_names(names: list[str] | tuple[str, ...], what: str) -> None:
    seen = set()
    for n in names:
        if not n:
            raise _invalid(f"{what}: a column has an empty name")
        if n in seen:
            raise _invalid(f"{what}: column {n!r} appears twice")
        seen.add(n)


def _ops(ops: list[int], n: int, what: str) -> list[int] | None:
    if not ops:
        return None
    if len(ops) != n:
        raise _invalid(f"{what}: {len(ops)} ops for {n} rows")
    return ops if any(ops) else None


class Decoder:
    """Decodes one route's requests; holds its timestamp format and message types.

    ``mode`` is the route's ``timestamps`` option (``ts`` its formatter); columns named in
    ``rfc3339_columns`` are written as RFC 3339 whatever the mode (Timeplus' ``_tp_time``).
    """

    def __init__(self, ts: TimeFormatter, messages: MessageTypes | None = None, mode: str = "rfc3339",
                 limits: LimitsConfig | None = None, rfc3339_columns: frozenset[str] = frozenset()) -> None:
        self.ts = ts
        self.mode = mode
        self.messages = messages
        self.fixed = rfc3339_columns if mode != "rfc3339" else frozenset()
        self._rfc3339 = formatter("rfc3339")
        limits = limits or LimitsConfig()
        self.max_value = limits.max_value_bytes
        self.max_depth = limits.max_depth
        self.max_columns = limits.max_columns
        self._long = True  # whether this request may hold a value over max_value_bytes (see begin)

    def begin(self, size: int) -> None:
        """Before each request: one of ``size`` wire bytes cannot hold a value longer than that."""
        self._long = size > self.max_value

    def _too_long(self, n: int) -> LimitExceeded:
        return LimitExceeded(f"a value of {n} bytes is longer than {self.max_value} (limits.max_value_bytes)")

    def _check_len(self, x: str | bytes) -> None:
        # A str's UTF-8 size is between len and 4 * len: encode only when it could be over.
        if len(x) * 4 <= self.max_value:
            return
        size = len(x) if isinstance(x, bytes) else len(x.encode("utf-8", "replace"))
        if size > self.max_value:
            raise self._too_long(size)

    def _check_columns(self, n: int, what: str) -> None:
        if n > self.max_columns:
            raise BatchRejected("INVALID_ARGUMENT", "TOO_MANY_COLUMNS",
                                f"{what}: {n} columns; the limit is {self.max_columns} (limits.max_columns)",
                                {"limit": str(self.max_columns)})

    # -- typed values ---------------------------------------------------------
    def value(self, v: Any, depth: int = 0, ts: TimeFormatter | None = None) -> Any:
        k = v.WhichOneof("kind")
        if k in _PLAIN:
            x = getattr(v, k)
            if k == "string" and self._long:
                self._check_len(x)
            return x
        if k is None or k == "null":
            return None
        if k == "double":
            d = v.double
            return d if math.isfinite(d) else None
        if k == "bytes":
            if self._long:
                self._check_len(v.bytes)
            return b64(v.bytes)
        if k == "timestamp":
            t = v.timestamp
            return (ts or self.ts)(t.seconds, t.nanos)
        if depth >= self.max_depth:
            raise LimitExceeded(f"lists and maps nest deeper than {self.max_depth} levels (limits.max_depth)")
        if k == "list":
            return [self.value(x, depth + 1) for x in v.list.values]
        # map: keys in sorted order (code points, the same as UTF-8 bytes), so every process writes the same bytes
        fields = v.map.fields
        return {key: self.value(fields[key], depth + 1) for key in sorted(fields)}

    def row_batch(self, batch: Any) -> tuple[Rows, list[RowError]]:
        columns = tuple(batch.columns)
        self._check_columns(len(columns), "rows.columns")
        _check_names(columns, "rows.columns")
        if not columns and batch.rows:
            raise _invalid("rows.columns is empty: name the columns that the rows' values fill")
        n = len(columns)
        data: list[tuple] = []
        index: list[int] = []
        errors: list[RowError] = []
        ops: list[int] = []
        any_op = False
        value = self.value
        # The plain fast path skips length checks: only for requests too small to hold a long value.
        plain = frozenset() if self._long else _PLAIN
        fixed = [c in self.fixed for c in columns] if self.fixed & set(columns) else None
        rfc = self._rfc3339
        for i, row in enumerate(batch.rows):
            values = row.values
            if len(values) != n:
                errors.append(RowError(i, "", f"row has {len(values)} values for {n} columns"))
                continue
            try:
                out = []
                if fixed is None:
                    for v in values:
                        k = v.WhichOneof("kind")
                        out.append(getattr(v, k) if k in plain else value(v))
                else:
                    for v, f in zip(values, fixed, strict=True):
                        out.append(value(v, 0, rfc if f else None))
            except (ValueError, OverflowError, OSError) as e:
                errors.append(RowError(i, "", f"bad value: {e}"))
                continue
            data.append(tuple(out))
            index.append(i)
            op = row.op
            ops.append(op)
            any_op = any_op or op != 0
        return Rows(columns, data, ops if any_op else None, index if errors else None), errors

    # -- columnar -------------------------------------------------------------
    def _column(self, col: Any, bad: dict[int, str]) -> list:
        """A column's values; rows whose value breaks a limit are noted in ``bad`` (and hold None)."""
        kind = col.WhichOneof("data")
        if kind is None:
            return []
        if kind in ("ints", "uints", "bools", "strings"):
            vals = list(getattr(col, kind).values)
            if kind == "strings" and self._long:
                self._long_values(vals, bad)
            return vals
        if kind == "doubles":
            vals = list(col.doubles.values)
            # A plain sum never raises (fsum does on overflow and on inf - inf): a sum that is not finite
            # only sends the column through the per-value check, where NaN and infinities become null.
            if not math.isfinite(sum(vals)):
                vals = [x if math.isfinite(x) else None for x in vals]
            return vals
        if kind == "bytes":
            raw = col.bytes.values
            if self._long:
                self._long_values(raw, bad)
            return [b64(x) for x in raw]
        fixed = col.name in self.fixed
        if kind == "timestamps":
            if fixed:
                return format_nanos(col.timestamps.values, self._rfc3339, "rfc3339", bad, f"column {col.name!r}")
            return format_nanos(col.timestamps.values, self.ts, self.mode, bad, f"column {col.name!r}")
        out = []
        value = self.value
        ts = self._rfc3339 if fixed else None
        for i, v in enumerate(col.values.values):
            try:
                out.append(value(v, 0, ts))
            except (ValueError, OverflowError, OSError) as e:
                bad.setdefault(i, f"column {col.name!r}: bad value: {e}")
                out.append(None)
        return out

    def _long_values(self, vals: Any, bad: dict[int, str]) -> None:
        if max(map(len, vals), default=0) * 4 <= self.max_value:
            return
        for i, x in enumerate(vals):
            try:
                self._check_len(x)
            except LimitExceeded as e:
                bad.setdefault(i, str(e))

    def column_batch(self, batch: Any) -> tuple[Rows, list[RowError]]:
        names = [c.name for c in batch.columns]
        self._check_columns(len(names), "columns")
        _check_names(names, "columns")
        arrays = []
        length = None
        bad: dict[int, str] = {}
        for col in batch.columns:
            try:
                arr = self._column(col, bad)
            except (ValueError, OverflowError, OSError) as e:
                raise _invalid(f"column {col.name!r}: bad value: {e}") from None
            if col.WhichOneof("data") is None:
                arr = None  # all null: its length comes from the others
            elif length is None:
                length = len(arr)
            elif len(arr) != length:
                raise _invalid(f"column {col.name!r} has {len(arr)} values, column {names[0]!r} has {length}")
            arrays.append(arr)
        if length is None:  # every column is all null: the rows are as many as the null rows say
            # (the service refused the request before decoding if that is over max_rows_per_message)
            length = max((max(c.null_rows, default=-1) + 1 for c in batch.columns), default=0)
        for i, (col, arr) in enumerate(zip(batch.columns, arrays, strict=True)):
            if arr is None:
                arrays[i] = arr = [None] * length
            for r in col.null_rows:
                if r >= length:
                    raise _invalid(f"column {col.name!r}: null row {r} is past the last row {length - 1}")
                arr[r] = None
        data = list(zip(*arrays, strict=True)) if arrays else [() for _ in range(length)]
        rows = Rows(tuple(names), data, _ops(list(batch.ops), length, "columns.ops"))
        if not bad:
            return rows, []
        errors = [RowError(i, "", bad[i]) for i in sorted(bad) if i < length]
        return rows.select([i for i in range(length) if i not in bad]), errors

    # -- the caller's own messages ---------------------------------------------
    def message_batch(self, batch: Any) -> tuple[Rows, list[RowError]]:
        if self.messages is None:
            raise _invalid(
                "this route takes no MessageBatch: it has no descriptor_set option", "MESSAGES_NOT_CONFIGURED"
            )
        mt = self.messages.get(batch.type)
        if mt is None:
            raise BatchRejected(
                "INVALID_ARGUMENT",
                "UNKNOWN_MESSAGE_TYPE",
                f"message type {batch.type!r} is not in the route's descriptor set",
                {"message_type": batch.type},
            )
        parse = mt.cls.FromString
        to_row = mt.to_row
        data: list[tuple] = []
        index: list[int] = []
        errors: list[RowError] = []
        long = self._long
        for i, raw in enumerate(batch.messages):
            if long and len(raw) > self.max_value:
                errors.append(RowError(i, "", str(self._too_long(len(raw)))))
                continue
            try:
                data.append(to_row(parse(raw)))
            except DecodeError as e:
                errors.append(RowError(i, "", f"does not decode as {batch.type}: {e}"))
                continue
            except (ValueError, OverflowError, OSError) as e:
                errors.append(RowError(i, "", f"bad value: {e}"))
                continue
            index.append(i)
        ops = _ops(list(batch.ops), len(batch.messages), "messages.ops")
        if errors and ops is not None:
            ops = [ops[i] for i in index]
        return Rows(mt.columns, data, ops, index if errors else None), errors

    # -- JSON rows -------------------------------------------------------------
    def json_batch(self, batch: Any, parse: bool = False) -> tuple[Rows, list[RowError], list[dict] | None]:
        """Rows of JSON object bytes as written (the checks: bridge/jsonrows.py), and with ``parse`` (routes
        with declared columns) each row split at its top level: {key: raw JSON text of its value}."""
        data, index, errors = jsonrows.check(list(batch.objects), self.max_value, self.max_depth)
        objs = [jsonrows.split(raw) for raw in data] if parse else None
        ops = _ops(list(batch.ops), len(batch.objects), "json.ops")
        if index is not None and ops is not None:
            ops = [ops[i] for i in index]
        return Rows(None, data, ops, index), errors, objs
