"""One target of a route: its dialect, transcoder, byte budget, batcher, limiter, sender, workers and stats.

A route (``route/pipeline.py``) has one lane per target: a single-target route has one. The lane takes parts
of tickets (``cut`` then ``put``), and ``delivery.concurrency`` workers send batches of them (one at a time on
an ordered lane, whose rows carry ops); each takes a slot of the lane's ``Limiter`` before it takes a batch,
so with ``concurrency: adaptive`` the number in flight follows the target's answers. Each row's outcome flows
back to its ticket; a ticket is done when all its parts are.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from bridge.dialects import DIALECTS
from bridge.model.config import LimitsConfig, TargetConfig
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
from bridge.transcode import Plan, transcoder

log = logging.getLogger("bridge.route.pipeline")


@dataclass
class RouteStats:
    """Counters the demo prints (Prometheus metrics build on the same numbers)."""

    requests: int = 0
    rows_in: int = 0
    rows_rejected: int = 0
    rows_delivered: int = 0
    batches_sent: int = 0
    batches_failed: int = 0
    rows_dropped: int = 0  # an optional target's rows it never got (buffer full, refused, failed)


class Lane:
    """One target of route ``route``; ``name`` is its ``target`` label (a single-target route's: its dialect)."""

    def __init__(self, target: TargetConfig, transport: Transport, global_budget: ByteBudget | None,
                 metrics: Metrics | None, limits: LimitsConfig | None) -> None:
        cfg = self.cfg = target.cfg
        self.name = target.name
        self.required = target.required
        self.route = cfg.name
        self.metrics = metrics
        self.dialect = DIALECTS[cfg.dialect](cfg)
        self.discovery: Discovery | None = None
        if cfg.discover:
            self.discovery = Discovery(self.dialect, transport, self._discovered, min(cfg.delivery.timeout, 10.0))
        self.apply_limits(limits)
        # An optional target's buffer is its own: it drops rows when full rather than hold the bridge's budget.
        self.budget = ByteBudget(cfg.batch.max_buffered_bytes, global_budget if target.required else None)
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
        self.sender = Sender(self.dialect, transport, RetryPolicy(d), cfg.batch.max_bytes, metrics, self.limiter,
                             target=self.name)
        # The gauge series this lane feeds (a reload that drops or renames the target removes them).
        self.gauges: list[tuple[Any, tuple[str, ...]]] = []
        if metrics is not None:
            labels = (self.route, self.name)
            self.gauges = [(g, labels) for g in (metrics.buffered_bytes, metrics.buffered_limit,
                                                 metrics.concurrency_limit, metrics.in_flight)]
            metrics.buffered_bytes.labels(*labels).set_function(lambda: self.budget.used)
            metrics.buffered_limit.labels(*labels).set(self.budget.cap)
            metrics.concurrency_limit.labels(*labels).set_function(lambda: self.limiter.limit)
            metrics.in_flight.labels(*labels).set_function(lambda: self.limiter.in_flight)
        self.batcher = Batcher(self.max_rows, cfg.batch.max_bytes, cfg.batch.linger, self.ordered,
                               self.budget.release)
        self._workers: list[asyncio.Task] = []
        self._inflight: dict[int, list[Part]] = {}
        self.closing = False
        # The reason of the last batch that failed for good, None after a delivered one (for /readyz).
        self.last_failure: str | None = None

    def apply_limits(self, limits: LimitsConfig | None) -> None:
        """(Re)build the transcoder with the bridge's limits; a reload applies new limits so, to new requests."""
        cfg = self.cfg
        self.limits = limits
        columns = self.columns
        plan = Plan(
            route=cfg.name,
            timestamps=cfg.options.get("timestamps", "rfc3339"),
            rfc3339_columns=self.dialect.rfc3339_columns(),
            descriptor_set=cfg.options.get("descriptor_set") or "",
            columns=columns,
            discover=cfg.discover,
            unknown_columns=cfg.unknown_columns,
            parse_json=bool(columns) or self.dialect.parses_json_rows(),
            rows_as_objects=self.dialect.sends_rows_as_objects(),
            form=self.dialect.row_form(),
            reserved_columns=self.dialect.reserved_columns(),
            limits=limits,
            row_checks=(self.dialect.reject_ops, self.dialect.check_rows),
        )
        self.transcoder = transcoder(plan)
        # Lanes whose keys are equal read a request alike (the same plan, and row checks of the same dialect
        # with the same options): a route with several targets transcodes a request once for all of them.
        self.plan_key = (replace(plan, row_checks=()), type(self.dialect), repr(sorted(cfg.options.items())))

    def _discovered(self, columns: tuple) -> None:
        self.apply_limits(self.limits)  # the transcoder validates against the target's columns from now on

    @property
    def columns(self) -> tuple:
        """The columns rows are validated against: declared, or read from the target (empty: none)."""
        if self.discovery is not None:
            return self.discovery.columns or ()
        return self.cfg.columns or ()

    @property
    def full(self) -> bool:
        return self.budget.blocked or (self.budget.parent is not None and self.budget.parent.blocked)

    def take(self, nbytes: int) -> bool:
        """Room for ``nbytes`` now, without waiting (an optional target's buffer): False when there is none."""
        return not self.closing and self.budget.try_acquire(nbytes)

    def cut(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> list[Part]:
        """Rows in parts for the batcher (the ticket's ``pending`` is the caller's to add them to)."""
        n = len(rows)
        per_row = max(1, nbytes // n)
        step, body_per_row = part_size(n, self.max_rows, self.cfg.batch.max_bytes, wire_bytes or nbytes)
        slices = [rows] if n <= step else [rows.slice(i, min(n, i + step)) for i in range(0, n, step)]
        now = asyncio.get_running_loop().time()
        parts = [Part(ticket, s, per_row * len(s), now, body_per_row * len(s)) for s in slices]
        parts[-1].nbytes += nbytes - per_row * n  # every reserved byte belongs to a part
        return parts

    async def put(self, parts: list[Part]) -> None:
        await self.batcher.put(parts)

    # A lane is a spool's ``Downstream`` (reserve, rows_of, enqueue_rows): a route with several targets and a
    # spool gives each lane its own cursor in the route's log.
    async def reserve(self, nbytes: int) -> None:
        """Waits while the lane's (or the bridge's) buffer is full."""
        if self.closing:
            raise BatchRejected("UNAVAILABLE", "BRIDGE_SHUTTING_DOWN", SHUTTING_DOWN.message, retry_after=1.0)
        await self.budget.acquire(nbytes)

    def rows_of(self, request: bytes, skip: list[int]) -> tuple[Rows, list[RowError]]:
        """A neutral spool record (the caller's request) as this target's rows, by its own transcoder, without
        the caller indices in ``skip``; and the rows this target rejects."""
        rows, errors = self.transcoder.transcode(pb.IngestRequest.FromString(request), len(request), request)
        return leave_out(rows, errors, skip)

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None:
        """Rows in parts to the batcher, ``nbytes`` reserved for them; the ticket settles when every part is
        delivered."""
        parts = self.cut(ticket, rows, nbytes, wire_bytes)
        ticket.pending = len(parts)
        await self.put(parts)

    def forget(self, ticket: Ticket) -> None:
        self.batcher.forget(ticket)

    # -- batch side ----------------------------------------------------------------
    def start(self) -> None:
        if self.discovery is not None:
            self.discovery.start()
        workers = 1 if self.ordered else self.limiter.maximum
        for i in range(workers):
            self._workers.append(asyncio.create_task(self._worker(), name=f"route-{self.route}-{self.name}-{i}"))

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
            log.exception("route=%s target=%s internal error while sending a batch", self.route, self.name)
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
                log.warning("route=%s target=%s sequences=%s rows=%d batch failed: %s %s: %s%s", self.route,
                            self.name, ",".join(map(str, sequences[:20])), n, o.code, o.reason, o.message,
                            trace_field(load.traces()))
            if m is not None:
                outcome = "ok" if o.ok else "failed"
                m.sent_batches.labels(self.route, self.name, outcome).inc()
                m.sent_rows.labels(self.route, self.name, outcome).inc(n - len(o.row_errors) if o.ok else n)
                if o.ok and o.row_errors:
                    m.rejected_rows.labels(self.route, self.name, "target").inc(len(o.row_errors))

    async def close(self, timeout: float) -> None:
        """Flush what is buffered (linger no longer waits), then stop; what is left fails as UNAVAILABLE."""
        self.closing = True
        self.batcher.closing = True
        if self.discovery is not None:
            await self.discovery.stop()
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
