"""The native transcoder (``bridge._native``, Rust, built from native/ where cargo is there).

It reads a RowBatch, ColumnBatch or MessageBatch (through a plan per message
type, bridge/transcode/msgplan.py) straight from the request's wire bytes and
writes each row as one compact JSON object, byte for byte what the Python
transcoder and bridge/transcode/formats.py write (timestamps in the route's
``rfc3339_columns`` as RFC 3339), and checks the rows against declared columns
as bridge/transcode/validate.py does; a JsonBatch's rows it checks as
bridge/transcode/jsonrows.py does (unless the route splits them,
``Plan.parse_json``) and passes on. It gives the same row errors
(tests/test_native_diff.py, tests/test_native_routes.py and
tests/test_native_msg.py hold it to them).
Its rows are JSON rows (``Rows(columns=None)``), so it runs on routes whose
dialect builds the same requests from those objects as from a table
(``Plan.rows_as_objects``, ``Dialect.sends_rows_as_objects``); or, on routes
whose bodies are tables of one form (``Plan.form``: Timeplus compact, CSV), it
writes a RowBatch's or ColumnBatch's rows in that form, with their columns
(``Rows.form``: the dialect joins them; rows of other columns never share a
batch, as tables of other columns never do on the Python path). Every other
request (JsonBatch rows to split, a MessageBatch on a route with declared
columns or table bodies, or holding a form native/src/msgcheck.rs leaves to
Python, a batch rejected whole, a column the dialect reserves, a wire form that protobuf merges, a reason only
Python's ``repr`` can word, a JSON row whose reason is msgspec's or orjson's
wording) goes to the Python transcoder, which has the answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson

from bridge.model.config import LimitsConfig
from bridge.model.rows import Joined, RowError, RowForm, Rows
from bridge.transcode import msgplan
from bridge.transcode.plan import Plan
from bridge.transcode.python import PythonTranscoder, row_checks
from bridge.transcode.validate import shown

try:
    from bridge import _native
except ImportError:  # not built (no cargo at install time): the Python transcoder runs
    _native = None
# A build of an older native/ (an in-place build not redone) lacks what this module asks: the Python one runs.
_ABI = 5
if _native is not None and getattr(_native, "ABI", 1) < _ABI:
    _native = None

PURE_ENV = "INGEST_BRIDGE_PURE"
# Deeper nesting stays with the Python transcoder: orjson refuses documents past about 250 levels.
_MAX_DEPTH = 200


def active() -> str:
    """``native`` or ``python``: the transcoder this process uses where a route allows it."""
    return "native" if _native is not None and os.environ.get(PURE_ENV) != "1" else "python"


def takes(plan: Plan) -> bool:
    """Whether the native transcoder gives this route exactly what the Python one would."""
    limits = plan.limits or LimitsConfig()
    # A discover route validates against the target's columns once read: the Python transcoder's work.
    return ((plan.rows_as_objects or plan.form is not None) and not plan.discover
            and limits.max_depth <= _MAX_DEPTH)


def peeker() -> Callable[[bytes], tuple[str, int, str, int] | None] | None:
    """``_native.peek`` where the native transcoder runs: a plain request's route, sequence, kind and row count
    from its wire bytes (any payload shape), or None where upb must parse it."""
    return _native.peek if active() == "native" else None


def _form_arg(form: RowForm | None) -> tuple[str, str, str, list[str] | None] | None:
    if form is None:
        return None
    return form.kind, form.delimiter, form.null, None if form.order is None else list(form.order)


class NativeTranscoder:
    name = "native"

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.python = PythonTranscoder(plan)
        # The Python path's validator: the expected types' wording of the reasons, JSON rows to split.
        self.validator = self.python.validator
        limits = plan.limits or LimitsConfig()
        fixed = plan.rfc3339_columns if plan.timestamps != "rfc3339" else frozenset()
        columns = [(c.name, c.type, c.nullable) for c in plan.columns] if plan.columns else None
        self._t = _native.Transcoder(plan.timestamps, limits.max_value_bytes, limits.max_depth, limits.max_columns,
                                     sorted(fixed), columns, plan.unknown_columns == "drop",
                                     sorted(plan.reserved_columns), _form_arg(plan.form))
        self.messages = self.python.decoder.messages

    def transcode(self, request: Any, size: int | None = None, raw: bytes | None = None
                  ) -> tuple[Rows, list[RowError]]:
        """As ``PythonTranscoder.transcode``; ``raw``, the request's wire bytes, spares serializing it again."""
        kind = request.WhichOneof("payload")
        # JSON rows a route splits at the top level (parse_json) are the Python transcoder's to split; a
        # MessageBatch on a route without a descriptor set is rejected by it.
        if not (kind in ("rows", "columns") or (kind == "json" and not self.plan.parse_json)
                or (kind == "messages" and self.messages is not None)):
            return self.python.transcode(request, size)
        size = request.ByteSize() if size is None else size
        raw = request.SerializeToString() if raw is None else raw
        out = self._t.decode_joined(raw, size)
        if isinstance(out, str):  # the first batch of a message type: its plan, once
            self._t.add_message(out, msgplan.build(self.messages, out) if self.messages is not None else None)
            out = self._t.decode_joined(raw, size)
        if out is None or isinstance(out, str):
            return self.python.transcode(request, size)
        body, ends, ops, index, errors, invalid, columns = out
        errors = [RowError(i, "", r) for i, r in errors]
        if invalid:
            errors += [RowError(i, name, self._reason(name, cell)) for i, name, cell in invalid]
        data = Joined.of(body, ends)  # one buffer, no object per row
        rows = Rows(None, data, ops, index) if columns is None else Rows(tuple(columns), list(data), ops, index,
                                                                         self.plan.form)
        return row_checks(self.plan, rows, errors)

    def _reason(self, name: str, cell: bytes | None) -> str:
        """A refused cell's reason, worded as bridge/transcode/validate.py words it (its value by ``repr``)."""
        if cell is None:
            return f"column {name!r} is not nullable"
        assert self.validator is not None
        return f"column {name!r} expects {self.validator.expected(name)}, got {shown(orjson.loads(cell))}"
