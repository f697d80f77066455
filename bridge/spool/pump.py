"""One target's delivery from the spool: read its cursor's records in order, hand them to its downstream.

A record the target takes is done for this cursor; one it refuses for good
(or rows it refuses one by one) go to this target's dead-letter file with the
status; one that fails for a while (the target is down) goes back to this
cursor's queue and this pump pauses, while other targets' pumps go on. A
neutral record (``records.Neutral``) becomes this target's rows through
``Downstream.rows_of``; rows that target now rejects go to its dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from bridge.model.errors import BatchRejected
from bridge.model.rows import RowError, Rows
from bridge.model.tickets import Ticket
from bridge.spool import records
from bridge.spool.cursor import Cursor
from bridge.spool.deadletter import DeadLetter
from bridge.spool.segment import CorruptRecord
from bridge.transcode.values import b64

log = logging.getLogger("bridge.spool")

# Outcomes worth trying again later: the target is away or busy (or answers 500), or the bridge stopped.
LATER = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})


class Downstream(Protocol):
    """Where a pump hands records for delivery: a target's batch stage (``RoutePipeline``, or a fan-out lane).

    ``reserve`` waits for room in the target's byte budget; ``enqueue_rows`` queues rows on an internal
    ticket (durable: nobody waits for it) that settles when they are delivered or refused. ``rows_of`` turns
    a neutral record — the caller's ``IngestRequest`` wire bytes — into this target's rows (its own
    transcoder), leaving out the caller indices in ``skip`` (``records.leave_out`` does that), and returns
    the rows this target rejects, by caller index: they go to this target's dead letters. It may raise
    ``BatchRejected``: UNAVAILABLE, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED is tried again after a pause,
    anything else sets the record aside in the dead letters.
    """

    async def reserve(self, nbytes: int) -> None: ...

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None: ...

    def rows_of(self, request: bytes, skip: list[int]) -> tuple[Rows, list[RowError]]: ...


class Owner(Protocol):
    """What a pump needs of its spool: the route, the pause, and where failures are counted and logged."""

    route: str
    pause: float

    def count(self, op: str, error: str) -> None: ...

    def io_error(self, op: str, e: OSError, then: str = "") -> None: ...


class Pump:
    def __init__(self, spool: Owner, cursor: Cursor, downstream: Downstream, dead: DeadLetter) -> None:
        self.spool = spool
        self.route = spool.route
        self.cursor = cursor
        self.downstream = downstream
        self.dead = dead
        self.who = f"route={self.route}" + (f" target={cursor.name}" if cursor.name else "")
        self.resume_at = 0.0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        name = f"spool-{self.route}" + (f"-{self.cursor.name}" if self.cursor.name else "")
        self.task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        spool, cursor = self.spool, self.cursor
        while True:
            wait = self.resume_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                seq, payload = await cursor.next_record()
            except CorruptRecord as e:
                # Damaged on disk since it was written: never delivered, and its place is kept in the dead letters.
                spool.count("read", "corrupt")
                log.error("%s spool: %s; not delivered, listed in the dead-letter file", self.who, e)
                self._set_aside(e.seq, lambda e=e: self.dead.write_lost(self.route, e.seq, e.segment, e.offset,
                                                                         e.problem))
                continue
            except OSError as e:  # the segment cannot be read now: the record stays queued
                spool.io_error("read", e)
                self.resume_at = loop.time() + spool.pause
                continue
            try:
                record = records.load(payload)
                rejected: list[RowError] = []
                if isinstance(record, records.Neutral):
                    made, rejected = self.downstream.rows_of(record.request, record.skip)
                    # By position from here on, as T and J records.
                    rows = Rows(made.columns, made.data, made.ops, None, made.form)
                else:
                    rows = record
            except BatchRejected as e:
                if e.code in LATER:
                    self._later(seq, f"{e.code} {e.reason}")
                    continue
                self._unreadable(seq, payload, f"{e.reason}: {e}")
                continue
            except Exception as e:  # a checksummed record that does not load: a bug, never a silent drop
                self._unreadable(seq, payload, str(e) or type(e).__name__)
                continue
            if not rows:
                self._set_aside(seq, lambda s=seq, r=rejected, rec=record: self._write_rejected(s, r, rec))
                continue
            nbytes = len(payload) * (4 if rejected or isinstance(record, records.Neutral) else 2)
            await self.downstream.reserve(nbytes)
            ticket = Ticket(self.route, seq, len(rows), [], None, durable=True)
            ticket.future.add_done_callback(
                lambda f, seq=seq, rows=rows, rejected=rejected, record=record:
                self._settled(seq, rows, rejected, record, f.result()))
            await self.downstream.enqueue_rows(ticket, rows, nbytes, len(payload))

    def _unreadable(self, seq: int, payload: bytes, why: str) -> None:
        log.error("%s spool: record %d cannot be read (%s); moved to the dead-letter file", self.who, seq, why)
        # Kept whole, as base64: the dead-letter file stays JSON and the bytes stay for whoever looks.
        self._set_aside(seq, lambda: self.dead.write(
            self.route, seq, Rows(("spool_record_base64",), [(b64(payload),)]), None, [f"unreadable record: {why}"]))

    def _write_rejected(self, seq: int, rejected: list[RowError], record: Rows | records.Neutral) -> None:
        if rejected and isinstance(record, records.Neutral):
            self.dead.write_rejected(self.route, seq, rejected, record.request)
            log.warning("%s spool: record %d: %d row(s) rejected by this target, to its dead-letter file",
                        self.who, seq, len(rejected))

    def _set_aside(self, seq: int, write: Callable[[], None]) -> None:
        """Write record ``seq``'s dead-letter line, then let it leave this cursor; if the line cannot be written
        the record stays and is tried again after a pause."""
        try:
            write()
        except OSError as e:
            self._dead_letter_failed(seq, e)
            return
        self.cursor.done(seq)

    def _later(self, seq: int, why: str) -> None:
        log.info("%s spool: record %d not delivered (%s); trying again in %gs", self.who, seq, why, self.spool.pause)
        self.resume_at = asyncio.get_running_loop().time() + self.spool.pause
        self.cursor.requeue(seq)

    def _settled(self, seq: int, rows: Rows, rejected: list[RowError], record: Rows | records.Neutral,
                 t: Ticket) -> None:
        try:
            if t.failure is not None and (t.failure.code in LATER or t.failure.http_status == 500):
                # The rows stay in the log: tried again after a pause, with what the target did take or refuse.
                self._later(seq, f"{t.failure.code} {t.failure.reason}")
                return
            if t.failure is not None:
                failed = sorted(set(t.failed_rows))
                self.dead.write(self.route, seq, rows.select(failed) if failed else rows, t.failure)
                log.warning("%s spool: record %d refused for good (%s %s): %d row(s) to the dead-letter file",
                            self.who, seq, t.failure.code, t.failure.reason, len(failed) or len(rows))
            if t.errors:
                bad = sorted({e.index for e in t.errors})
                reason = {e.index: e.reason for e in t.errors}
                self.dead.write(self.route, seq, rows.select(bad), None, [reason[i] for i in bad])
            self._write_rejected(seq, rejected, record)
        except OSError as e:
            self._dead_letter_failed(seq, e)
            return
        self.cursor.done(seq)

    def _dead_letter_failed(self, seq: int, e: OSError) -> None:
        # Keep the record in the log rather than lose it; the pause keeps a full disk from a tight loop.
        self.spool.io_error("dead_letter", e, f"record {seq} stays in the log")
        self.resume_at = asyncio.get_running_loop().time() + self.spool.pause
        self.cursor.requeue(seq)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            # BatchRejected: the route began closing while the pump waited for room; the record stays in the log.
            with contextlib.suppress(asyncio.CancelledError, BatchRejected):
                await self.task
            self.task = None
