"""The native transcoder (``bridge._native``, Rust, built from native/ where cargo is there).

It reads a RowBatch or ColumnBatch straight from the request's wire bytes and
writes each row as one compact JSON object, byte for byte what the Python
transcoder and bridge/transcode/formats.py write; a JsonBatch's rows it checks
as bridge/transcode/jsonrows.py does (unless the route splits them,
``Plan.parse_json``) and passes on. It gives the same row errors
(tests/test_native_diff.py holds them to it). Its rows are JSON rows
(``Rows(columns=None)``), so it runs only on routes whose bodies are those
objects as they are (``Plan.rows_as_objects``: http NDJSON or JSON array) with
no declared columns. Every other request (MessageBatch, JsonBatch rows to split, a batch
rejected whole, a wire form that protobuf merges, a JSON row whose reason is
msgspec's or orjson's wording) goes to the Python
transcoder, which has the answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bridge.model.config import LimitsConfig
from bridge.model.rows import RowError, Rows
from bridge.transcode.plan import Plan
from bridge.transcode.python import PythonTranscoder, row_checks

try:
    from bridge import _native
except ImportError:  # not built (no cargo at install time): the Python transcoder runs
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
    fixed = plan.rfc3339_columns if plan.timestamps != "rfc3339" else frozenset()
    # A discover route validates against the target's columns once read: the Python transcoder's work.
    return (plan.rows_as_objects and not plan.columns and not plan.discover and not fixed
            and limits.max_depth <= _MAX_DEPTH)


def peeker() -> Callable[[bytes], tuple[str, int, str, int] | None] | None:
    """``_native.peek`` where the native transcoder runs: a RowBatch, ColumnBatch or JsonBatch request's route,
    sequence, kind and row count from its wire bytes, or None where upb must parse it."""
    return _native.peek if active() == "native" else None


class NativeTranscoder:
    name = "native"
    validator = None  # a route that declares columns never takes this transcoder (see ``takes``)

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.python = PythonTranscoder(plan)
        limits = plan.limits or LimitsConfig()
        self._t = _native.Transcoder(plan.timestamps, limits.max_value_bytes, limits.max_depth, limits.max_columns)

    def transcode(self, request: Any, size: int | None = None, raw: bytes | None = None
                  ) -> tuple[Rows, list[RowError]]:
        """As ``PythonTranscoder.transcode``; ``raw``, the request's wire bytes, spares serializing it again."""
        kind = request.WhichOneof("payload")
        # JSON rows a route splits at the top level (parse_json) are the Python transcoder's to split.
        if kind not in ("rows", "columns") and (kind != "json" or self.plan.parse_json):
            return self.python.transcode(request, size)
        size = request.ByteSize() if size is None else size
        out = self._t.decode(request.SerializeToString() if raw is None else raw, size)
        if out is None:
            return self.python.transcode(request, size)
        data, ops, index, errors = out
        return row_checks(self.plan, Rows(None, data, ops, index), [RowError(i, "", r) for i, r in errors])
