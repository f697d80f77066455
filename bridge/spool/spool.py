"""Spool mode for one route: acknowledge rows once they are fsynced to the log, deliver them from the log.

Receive side: ``accept`` appends a request's accepted rows as one record and
answers the caller when the record is on disk. Delivery side: a pump reads
records in order and hands them to the route's batcher under the route's
byte budget, as internal tickets. A record that the target takes leaves the
log; one it refuses for good (or rows it refuses one by one) go to the
dead-letter file with the status; one that fails for a while (the target is
down) goes back to the log's queue and is tried again after a pause.

A write that fails (a full disk) refuses the request with UNAVAILABLE and
RetryInfo and nothing of it stays in the log; the route reports NOT_SERVING
until the disk has room again. A record damaged on disk is never delivered: it
is logged, counted and listed in the dead-letter file. Every such failure
counts in ``ingest_bridge_spool_errors_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bridge.model.config import SpoolConfig
from bridge.model.errors import BatchRejected, SpoolError
from bridge.model.rows import Rows
from bridge.model.tickets import Ticket
from bridge.spool import records
from bridge.spool.deadletter import DeadLetter
from bridge.spool.fileio import FileIO
from bridge.spool.wal import MIN_FREE, CorruptRecord, Recovery, SpoolWriteError, Wal
from bridge.transcode.values import b64

if TYPE_CHECKING:
    from bridge.ops.metrics import Metrics

log = logging.getLogger("bridge.spool")


class Downstream(Protocol):
    """Where the spool's pump hands records for delivery: the route's batch stage (``RoutePipeline``)."""

    async def reserve(self, nbytes: int) -> None: ...

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None: ...


# Outcomes worth trying again later: the target is away or busy (or answers 500), or the bridge stopped.
_LATER = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})
HOLD = 1.0  # seconds a route reports NOT_SERVING after a failed write, at least
LOG_EVERY = 5.0  # seconds between log lines about the same failing operation


class Spool:
    def __init__(self, route: str, cfg: SpoolConfig, metrics: Metrics | None = None, io: FileIO | None = None) -> None:
        self.route = route
        self.cfg = cfg
        self.metrics = metrics
        directory = Path(cfg.dir) / route
        self.wal = Wal(directory, cfg.segment_bytes, cfg.fsync_interval, io)
        self.wal.on_error = self._io_error
        self.dead = DeadLetter(directory / "dead-letter.ndjson", io)
        self.errors: dict[tuple[str, str], int] = {}  # (op, error) -> count, as in the metric
        self.problem: str | None = None  # why the last append failed, until the spool takes rows again
        self._problem_full = False
        self._problem_until = 0.0
        self._need = 0  # bytes the last refused append needed on disk
        self._logged: dict[str, float] = {}
        self.pause = 1.0  # seconds before records that failed for a while are tried again
        self._pump: asyncio.Task | None = None
        self._resume_at = 0.0
        self._refused = 0  # the size of the last request that did not fit (0: the last one did)

    def open(self) -> Recovery:
        try:
            report = self.wal.open()
        except SpoolError as e:
            raise SpoolError(f"route {self.route!r}: {e}") from None
        if report.disk_full:
            log.error("route=%s spool: %s; delivering the %d record(s) spooled first", self.route, report.disk_full,
                      report.records)
            self._refuse(f"SPOOL_FULL: {report.disk_full}", True, 0)
        for line in report.truncated:
            log.warning("route=%s spool: %s", self.route, line)
        if report.records:
            log.info("route=%s spool: %d record(s) to deliver from %d segment(s)", self.route, report.records,
                     report.segments)
        return report

    @property
    def full(self) -> bool:
        """The last request refused would still not fit, or the disk under the spool refuses writes."""
        if self.wal.disk_bytes + self._refused >= self.cfg.max_bytes:
            return True
        if self.problem is None:
            return False
        if time.monotonic() < self._problem_until:
            return True
        if self._problem_full and self._free_bytes() < self._need:
            return True
        self.problem = None  # room again (or time to try again): the next request finds out
        return False

    def _refuse(self, problem: str, full: bool, need: int) -> None:
        """Report the route NOT_SERVING for a while, and on a full disk until ``need`` bytes are free."""
        self.problem = problem
        self._problem_full = full
        self._problem_until = time.monotonic() + HOLD
        self._need = need + MIN_FREE

    def _free_bytes(self) -> int:
        try:
            st = os.statvfs(self.wal.dir)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize

    @property
    def disk_bytes(self) -> int:
        return self.wal.disk_bytes

    # -- receive side ---------------------------------------------------------------------
    async def accept(self, ticket: Ticket, rows: Rows) -> None:
        """Spool ``rows`` and settle the caller's ticket: accepted once fsynced."""
        payload = records.dump(rows)
        if self.wal.disk_bytes + len(payload) > self.cfg.max_bytes:
            self._refused = len(payload)
            raise BatchRejected(
                "UNAVAILABLE", "SPOOL_FULL",
                f"route {self.route!r}: the spool holds {self.wal.disk_bytes} bytes of its {self.cfg.max_bytes} "
                "while the target catches up; retry shortly", {"spool_bytes": str(self.wal.disk_bytes)},
                retry_after=1.0,
            )
        try:
            seq = await self.wal.append(payload)
        except SpoolWriteError as e:
            reason = "SPOOL_FULL" if e.full else "SPOOL_ERROR"
            if e.op != "fsync":  # fsync failures are counted once each, by the log
                self._io_error(e.op, e)
            self._refuse(f"{reason}: {e}", e.full, len(payload))
            raise BatchRejected("UNAVAILABLE", reason,
                                f"route {self.route!r}: the spool cannot keep the rows ({e}); none of them was "
                                "accepted; retry shortly", {"spool_bytes": str(self.wal.disk_bytes)},
                                retry_after=1.0) from None
        except (SpoolError, OSError) as e:
            log.error("route=%s spool: cannot write: %s", self.route, e)
            raise BatchRejected("UNAVAILABLE", "SPOOL_ERROR", f"route {self.route!r}: cannot spool the rows: {e}",
                                retry_after=1.0) from None
        self._refused = 0
        self.problem = None
        ticket.accepted += len(rows)
        ticket.upstream["spool_seq"] = str(seq)
        ticket.finish()

    # -- delivery side ---------------------------------------------------------------------
    def start(self, pipeline: Downstream) -> None:
        self._pump = asyncio.create_task(self._run(pipeline), name=f"spool-{self.route}")

    async def _run(self, pipeline: Downstream) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._resume_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                seq, payload = await self.wal.next_record()
            except CorruptRecord as e:
                # Damaged on disk since it was written: never delivered, and its place is kept in the dead letters.
                self._count("read", "corrupt")
                log.error("route=%s spool: %s; not delivered, listed in the dead-letter file", self.route, e)
                self._set_aside(e.seq, lambda e=e: self.dead.write_lost(self.route, e.seq, e.segment, e.offset,
                                                                         e.problem))
                continue
            except OSError as e:  # the segment cannot be read now: the record stays queued
                self._io_error("read", e)
                self._resume_at = loop.time() + self.pause
                continue
            try:
                rows = records.load(payload)
            except ValueError as e:  # a checksummed record that does not load: a bug, never a silent drop
                log.error("route=%s spool: record %d cannot be read (%s); moved to the dead-letter file",
                          self.route, seq, e)
                # Kept whole, as base64: the dead-letter file stays JSON and the bytes stay for whoever looks.
                self._set_aside(seq, lambda seq=seq, e=e, payload=payload: self.dead.write(
                    self.route, seq, Rows(("spool_record_base64",), [(b64(payload),)]), None,
                    [f"unreadable record: {e}"]))
                continue
            nbytes = len(payload) * 2
            await pipeline.reserve(nbytes)
            ticket = Ticket(self.route, seq, len(rows), [], None, durable=True)
            ticket.future.add_done_callback(lambda f, seq=seq, rows=rows: self._settled(seq, rows, f.result()))
            await pipeline.enqueue_rows(ticket, rows, nbytes, len(payload))

    def _set_aside(self, seq: int, write: Callable[[], None]) -> None:
        """Write record ``seq``'s dead-letter line, then let it leave the log; if the line cannot be written
        the record stays in the log and is tried again after a pause."""
        try:
            write()
        except OSError as e:
            self._dead_letter_failed(seq, e)
            return
        self.wal.done(seq)

    def _settled(self, seq: int, rows: Rows, t: Ticket) -> None:
        try:
            if t.failure is not None and (t.failure.code in _LATER or t.failure.http_status == 500):
                # The rows stay in the log: tried again after a pause, with what the target did take or refuse.
                log.info("route=%s spool: record %d not delivered (%s %s); trying again in %gs", self.route, seq,
                         t.failure.code, t.failure.reason, self.pause)
                self._resume_at = asyncio.get_running_loop().time() + self.pause
                self.wal.requeue(seq)
                return
            if t.failure is not None:
                failed = sorted(set(t.failed_rows))
                self.dead.write(self.route, seq, rows.select(failed) if failed else rows, t.failure)
                log.warning("route=%s spool: record %d refused for good (%s %s): %d row(s) to the dead-letter file",
                            self.route, seq, t.failure.code, t.failure.reason, len(failed) or len(rows))
            if t.errors:
                bad = sorted({e.index for e in t.errors})
                reason = {e.index: e.reason for e in t.errors}
                self.dead.write(self.route, seq, rows.select(bad), None, [reason[i] for i in bad])
        except OSError as e:
            self._dead_letter_failed(seq, e)
            return
        self.wal.done(seq)

    def _dead_letter_failed(self, seq: int, e: OSError) -> None:
        # Keep the record in the log rather than lose it; the pause keeps a full disk from a tight loop.
        self._io_error("dead_letter", e, f"record {seq} stays in the log")
        self._resume_at = asyncio.get_running_loop().time() + self.pause
        self.wal.requeue(seq)

    # -- failures --------------------------------------------------------------------------
    def _count(self, op: str, error: str) -> None:
        self.errors[(op, error)] = self.errors.get((op, error), 0) + 1
        if self.metrics is not None:
            self.metrics.spool_errors.labels(self.route, op, error).inc()

    def _io_error(self, op: str, e: OSError | SpoolWriteError, then: str = "") -> None:
        """Count a failed operation; log it, at most once per LOG_EVERY per operation (a full disk fails often)."""
        err = getattr(e, "errno", None)
        name = errno.errorcode.get(err, "EIO") if isinstance(err, int) else "EIO"
        self._count(op, name)
        now = time.monotonic()
        if now - self._logged.get(op, -LOG_EVERY) >= LOG_EVERY:
            self._logged[op] = now
            log.error("route=%s spool: %s failed: %s%s (counted in ingest_bridge_spool_errors_total)", self.route,
                      op, getattr(e, "strerror", None) or e, f"; {then}" if then else "")

    async def stop_pump(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            # BatchRejected: the route began closing while the pump waited for room; the record stays in the log.
            with contextlib.suppress(asyncio.CancelledError, BatchRejected):
                await self._pump
            self._pump = None

    async def close(self) -> None:
        await self.stop_pump()
        await self.wal.close()
