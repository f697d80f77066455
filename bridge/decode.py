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

import msgspec
import orjson
from google.protobuf.message import DecodeError

from bridge.descriptors import MessageTypes
from bridge.dialects.base import b64
from bridge.errors import BatchRejected
from bridge.rows import RowError, Rows
from bridge.timefmt import TimeFormatter, format_nanos

_PLAIN = frozenset(("int", "uint", "string", "bool"))
# Checks JSON syntax without building objects: four times cheaper than parsing.
_JSON_SYNTAX = msgspec.json.Decoder(msgspec.Raw)


def _invalid(message: str, reason: str = "INVALID_BATCH") -> BatchRejected:
    return BatchRejected("INVALID_ARGUMENT", reason, message)


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
    """Decodes one route's requests; holds its timestamp format and message types."""

    def __init__(self, ts: TimeFormatter, messages: MessageTypes | None = None, rfc3339: bool = True) -> None:
        self.ts = ts
        self.rfc3339 = rfc3339
        self.messages = messages

    # -- typed values ---------------------------------------------------------
    def value(self, v: Any) -> Any:
        k = v.WhichOneof("kind")
        if k in _PLAIN:
            return getattr(v, k)
        if k is None or k == "null":
            return None
        if k == "double":
            d = v.double
            return d if math.isfinite(d) else None
        if k == "bytes":
            return b64(v.bytes)
        if k == "timestamp":
            t = v.timestamp
            return self.ts(t.seconds, t.nanos)
        if k == "list":
            return [self.value(x) for x in v.list.values]
        # map
        return {key: self.value(x) for key, x in v.map.fields.items()}

    def row_batch(self, batch: Any) -> tuple[Rows, list[RowError]]:
        columns = tuple(batch.columns)
        _check_names(columns, "rows.columns")
        n = len(columns)
        data: list[tuple] = []
        index: list[int] = []
        errors: list[RowError] = []
        ops: list[int] = []
        any_op = False
        value = self.value
        plain = _PLAIN
        for i, row in enumerate(batch.rows):
            values = row.values
            if len(values) != n:
                errors.append(RowError(i, "", f"row has {len(values)} values for {n} columns"))
                continue
            try:
                out = []
                for v in values:
                    k = v.WhichOneof("kind")
                    out.append(getattr(v, k) if k in plain else value(v))
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
    def _column(self, col: Any) -> list:
        kind = col.WhichOneof("data")
        if kind is None:
            return []
        if kind in ("ints", "uints", "bools", "strings"):
            return list(getattr(col, kind).values)
        if kind == "doubles":
            vals = list(col.doubles.values)
            if not math.isfinite(math.fsum(vals)):
                vals = [x if math.isfinite(x) else None for x in vals]
            return vals
        if kind == "bytes":
            return [b64(x) for x in col.bytes.values]
        if kind == "timestamps":
            return format_nanos(col.timestamps.values, self.ts, self.rfc3339)
        return [self.value(v) for v in col.values.values]

    def column_batch(self, batch: Any) -> tuple[Rows, list[RowError]]:
        names = [c.name for c in batch.columns]
        _check_names(names, "columns")
        arrays = []
        length = None
        for col in batch.columns:
            try:
                arr = self._column(col)
            except (ValueError, OverflowError, OSError) as e:
                raise _invalid(f"column {col.name!r}: bad value: {e}") from None
            if col.WhichOneof("data") is None:
                arr = None  # all null: its length comes from the others
            elif length is None:
                length = len(arr)
            elif len(arr) != length:
                raise _invalid(f"column {col.name!r} has {len(arr)} values, column {names[0]!r} has {length}")
            arrays.append(arr)
        length = length or max((max(c.null_rows, default=-1) + 1 for c in batch.columns), default=0)
        for i, (col, arr) in enumerate(zip(batch.columns, arrays, strict=True)):
            if arr is None:
                arrays[i] = arr = [None] * length
            for r in col.null_rows:
                if r >= length:
                    raise _invalid(f"column {col.name!r}: null row {r} is past the last row {length - 1}")
                arr[r] = None
        data = list(zip(*arrays, strict=True)) if arrays else [() for _ in range(length)]
        return Rows(tuple(names), data, _ops(list(batch.ops), length, "columns.ops")), []

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
        for i, raw in enumerate(batch.messages):
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

    # -- JSON passthrough ------------------------------------------------------
    def json_batch(self, batch: Any, parse: bool = False) -> tuple[Rows, list[RowError], list[dict] | None]:
        """Rows of JSON object bytes, and the parsed objects when ``parse`` (for validation)."""
        check = _JSON_SYNTAX.decode
        data: list[bytes] = []
        objs: list[dict] | None = [] if parse else None
        index: list[int] = []
        errors: list[RowError] = []
        for i, raw in enumerate(batch.objects):
            problem = None
            try:
                check(raw)
            except msgspec.DecodeError as e:
                problem = f"not valid JSON: {e}"
            else:
                if not raw.isascii():
                    try:
                        raw.decode()
                    except UnicodeDecodeError as e:
                        problem = f"not valid JSON: not UTF-8 at byte {e.start}"
                if problem is None and raw[:1] != b"{" and raw.lstrip()[:1] != b"{":
                    kind = type(orjson.loads(raw)).__name__
                    problem = f"not a JSON object (a JSON {kind})"
            if problem is not None:
                errors.append(RowError(i, "", problem))
                continue
            if objs is not None:
                objs.append(orjson.loads(raw))
            data.append(raw)
            index.append(i)
        whole = b"".join(data)
        if b"\n" in whole or b"\r" in whole:
            # One object per line for NDJSON targets (one scan of the batch, not one per row).
            data = [orjson.dumps(orjson.loads(raw)) if b"\n" in raw or b"\r" in raw else raw for raw in data]
        ops = _ops(list(batch.ops), len(batch.objects), "json.ops")
        if errors and ops is not None:
            ops = [ops[i] for i in index]
        return Rows(None, data, ops, index if errors else None), errors, objs
