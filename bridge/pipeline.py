"""One route's pipeline: decode → validate → batch → send, and tickets back to the caller.

A caller's request becomes a Ticket. Its rows are split into parts (at most
max_rows and about max_bytes each), parts of the same shape are grouped into
batches by count, bytes and linger, and ``delivery.concurrency`` workers send
the batches. Each row's outcome flows back to its ticket; a ticket is done
when all its parts are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from bridge.budget import ByteBudget
from bridge.config_model import LimitsConfig, RouteConfig
from bridge.decode import Decoder
from bridge.descriptors import MessageTypes
from bridge.dialects import DIALECTS
from bridge.errors import BatchRejected, ConfigError
from bridge.metrics import Metrics
from bridge.outcome import Outcome, Span
from bridge.rows import RowError, Rows
from bridge.send.retry import RetryPolicy
from bridge.send.sender import Sender
from bridge.send.transport import Transport
from bridge.spool.spool import Spool
from bridge.timefmt import formatter
from bridge.validate import Validator

log = logging.getLogger("bridge.pipeline")

SHUTTING_DOWN = Outcome(
    code="UNAVAILABLE", reason="BRIDGE_SHUTTING_DOWN", message="the bridge shut down before the batch was delivered",
    retryable=True,
)


class Ticket:
    """One caller request on its way; ``future`` resolves to the ticket itself when every row is settled."""

    __slots__ = ("accepted", "cancelled", "deadline", "errors", "failed_rows", "failure", "future", "pending",
                 "route", "sequence", "total", "unnamed_rejects", "upstream")

    def __init__(self, route: str, sequence: int, total: int, errors: list[RowError], deadline: float | None) -> None:
        self.route = route
        self.sequence = sequence
        self.total = total
        self.errors = list(errors)
        self.deadline = deadline
        self.future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self.pending = 0
        self.accepted = 0
        self.unnamed_rejects = 0
        self.failed_rows: list[int] = []
        self.failure: Outcome | None = None
        self.upstream: dict[str, str] = {}
        self.cancelled = False

    def finish(self) -> None:
        if not self.future.done():
            self.future.set_result(self)

    def fail(self, outcome: Outcome) -> None:
        if self.failure is None:
            self.failure = outcome
        self.finish()


@dataclass(slots=True)
class Part:
    ticket: Ticket
    rows: Rows
    nbytes: int  # its share of the budget charge, released on delivery
    since: float
    body_bytes: int = 0  # an estimate of its encoded size, for batch.max_bytes


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
        mode = cfg.options.get("timestamps", "rfc3339")
        ts = formatter(mode)
        path = cfg.options.get("descriptor_set") or ""
        fixed = self.dialect.rfc3339_columns() if mode != "rfc3339" else frozenset()
        try:
            messages = MessageTypes(path, ts, fixed) if path else None
        except ConfigError as e:
            raise ConfigError([f"routes.{cfg.name}.options.descriptor_set: {p}" for p in e.problems]) from None
        self.decoder = Decoder(ts, messages, mode=mode, limits=limits, rfc3339_columns=fixed)
        self.validator = Validator(cfg.columns, mode, fixed) if cfg.columns else None
        self._parse_json = self.validator is not None or self.dialect.parses_json_rows()
        self.budget = ByteBudget(cfg.batch.max_buffered_bytes, global_budget)
        cap = self.dialect.rows_per_request()
        self.max_rows = cfg.batch.max_rows if cap is None else max(1, min(cap, cfg.batch.max_rows))
        self.sender = Sender(self.dialect, transport, RetryPolicy(cfg.delivery), cfg.batch.max_bytes, metrics)
        if metrics is not None:
            metrics.buffered_bytes.labels(self.name).set_function(lambda: self.budget.used)
            metrics.buffered_limit.labels(self.name).set(self.budget.cap)
        self.stats = RouteStats()
        self._pending: dict[Any, deque[Part]] = {}
        self._pending_rows: dict[Any, int] = {}
        self._pending_bytes: dict[Any, int] = {}
        self._cond: asyncio.Condition | None = None
        self._workers: list[asyncio.Task] = []
        self._inflight: dict[int, list[Part]] = {}
        self._closing = False
        # The reason of the last batch that failed for good, None after a delivered one (for /readyz).
        self.last_failure: str | None = None
        self.spool: Spool | None = None
        if cfg.spool is not None:
            self.spool = Spool(cfg.name, cfg.spool)
            if metrics is not None:
                spool = self.spool
                metrics.spool_bytes.labels(self.name).set_function(lambda: spool.disk_bytes)
                metrics.dead_letter_rows.labels(self.name).set_function(lambda: spool.dead.rows)

    @property
    def full(self) -> bool:
        """The route takes no more rows until some are delivered."""
        if self.spool is not None:
            return self.spool.full
        return self.budget.blocked or (self.budget.parent is not None and self.budget.parent.blocked)

    # -- receive side ------------------------------------------------------------
    def prepare(self, request: Any, size: int | None = None) -> tuple[Rows, list[RowError]]:
        """Decode and check one request: the rows to send and the rows rejected (by caller index).

        ``size`` is the request's wire size: below ``limits.max_value_bytes`` no value can be too long,
        so lengths go unchecked.
        """
        self.decoder.begin(request.ByteSize() if size is None else size)
        kind = request.WhichOneof("payload")
        objects = None
        if kind == "rows":
            rows, errors = self.decoder.row_batch(request.rows)
        elif kind == "columns":
            rows, errors = self.decoder.column_batch(request.columns)
        elif kind == "messages":
            rows, errors = self.decoder.message_batch(request.messages)
        elif kind == "json":
            rows, errors, objects = self.decoder.json_batch(request.json, parse=self._parse_json)
        else:
            raise BatchRejected("INVALID_ARGUMENT", "EMPTY_REQUEST",
                                "the request has no payload: set rows, columns, messages or json")
        if self.validator is not None:
            rows, more = self.validator.check(rows, objects)
            errors += more
        for check in (self.dialect.reject_ops, self.dialect.check_rows):
            more = check(rows)
            if more:
                bad = {e.index for e in more}
                rows = rows.select([p for p in range(len(rows)) if rows.caller_index(p) not in bad])
                errors += more
        if errors:
            errors.sort(key=lambda e: e.index)
            if self.cfg.on_bad_row == "reject_batch":
                raise BatchRejected(
                    "INVALID_ARGUMENT", "INVALID_ROWS",
                    f"{len(errors)} row(s) rejected, first row {errors[0].index}: {errors[0].reason}; "
                    f"route {self.name!r} takes a batch whole or not at all",
                    row_errors=errors,
                )
        return rows, errors

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
            try:
                await self.spool.accept(ticket, rows)  # the caller's ack waits for the fsync, not the target
            finally:
                self.budget.release(nbytes)
            return
        await self.enqueue_rows(ticket, rows, nbytes, wire_bytes)

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None:
        """Split rows into parts for the batcher; the ticket settles when every part is delivered."""
        n = len(rows)
        b = self.cfg.batch
        per_row = max(1, nbytes // n)
        body_per_row = max(1, (wire_bytes or nbytes) // n)  # JSON is about as large as the protobuf it came in
        step = max(1, min(self.max_rows, b.max_bytes // body_per_row))
        slices = [rows] if n <= step else [rows.slice(i, min(n, i + step)) for i in range(0, n, step)]
        ticket.pending = len(slices)
        loop = asyncio.get_running_loop()
        parts = [Part(ticket, s, per_row * len(s), loop.time(), body_per_row * len(s)) for s in slices]
        parts[-1].nbytes += nbytes - per_row * n  # every reserved byte belongs to a part
        await self._enqueue(parts)

    def forget(self, ticket: Ticket) -> None:
        """Drop a cancelled ticket's rows that are still waiting for a batch (the caller went away)."""
        ticket.cancelled = True
        for shape in list(self._pending):
            parts = self._pending[shape]
            keep = deque(p for p in parts if p.ticket is not ticket)
            if len(keep) == len(parts):
                continue
            for p in parts:
                if p.ticket is ticket:
                    self._pending_rows[shape] -= len(p.rows)
                    self._pending_bytes[shape] -= p.body_bytes
                    self.budget.release(p.nbytes)
            if keep:
                self._pending[shape] = keep
            else:
                del self._pending[shape], self._pending_rows[shape], self._pending_bytes[shape]

    async def _enqueue(self, parts: list[Part]) -> None:
        cond = self._condition()
        try:
            await cond.acquire()
        except asyncio.CancelledError:
            self.budget.release(sum(p.nbytes for p in parts))  # the caller left before its rows were queued
            raise
        try:
            for part in parts:
                shape = part.rows.shape
                self._pending.setdefault(shape, deque()).append(part)
                self._pending_rows[shape] = self._pending_rows.get(shape, 0) + len(part.rows)
                self._pending_bytes[shape] = self._pending_bytes.get(shape, 0) + part.body_bytes
            cond.notify(len(parts))
        finally:
            cond.release()

    # -- batch side ----------------------------------------------------------------
    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def start(self) -> None:
        """Start sending; a spooled route opens its log first (SpoolError if it cannot)."""
        self._condition()
        if self.spool is not None:
            self.spool.open()
            self.spool.start(self)
        for i in range(self.cfg.delivery.concurrency):
            self._workers.append(asyncio.create_task(self._worker(), name=f"route-{self.name}-{i}"))

    def _ready(self, now: float) -> tuple[Any, float | None]:
        b = self.cfg.batch
        wait = None
        for shape, parts in self._pending.items():
            if (
                self._closing
                or self._pending_rows[shape] >= self.max_rows
                or self._pending_bytes[shape] >= b.max_bytes
                or now - parts[0].since >= b.linger
            ):
                return shape, None
            w = parts[0].since + b.linger - now
            wait = w if wait is None else min(wait, w)
        return _NONE, wait

    def _take(self, shape: Any) -> list[Part]:
        b = self.cfg.batch
        parts = self._pending[shape]
        taken: list[Part] = []
        rows = size = 0
        while parts:
            p = parts[0]
            if taken and (rows + len(p.rows) > self.max_rows or size + p.body_bytes > b.max_bytes):
                break
            parts.popleft()
            self._pending_rows[shape] -= len(p.rows)
            self._pending_bytes[shape] -= p.body_bytes
            if p.ticket.cancelled:
                # Nobody waits for these rows: the caller resends what was not acknowledged.
                self.budget.release(p.nbytes)
                continue
            taken.append(p)
            rows += len(p.rows)
            size += p.body_bytes
        if not parts:
            del self._pending[shape], self._pending_rows[shape], self._pending_bytes[shape]
        return taken

    async def _next_batch(self) -> list[Part] | None:
        cond = self._condition()
        loop = asyncio.get_running_loop()
        async with cond:
            while True:
                shape, wait = self._ready(loop.time())
                if shape is not _NONE:
                    taken = self._take(shape)
                    if taken:
                        return taken
                    continue
                if self._closing:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cond.wait(), wait)

    async def _worker(self) -> None:
        while True:
            parts = await self._next_batch()
            if parts is None:
                return
            key = id(parts)
            self._inflight[key] = parts
            try:
                await self._deliver(parts)
            finally:
                del self._inflight[key]
                self.budget.release(sum(p.nbytes for p in parts))

    async def _deliver(self, parts: list[Part]) -> None:
        rows = Rows.concat([p.rows for p in parts])
        deadlines = [p.ticket.deadline for p in parts]
        deadline = None if None in deadlines else max(deadlines)  # type: ignore[type-var]
        try:
            spans = await self.sender.deliver(rows, deadline)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # A fault in a dialect must still answer every caller.
            log.exception("route=%s internal error while sending a batch", self.name)
            spans = [Span(0, len(rows), Outcome(code="INTERNAL", reason="BRIDGE_ERROR",
                                                message=f"internal error in the bridge: {type(e).__name__}"))]
        m = self.metrics
        for s in spans:
            o, n = s.outcome, s.stop - s.start
            if o.ok:
                self.stats.batches_sent += 1
                self.last_failure = None
            else:
                self.stats.batches_failed += 1
                self.last_failure = o.reason or o.code
                sequences = sorted({p.ticket.sequence for p in parts})
                log.warning("route=%s sequences=%s rows=%d batch failed: %s %s: %s", self.name,
                            ",".join(map(str, sequences[:20])), n, o.code, o.reason, o.message)
            if m is not None:
                outcome = "ok" if o.ok else "failed"
                m.sent_batches.labels(self.name, outcome).inc()
                m.sent_rows.labels(self.name, outcome).inc(n - len(o.row_errors) if o.ok else n)
                if o.ok and o.row_errors:
                    m.rejected_rows.labels(self.name, "target").inc(len(o.row_errors))
        self._settle(parts, spans)

    def _settle(self, parts: list[Part], spans: list[Span]) -> None:
        unattributed = {
            id(s): (s.stop - s.start) - len(s.outcome.row_errors) - s.outcome.accepted
            for s in spans if s.outcome.ok and s.outcome.accepted is not None
        }
        offset = 0
        for p in parts:
            a, b = offset, offset + len(p.rows)
            offset = b
            t = p.ticket
            for s in spans:
                lo, hi = max(a, s.start), min(b, s.stop)
                if lo >= hi:
                    continue
                o = s.outcome
                _merge_upstream(t.upstream, o.upstream)
                if o.ok:
                    named = [e for e in o.row_errors if lo <= e.index < hi]
                    for e in named:
                        t.errors.append(RowError(p.rows.caller_index(e.index - a), e.column, e.reason))
                    good = hi - lo - len(named)
                    extra = min(good, max(0, unattributed.get(id(s), 0)))
                    if extra:
                        unattributed[id(s)] -= extra
                        t.unnamed_rejects += extra
                        good -= extra
                    t.accepted += good
                    self.stats.rows_delivered += good
                else:
                    if t.failure is None:
                        t.failure = o
                    # Rows the target named in a failed batch (Feldera's parse errors), by caller index.
                    t.errors += [RowError(p.rows.caller_index(e.index - a), e.column, e.reason)
                                 for e in o.row_errors if lo <= e.index < hi]
                    t.failed_rows.extend(p.rows.caller_index(i - a) for i in range(lo, hi))
            t.pending -= 1
            if t.pending <= 0:
                t.finish()

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered (linger no longer waits), then stop; what is left fails as UNAVAILABLE."""
        self._closing = True
        if self.spool is not None:
            # Spooled rows are safe on disk: stop handing out more, let the batches in flight finish if they can.
            await self.spool.stop_pump()
        cond = self._condition()
        async with cond:
            cond.notify_all()
        if self._workers:
            _, running = await asyncio.wait(self._workers, timeout=timeout)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        for parts in list(self._inflight.values()):
            for p in parts:
                p.ticket.fail(SHUTTING_DOWN)
        for parts in self._pending.values():
            for p in parts:
                p.ticket.fail(SHUTTING_DOWN)
        self._pending.clear()
        if self.spool is not None:
            await self.spool.close()


def _merge_upstream(into: dict[str, str], more: dict[str, str]) -> None:
    """A caller batch sent in several requests: counts add up, JSON lists join, other values: the last."""
    for key, value in more.items():
        old = into.get(key)
        if old is not None and old.isdigit() and value.isdigit():
            into[key] = str(int(old) + int(value))
        elif old is not None and old.startswith("[") and value.startswith("["):
            into[key] = old[:-1] + ("," if len(old) > 2 and len(value) > 2 else "") + value[1:]
        else:
            into[key] = value


def _shutting_down() -> BatchRejected:
    return BatchRejected("UNAVAILABLE", "BRIDGE_SHUTTING_DOWN", SHUTTING_DOWN.message, retry_after=1.0)


class _NoShape:
    pass


_NONE = _NoShape()
