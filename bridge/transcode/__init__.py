"""Transcode: a request's payload and a route's ``Plan`` → the rows to send and the rows rejected.

This is the one seam between the receive side and the batch stage. The route builds a Plan once
(``Plan`` in ``plan.py``) and calls ``transcoder(plan).transcode(request, size)`` for every request; nothing
downstream knows which transcoder ran. ``PythonTranscoder`` is the reference implementation.
"""

from __future__ import annotations

from typing import Any, Protocol

from bridge.model.rows import RowError, Rows
from bridge.transcode.native import PURE_ENV, NativeTranscoder, active, takes
from bridge.transcode.plan import Plan, RowCheck
from bridge.transcode.python import PythonTranscoder

__all__ = ["PURE_ENV", "NativeTranscoder", "Plan", "PythonTranscoder", "RowCheck", "Transcoder", "active",
           "transcoder"]


class Transcoder(Protocol):
    name: str

    def transcode(self, request: Any, size: int | None = None, raw: bytes | None = None
                  ) -> tuple[Rows, list[RowError]]: ...


def transcoder(plan: Plan) -> Transcoder:
    """The transcoder for a route's plan: the native one where it is built, allowed and covers the route."""
    if active() == "native" and takes(plan):
        return NativeTranscoder(plan)
    return PythonTranscoder(plan)
