"""Rows the target refused for good, set aside with why: one JSON line per refused record."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from bridge.model.outcome import Outcome
from bridge.model.rows import Rows
from bridge.spool.records import as_objects


class DeadLetter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0

    def write(self, route: str, seq: int, rows: Rows, outcome: Outcome | None,
              reasons: list[str] | None = None) -> None:
        """Rows of record ``seq`` with the batch's status (``outcome``) or each row's own reason."""
        objects = as_objects(rows)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "route": route,
            "spool_seq": seq,
            "status": None if outcome is None else {
                "code": outcome.code, "reason": outcome.reason, "http_status": outcome.http_status,
                "upstream_code": outcome.upstream_code, "message": outcome.message,
            },
            "rows": [{"row": obj, **({"error": reasons[i]} if reasons else {})} for i, obj in enumerate(objects)],
        }
        line = orjson.dumps(entry) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)  # rare, and the record leaves the log right after: it must be here first
        finally:
            os.close(fd)
        self.rows += len(rows)
