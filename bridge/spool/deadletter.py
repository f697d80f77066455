"""Rows the target refused for good, set aside with why: one JSON line per refused record.

A line is written whole or not at all: a write or fsync that fails (a full
disk) is cut back off the file and raised, so the record stays in the log;
a half line left by a kill mid-write is cut before the next line is added.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import orjson

from bridge.model.outcome import Outcome
from bridge.model.rows import RowError, Rows
from bridge.spool.fileio import FileIO, write_all
from bridge.spool.records import as_objects
from bridge.transcode.values import b64

_SCAN = 64 << 10


class DeadLetter:
    def __init__(self, path: Path, io: FileIO | None = None, target: str | None = None) -> None:
        self.path = path
        self.io = io or FileIO()
        self.target = target  # a route with several targets has a file per target; each line names it
        self.rows = 0
        self.records_lost = 0  # records found damaged in the log: never delivered, listed here

    def write(self, route: str, seq: int, rows: Rows, outcome: Outcome | None,
              reasons: list[str] | None = None) -> None:
        """Rows of record ``seq`` with the batch's status (``outcome``) or each row's own reason."""
        objects = as_objects(rows)
        self._append({
            "time": _now(),
            "route": route,
            "spool_seq": seq,
            "status": None if outcome is None else {
                "code": outcome.code, "reason": outcome.reason, "http_status": outcome.http_status,
                "upstream_code": outcome.upstream_code, "message": outcome.message,
            },
            "rows": [{"row": obj, **({"error": reasons[i]} if reasons else {})} for i, obj in enumerate(objects)],
        })
        self.rows += len(rows)

    def write_rejected(self, route: str, seq: int, errors: list[RowError], request: bytes) -> None:
        """Rows of a neutral record that this target's transcoder refuses: by the caller's row index, with the
        caller's request whole (base64), since the rows were never made into this target's form."""
        self._append({
            "time": _now(), "route": route, "spool_seq": seq,
            "status": {"code": "INVALID_ARGUMENT", "reason": "ROWS_REJECTED_BY_TARGET", "http_status": None,
                       "upstream_code": None,
                       "message": f"{len(errors)} row(s) of the request do not fit this target"},
            "rows": [], "rejected": [{"index": e.index, "column": e.column, "error": e.reason} for e in errors],
            "request_base64": b64(request),
        })
        self.rows += len(errors)

    def write_lost(self, route: str, seq: int, segment: str, offset: int, problem: str) -> None:
        """Record ``seq`` was damaged on disk: its rows cannot be read, so the line says where and what."""
        self._append({
            "time": _now(), "route": route, "spool_seq": seq,
            "status": {"code": "DATA_LOSS", "reason": "SPOOL_CORRUPT_RECORD", "http_status": None,
                       "upstream_code": None,
                       "message": f"spool record {seq} in {segment} at offset {offset}: {problem}; not delivered"},
            "segment": segment, "offset": offset, "rows": [],
        })
        self.records_lost += 1

    def _append(self, entry: dict[str, Any]) -> None:
        if self.target is not None:
            entry = {**entry, "target": self.target}
        line = orjson.dumps(entry) + b"\n"
        io = self.io
        fd = io.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = _whole_lines(io, fd)
            try:
                write_all(io, fd, line)
                io.fsync(fd)  # rare, and the record leaves the log right after: it must be here first
            except OSError:
                with contextlib.suppress(OSError):  # if this fails too, the next write cuts the half line
                    io.ftruncate(fd, size)
                raise
        finally:
            io.close(fd)


def _whole_lines(io: FileIO, fd: int) -> int:
    """The file's length up to its last newline; a half line after it (a kill mid-write) is cut off."""
    size = io.fstat_size(fd)
    if size == 0 or io.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - _SCAN)
        chunk = io.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            end = start + nl + 1
            break
        end = start
    if end != size:
        io.ftruncate(fd, end)
    return end


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
