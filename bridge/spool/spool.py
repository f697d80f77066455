"""Spool mode for one route: acknowledge rows once they are fsynced to the log, deliver them from the log.

Receive side: ``accept`` appends a request's accepted rows as one record and
answers the caller when the record is on disk. Delivery side: a pump reads
records in order and hands them to the route's batcher under the route's
byte budget, as internal tickets. A record that the target takes leaves the
log; one it refuses for good (or rows it refuses one by one) go to the
dead-letter file with the status; one that fails for a while (the target is
down) goes back to the log's queue and is tried again after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Protocol

from bridge.model.config import SpoolConfig
from bridge.model.errors import BatchRejected, SpoolError
from bridge.model.rows import Rows
from bridge.model.tickets import Ticket
from bridge.spool import records
from bridge.spool.deadletter import DeadLetter
from bridge.spool.wal import Recovery, Wal
from bridge.transcode.values import b64

log = logging.getLogger("bridge.spool")


class Downstream(Protocol):
    """Where the spool's pump hands records for delivery: the route's batch stage (``RoutePipeline``)."""

    async def reserve(self, nbytes: int) -> None: ...

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None: ...

# Outcomes worth trying again later: the target is away or busy (or answers 500), or the bridge stopped.
_LATER = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})


class Spool:
    def __init__(self, route: str, cfg: SpoolConfig) -> None:
        self.route = route
        self.cfg = cfg
        directory = Path(cfg.dir) / route
        self.wal = Wal(directory, cfg.segment_bytes, cfg.fsync_interval)
        self.dead = DeadLetter(directory / "dead-letter.ndjson")
        self.pause = 1.0  # seconds before records that failed for a while are tried again
        self._pump: asyncio.Task | None = None
        self._resume_at = 0.0
        self._refused = 0  # the size of the last request that did not fit (0: the last one did)

    def open(self) -> Recovery:
        report = self.wal.open()
        for line in report.truncated:
            log.warning("route=%s spool: %s", self.route, line)
        if report.records:
            log.info("route=%s spool: %d record(s) to deliver from %d segment(s)", self.route, report.records,
                     report.segments)
        return report

    @property
    def full(self) -> bool:
        """The last request refused would still not fit, or not a byte is left."""
        return self.wal.disk_bytes + self._refused >= self.cfg.max_bytes

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
        except (SpoolError, OSError) as e:
            log.error("route=%s spool: cannot write: %s", self.route, e)
            raise BatchRejected("UNAVAILABLE", "SPOOL_ERROR", f"route {self.route!r}: cannot spool the rows: {e}",
                                retry_after=1.0) from None
        self._refused = 0
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
            seq, payload = await self.wal.next_record()
            try:
                rows = records.load(payload)
            except ValueError as e:  # a checksummed record that does not load: a bug, never a silent drop
                log.error("route=%s spool: record %d cannot be read (%s); moved to the dead-letter file",
                          self.route, seq, e)
                # Kept whole, as base64: the dead-letter file stays JSON and the bytes stay for whoever looks.
                self.dead.write(self.route, seq, Rows(("spool_record_base64",), [(b64(payload),)]), None,
                                [f"unreadable record: {e}"])
                self.wal.done(seq)
                continue
            nbytes = len(payload) * 2
            await pipeline.reserve(nbytes)
            ticket = Ticket(self.route, seq, len(rows), [], None, durable=True)
            ticket.future.add_done_callback(lambda f, seq=seq, rows=rows: self._settled(seq, rows, f.result()))
            await pipeline.enqueue_rows(ticket, rows, nbytes, len(payload))

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
            self.wal.done(seq)
        except OSError as e:
            # The dead-letter file cannot be written: keep the record in the log rather than lose it.
            log.error("route=%s spool: cannot write the dead-letter file: %s; record %d stays", self.route, e, seq)
            self.wal.requeue(seq)

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
