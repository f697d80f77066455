"""One route's pipeline: decode → validate → batch → send, and tickets back to the caller.

A caller's request becomes a Ticket. Its rows are split into parts (at most
max_rows and about max_bytes each) and queued in the batcher;
``delivery.concurrency`` workers send batches (one at a time on an ordered
route, whose rows carry ops); each takes a slot of the route's ``Limiter``
before it takes a batch, so with ``concurrency: adaptive`` the number in
flight follows the target's answers. Each row's outcome flows back to its ticket; a
ticket is done when all its parts are. A ticket nobody waits for any more
(its call ended) has its rows withdrawn: queued parts leave the queue, and
parts in a batch being retried leave it before the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bridge.dialects import DIALECTS
from bridge.model.config import LimitsConfig, RouteConfig
from bridge.model.errors import BatchRejected
from bridge.model.outcome import Outcome
from bridge.model.rows import Op, RowError, Rows
from bridge.model.tickets import SHUTTING_DOWN, Part, Ticket
from bridge.ops.metrics import Metrics
from bridge.proto import pb
from bridge.route.batcher import Batcher
from bridge.route.budget import ByteBudget
from bridge.route.discover import Discovery
from bridge.route.settle import held_back, settle
from bridge.send.concurrency import Limiter
from bridge.send.load import Load
from bridge.send.retry import RetryPolicy
from bridge.send.sender import Result, Sender, trace_field
from bridge.send.transport import Transport
from bridge.spool.records import leave_out
from bridge.spool.spool import Spool
from bridge.transcode import Plan, transcoder

log = logging.getLogger("bridge.route.pipeline")

__all__ = ["RoutePipeline", "Ticket"]


@dataclass
class RouteStats:
    """Counters the demo prints (Prometheus metrics build on the same numbers)."""

    requests: int = 0
    rows_in: int = 0
    rows_rejected: int = 0
    rows_delivered: int = 0
    batches_sent: int = 0
    batches_failed: int = 0


class RoutePipeline:
    def __init__(self, cfg: RouteConfig, transport: Transport, global_budget: ByteBudget | None = None,
                 metrics: Metrics | None = None, limits: LimitsConfig | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.name = cfg.name
        self.dialect = DIALECTS[cfg.dialect](cfg)
        self.discovery: Discovery | None = None
        if cfg.discover:
            self.discovery = Discovery(self.dialect, transport, self._discovered, min(cfg.delivery.timeout, 10.0))
        self.apply_limits(limits)
        self.budget = ByteBudget(cfg.batch.max_buffered_bytes, global_budget)
        cap = self.dialect.rows_per_request()
        self.max_rows = cfg.batch.max_rows if cap is None else max(1, min(cap, cfg.batch.max_rows))
        self.stats = RouteStats()
        # Rows that carry ops (deletes, upserts) must reach the target in the order they came: one batch in
        # flight at a time, and never a batch past one that is being retried.
        d = cfg.delivery
        self.ordered = dialect_ordered(self.dialect) if d.ordered is None else d.ordered
        if self.ordered:
            self.limiter = Limiter(1)
        elif d.adaptive is not None:
            self.limiter = Limiter(d.adaptive.min, adaptive=True, minimum=d.adaptive.min, maximum=d.adaptive.max)
        else:
            self.limiter = Limiter(d.concurrency)
        self.sender = Sender(self.dialect, transport, RetryPolicy(d), cfg.batch.max_bytes, metrics, self.limiter)
        if metrics is not None:
            metrics.buffered_bytes.labels(self.name).set_function(lambda: self.budget.used)
            metrics.buffered_limit.labels(self.name).set(self.budget.cap)
            metrics.concurrency_limit.labels(self.name).set_function(lambda: self.limiter.limit)
            metrics.in_flight.labels(self.name).set_function(lambda: self.limiter.in_flight)
        self.batcher = Batcher(self.max_rows, cfg.batch.max_bytes, cfg.batch.linger, self.ordered,
                               self.budget.release)
        self._workers: list[asyncio.Task] = []
        self.admitting = 0  # callers' messages between reserve() and submit()
        self._admitted = asyncio.Event()
        self._started = asyncio.Event()  # a spooled route takes rows once its log is open
        self._inflight: dict[int, list[Part]] = {}
        self._closing = False
        # The reason of the last batch that failed for good, None after a delivered one (for /readyz).
        self.last_failure: str | None = None
        self.spool: Spool | None = None
        if cfg.spool is not None:
            self.spool = Spool(cfg.name, cfg.spool, metrics)
            if metrics is not None:
                spool = self.spool
                metrics.spool_bytes.labels(self.name).set_function(lambda: spool.disk_bytes)
                metrics.spool_limit.labels(self.name).set(cfg.spool.max_bytes)
                metrics.dead_letter_rows.labels(self.name).set_function(lambda: spool.dead_rows)

    def apply_limits(self, limits: LimitsConfig | None) -> None:
        """(Re)build the transcoder with the bridge's limits; a reload applies new limits so, to new requests."""
        cfg = self.cfg
        self.limits = limits
        columns = (self.discovery.columns or ()) if self.discovery is not None else (cfg.columns or ())
        self.transcoder = transcoder(Plan(
            route=cfg.name,
            timestamps=cfg.options.get("timestamps", "rfc3339"),
            rfc3339_columns=self.dialect.rfc3339_columns(),
            descriptor_set=cfg.options.get("descriptor_set") or "",
            columns=columns,
            discover=cfg.discover,
            unknown_columns=cfg.unknown_columns,
            parse_json=bool(columns) or self.dialect.parses_json_rows(),
            rows_as_objects=self.dialect.sends_rows_as_objects(),
            reserved_columns=self.dialect.reserved_columns(),
            limits=limits,
            row_checks=(self.dialect.reject_ops, self.dialect.check_rows),
        ))

    def _discovered(self, columns: tuple) -> None:
        self.apply_limits(self.limits)  # the transcoder validates against the target's columns from now on

    @property
    def columns(self) -> tuple:
        """The columns rows are validated against: declared, or read from the target (empty: none)."""
        if self.discovery is not None:
            return self.discovery.columns or ()
        return self.cfg.columns or ()

    @property
    def schema_problem(self) -> str | None:
        """Why a discover route takes no rows yet (None: it does)."""
        return self.discovery.problem if self.discovery is not None else None

    @contextlib.asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Around a message's reserve() ... submit(): a route being replaced waits for these before it drains."""
        self.admitting += 1
        try:
            yield
        finally:
            self.admitting -= 1
            if not self.admitting:
                self._admitted.set()

    async def retire(self, timeout: float) -> None:
        """The route left the routing table (a reload changed or removed it): let the messages already being
        admitted in, deliver everything it holds (within ``timeout``), then stop."""
        while self.admitting:
            self._admitted.clear()
            await self._admitted.wait()
        await self.close(timeout)

    @property
    def full(self) -> bool:
        """The route takes no more rows until some are delivered."""
        if self.spool is not None:
            return self.spool.full
        return self.budget.blocked or (self.budget.parent is not None and self.budget.parent.blocked)

    # -- receive side ------------------------------------------------------------
    def prepare(self, request: Any, size: int | None = None, raw: bytes | None = None
                ) -> tuple[Rows, list[RowError]]:
        """Transcode one request: the rows to send and the rows rejected (by caller index).

        ``size`` is the request's wire size and ``raw`` its wire bytes (see ``Transcoder.transcode``). On a
        ``reject_batch`` route one bad row refuses the request.
        """
        if self.discovery is not None and self.discovery.columns is None:
            raise BatchRejected("UNAVAILABLE", "SCHEMA_UNKNOWN",
                                f"route {self.name!r} validates rows against its target's schema and has not read "
                                f"it yet ({self.discovery.problem}); it keeps trying", retry_after=2.0)
        rows, errors = self.transcoder.transcode(request, size, raw)
        if errors and self.cfg.on_bad_row == "reject_batch":
            raise BatchRejected(
                "INVALID_ARGUMENT", "INVALID_ROWS",
                f"{len(errors)} row(s) rejected, first row {errors[0].index}: {errors[0].reason}; "
                f"route {self.name!r} takes a batch whole or not at all",
                row_errors=errors,
            )
        return rows, errors

    def rows_of(self, request: bytes, skip: list[int]) -> tuple[Rows, list[RowError]]:
        """A neutral spool record (a caller's request, as written by a route with several targets) as this
        route's rows, without the caller indices in ``skip`` (the spool's ``Downstream``)."""
        rows, errors = self.prepare(pb.IngestRequest.FromString(request), len(request), request)
        return leave_out(rows, errors, skip)

    @staticmethod
    def charge(request: Any, wire_bytes: int) -> int:
        """What a request costs in the byte budget: an estimate of its decoded rows and encoded body.

        Measured: decoded table rows take about four times their protobuf size, JSON objects about one
        time; the encoded body adds about one more.
        """
        return wire_bytes * (2 if request.WhichOneof("payload") == "json" else 5)

    async def reserve(self, nbytes: int) -> None:
        """Waits while the route's (or the bridge's) buffer is full: the caller's stream is not read meanwhile."""
        if self._closing:
            raise _shutting_down()
        await self.budget.acquire(nbytes)

    async def submit(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None:
        """Hand rows to the batcher; ``nbytes`` were reserved for them and are released as they are delivered."""
        if self._closing:
            self.budget.release(nbytes)
            raise _shutting_down()
        n = len(rows)
        self.stats.requests += 1
        self.stats.rows_in += ticket.total
        self.stats.rows_rejected += len(ticket.errors)
        if self.metrics is not None:
            m = self.metrics
            m.received_batches.labels(self.name).inc()
            m.received_rows.labels(self.name).inc(ticket.total)
            m.received_bytes.labels(self.name).inc(wire_bytes)
            if ticket.errors:
                m.rejected_rows.labels(self.name, "bridge").inc(len(ticket.errors))
        if n == 0:
            self.budget.release(nbytes)
            ticket.finish()
            return
        if self.spool is not None:
            if not self._started.is_set():
                await self._started.wait()  # a reload: the route it replaces still has the log
                if self._closing:
                    self.budget.release(nbytes)
                    raise _shutting_down()
            try:
                await self.spool.accept(ticket, rows)  # the caller's ack waits for the fsync, not the target
            finally:
                self.budget.release(nbytes)
            return
        await self.enqueue_rows(ticket, rows, nbytes, wire_bytes)

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None:
        """Split rows into parts for the batcher; the ticket settles when every part is delivered."""
        n = len(rows)
        per_row = max(1, nbytes // n)
        step, body_per_row = part_size(n, self.max_rows, self.cfg.batch.max_bytes, wire_bytes or nbytes)
        slices = [rows] if n <= step else [rows.slice(i, min(n, i + step)) for i in range(0, n, step)]
        ticket.pending = len(slices)
        loop = asyncio.get_running_loop()
        parts = [Part(ticket, s, per_row * len(s), loop.time(), body_per_row * len(s)) for s in slices]
        parts[-1].nbytes += nbytes - per_row * n  # every reserved byte belongs to a part
        await self._enqueue(parts)

    def forget(self, ticket: Ticket, why: str = "the caller's call ended before its rows were delivered") -> None:
        """Nobody waits for this ticket any more: its queued rows leave the queue, and rows in a batch being
        retried leave it before the next attempt. A request already on the wire is not recalled."""
        ticket.withdraw("CANCELLED", why)
        self.batcher.forget(ticket)

    async def _enqueue(self, parts: list[Part]) -> None:
        await self.batcher.put(parts)

    # -- batch side ----------------------------------------------------------------
    def start(self) -> None:
        """Start sending; a spooled route opens its log first (SpoolError if it cannot)."""
        if self.spool is not None:
            self.spool.open()
            self.spool.start(self)
        if self.discovery is not None:
            self.discovery.start()
        workers = 1 if self.ordered else self.limiter.maximum
        for i in range(workers):
            self._workers.append(asyncio.create_task(self._worker(), name=f"route-{self.name}-{i}"))
        self._started.set()

    async def _worker(self) -> None:
        limiter = self.limiter
        while True:
            # A slot first, then a batch: while the target is busy, rows wait in the batcher and fill batches.
            await limiter.acquire()
            try:
                parts = await self.batcher.next_batch()
            except BaseException:
                limiter.release(started=False)
                raise
            if parts is None:
                limiter.release(started=False)
                return
            key = id(parts)
            self._inflight[key] = parts
            limiter.start()
            try:
                await self._deliver(parts)
            finally:
                limiter.release()
                del self._inflight[key]
                self.budget.release(sum(p.nbytes for p in parts))
            # Let the callers that just heard their outcome act on it (an Ingest call that failed withdraws
            # its other rows) before this worker takes the next batch.
            await asyncio.sleep(0)

    async def _deliver(self, parts: list[Part]) -> None:
        halted = [p for p in parts if self.ordered and p.ticket.failure is not None and p.ticket.gone is None]
        results: list[Result] = []
        if halted:
            # An earlier batch of the same request failed: on an ordered route the rest of it is not sent.
            parts = [p for p in parts if p not in halted]
            results += [(Load.of([p]), held_back(p.ticket.failure)) for p in halted]  # type: ignore[arg-type]
        live = Load.of(parts)
        try:
            # Durable rows on an ordered route wait for the target however long it takes: a record given up
            # on and tried again later would reach the target after the ones behind it.
            forever = self.ordered and all(p.ticket.durable for p in parts)
            results += await self.sender.deliver(live, forever) if parts else []
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # A fault in a dialect must still answer every caller.
            log.exception("route=%s internal error while sending a batch", self.name)
            results.append((live, Outcome(code="INTERNAL", reason="BRIDGE_ERROR",
                                          message=f"internal error in the bridge: {type(e).__name__}")))
        self._count(results)
        for part in settle(results, self.stats):
            part.ticket.pending -= 1
            if part.ticket.pending <= 0:
                part.ticket.finish()

    def _count(self, results: list[Result]) -> None:
        m = self.metrics
        for load, o in results:
            n = len(load)
            if o.reason == "WITHDRAWN":
                continue
            if o.ok:
                self.stats.batches_sent += 1
                self.last_failure = None
            else:
                self.stats.batches_failed += 1
                self.last_failure = o.reason or o.code
                sequences = sorted({p.owner.ticket.sequence for p in load.pieces})
                log.warning("route=%s sequences=%s rows=%d batch failed: %s %s: %s%s", self.name,
                            ",".join(map(str, sequences[:20])), n, o.code, o.reason, o.message,
                            trace_field(load.traces()))
            if m is not None:
                outcome = "ok" if o.ok else "failed"
                m.sent_batches.labels(self.name, outcome).inc()
                m.sent_rows.labels(self.name, outcome).inc(n - len(o.row_errors) if o.ok else n)
                if o.ok and o.row_errors:
                    m.rejected_rows.labels(self.name, "target").inc(len(o.row_errors))

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered (linger no longer waits), then stop; what is left fails as UNAVAILABLE."""
        self._closing = True
        self.batcher.closing = True
        if self.discovery is not None:
            await self.discovery.stop()
        if self.spool is not None:
            # Spooled rows are safe on disk: stop handing out more, let the batches in flight finish if they can.
            await self.spool.stop_pump()
        await self.batcher.wake()
        if self._workers:
            _, running = await asyncio.wait(self._workers, timeout=timeout)
            # Taken before the cancel: a cancelled worker forgets its batch on the way out.
            late = [p for parts in self._inflight.values() for p in parts]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for p in late:
                p.ticket.fail(SHUTTING_DOWN)
        for p in self.batcher.drain():
            p.ticket.fail(SHUTTING_DOWN)
        if self.spool is not None:
            await self.spool.close()


def part_size(n: int, max_rows: int, max_bytes: int, wire_bytes: int) -> tuple[int, int]:
    """Rows per part of a request of ``n`` rows, and each row's estimated body bytes.

    JSON is about as large as the protobuf it came in, so a row's body is estimated from the request's wire
    size. ``ingest-bridge explain`` cuts rows with the same numbers.
    """
    body_per_row = max(1, wire_bytes // n)
    return max(1, min(max_rows, max_bytes // body_per_row)), body_per_row


def dialect_ordered(dialect: Any) -> bool:
    """A route whose target takes deletes or upserts keeps its rows in order by default."""
    return dialect.supported_ops() != frozenset({Op.INSERT})


def _shutting_down() -> BatchRejected:
    return BatchRejected("UNAVAILABLE", "BRIDGE_SHUTTING_DOWN", SHUTTING_DOWN.message, retry_after=1.0)
