"""One route: admission (byte budgets), transcoding, tickets, the spool, and its targets' lanes.

A caller's request becomes a Ticket. The route's lanes (``route/lane.py``, one per target; a single-target
route has one) batch and send its rows; each row's outcome flows back to its ticket, which is done when all
its parts are. A ticket nobody waits for any more (its call ended) has its rows withdrawn: queued parts leave
the queue, and parts in a batch being retried leave it before the next attempt. On a route with several
targets (``targets:``) each target gets its share of the rows, and the caller's ticket settles from the
required targets' shares (``route/fanout.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from bridge.model.config import LimitsConfig, RouteConfig
from bridge.model.errors import BatchRejected
from bridge.model.rows import RowError, Rows
from bridge.model.tickets import SHUTTING_DOWN, Share, Ticket
from bridge.ops.metrics import Metrics
from bridge.proto import pb
from bridge.route import fanout
from bridge.route.budget import ByteBudget
from bridge.route.lane import Lane, RouteStats, dialect_ordered, part_size
from bridge.send.transport import Transport
from bridge.spool.records import leave_out
from bridge.spool.spool import Spool

log = logging.getLogger("bridge.route.pipeline")

__all__ = ["Lane", "RoutePipeline", "RouteStats", "Ticket", "dialect_ordered", "part_size"]


class RoutePipeline:
    def __init__(self, cfg: RouteConfig, transport: Transport, global_budget: ByteBudget | None = None,
                 metrics: Metrics | None = None, limits: LimitsConfig | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.name = cfg.name
        self.lanes = [Lane(t, transport, global_budget, metrics, limits) for t in cfg.lanes()]
        self.required = [lane for lane in self.lanes if lane.required]
        self.optional = [lane for lane in self.lanes if not lane.required]
        self.fanout = bool(cfg.targets)
        self.limits = limits
        self.admitting = 0  # callers' messages between reserve() and submit()
        self._admitted = asyncio.Event()
        self._started = asyncio.Event()  # a spooled route takes rows once its log is open
        self._closing = False
        # Optional targets' drops are logged at most once per 10 s per target (they may come by the thousand).
        self._drop_logged: dict[str, float] = {}
        self.spool: Spool | None = None
        if cfg.spool is not None:
            # Several targets: one log, a cursor per target (the lanes are the spool's downstreams).
            self.spool = Spool(cfg.name, cfg.spool, metrics, targets=[lane.name for lane in self.lanes]
                               if self.fanout else (), optional=[lane.name for lane in self.optional])
        # The gauge series this version of the route feeds (see drop_gauges).
        self.gauges = [item for lane in self.lanes for item in lane.gauges] + (
            self.spool.gauges if self.spool is not None else [])

    # The first target's parts, as one: what a single-target route is made of (and explain, tests, the demo read).
    @property
    def lane(self) -> Lane:
        return self.lanes[0]

    @property
    def dialect(self) -> Any:
        return self.lanes[0].dialect

    @property
    def budget(self) -> ByteBudget:
        return self.lanes[0].budget

    @property
    def batcher(self) -> Any:
        return self.lanes[0].batcher

    @property
    def limiter(self) -> Any:
        return self.lanes[0].limiter

    @property
    def sender(self) -> Any:
        return self.lanes[0].sender

    @property
    def transcoder(self) -> Any:
        return self.lanes[0].transcoder

    @property
    def stats(self) -> RouteStats:
        return self.lanes[0].stats

    @property
    def ordered(self) -> bool:
        return self.lanes[0].ordered

    @property
    def max_rows(self) -> int:
        return min(lane.max_rows for lane in self.required)

    @property
    def discovery(self) -> Any:
        return self.lanes[0].discovery

    @property
    def last_failure(self) -> str | None:
        """The last batch's failure of a required target (None after a delivered one)."""
        return next((lane.last_failure for lane in self.required if lane.last_failure is not None), None)

    @property
    def resource_type(self) -> str:
        return self.dialect.resource_type if not self.fanout else "target"

    def apply_limits(self, limits: LimitsConfig | None) -> None:
        """A reload's new limits, to new requests (each target's transcoder is built again)."""
        self.limits = limits
        for lane in self.lanes:
            lane.apply_limits(limits)

    @property
    def columns(self) -> tuple:
        """The columns rows are validated against: declared, or read from the target (empty: none)."""
        return self.lanes[0].columns

    @property
    def schema_problem(self) -> str | None:
        """Why a discover route takes no rows yet (None: it does)."""
        d = self.lanes[0].discovery
        return d.problem if d is not None else None

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
        """The route takes no more rows until some are delivered (to a required target)."""
        if self.spool is not None:
            return self.spool.full
        return any(lane.full for lane in self.required)

    # -- receive side ------------------------------------------------------------
    def prepare(self, request: Any, size: int | None = None, raw: bytes | None = None
                ) -> tuple[Rows | fanout.Fanned, list[RowError]]:
        """Transcode one request: the rows to send and the rows rejected (by caller index).

        ``size`` is the request's wire size and ``raw`` its wire bytes (see ``Transcoder.transcode``). On a
        ``reject_batch`` route one bad row refuses the request. A route with several targets gives each
        target's rows (``Fanned``).
        """
        d = self.lanes[0].discovery
        if d is not None and d.columns is None:
            raise BatchRejected("UNAVAILABLE", "SCHEMA_UNKNOWN",
                                f"route {self.name!r} validates rows against its target's schema and has not read "
                                f"it yet ({d.problem}); it keeps trying", retry_after=2.0)
        if not self.fanout:
            rows, errors = self.lanes[0].transcoder.transcode(request, size, raw)
            self._reject_batch(errors)
            return rows, errors
        # A spooled route reads the request for the required targets only: what the caller is told. The log
        # keeps the request itself, and each target's cursor transcodes it again when it reaches it.
        lanes = self.required if self.spool is not None else self.lanes
        read = fanout.transcode_once(lanes, request, size, raw)
        errors, blame = fanout.merge_errors([(lane.name, read[lane.name][1]) for lane in self.required])
        self._reject_batch(errors)
        rejected = {e.index for e in errors}
        out = fanout.Fanned({}, blame)
        if self.spool is not None:
            out.request = raw if raw is not None else request.SerializeToString()
        for lane in lanes:
            rows, own = read[lane.name]
            if not lane.required:
                mine = {e.index for e in own} - rejected
                if mine:
                    out.dropped[lane.name] = len(mine)
                rows = fanout.without(rows, rejected | mine)
            else:
                rows = fanout.without(rows, rejected - {e.index for e in own})
            out.rows[lane.name] = rows
        return out, errors

    def _reject_batch(self, errors: list[RowError]) -> None:
        if errors and self.cfg.on_bad_row == "reject_batch":
            raise BatchRejected(
                "INVALID_ARGUMENT", "INVALID_ROWS",
                f"{len(errors)} row(s) rejected, first row {errors[0].index}: {errors[0].reason}; "
                f"route {self.name!r} takes a batch whole or not at all",
                row_errors=errors,
            )

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
        """Waits while a required target's (or the bridge's) buffer is full: the caller's stream is not read
        meanwhile. Each required target holds its own copy of the rows, so each is charged."""
        if self._closing:
            raise _shutting_down()
        taken: list[Lane] = []
        try:
            for lane in self.required:
                await lane.budget.acquire(nbytes)
                taken.append(lane)
        except BaseException:
            for lane in taken:
                lane.budget.release(nbytes)
            raise

    def release(self, nbytes: int) -> None:
        """Give back what ``reserve`` took (the request was not submitted)."""
        for lane in self.required:
            lane.budget.release(nbytes)

    async def submit(self, ticket: Ticket, rows: Rows | fanout.Fanned, nbytes: int, wire_bytes: int = 0) -> None:
        """Hand rows to the batcher; ``nbytes`` were reserved for them and are released as they are delivered."""
        if self._closing:
            self.release(nbytes)
            raise _shutting_down()
        for lane in self.lanes:
            lane.stats.requests += 1
            lane.stats.rows_in += ticket.total
        self.lanes[0].stats.rows_rejected += len(ticket.errors)
        if self.metrics is not None:
            m = self.metrics
            m.received_batches.labels(self.name).inc()
            m.received_rows.labels(self.name).inc(ticket.total)
            m.received_bytes.labels(self.name).inc(wire_bytes)
            blame = rows.blame if isinstance(rows, fanout.Fanned) else {self.lanes[0].name: len(ticket.errors)}
            for target, n in blame.items():
                if n:
                    m.rejected_rows.labels(self.name, target, "bridge").inc(n)
        if len(rows) == 0:
            self.release(nbytes)
            ticket.finish()
            return
        if self.spool is not None:
            if not self._started.is_set():
                await self._started.wait()  # a reload: the route it replaces still has the log
                if self._closing:
                    self.release(nbytes)
                    raise _shutting_down()
            # The caller's ack waits for the fsync, not the targets. Several targets: the record is the
            # request itself, less the rows rejected to the caller (ticket.errors).
            request = rows.request if isinstance(rows, fanout.Fanned) else None
            try:
                await self.spool.accept(ticket, rows, request=request)  # type: ignore[arg-type]
            finally:
                self.release(nbytes)
            return
        if isinstance(rows, fanout.Fanned):
            await self._fan_out(ticket, rows, nbytes, wire_bytes)
            return
        await self.enqueue_rows(ticket, rows, nbytes, wire_bytes)

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None:
        """Split rows into parts for the batcher; the ticket settles when every part is delivered (the spool's
        ``Downstream``)."""
        await self.lanes[0].enqueue_rows(ticket, rows, nbytes, wire_bytes)

    async def _fan_out(self, ticket: Ticket, fanned: fanout.Fanned, nbytes: int, wire_bytes: int) -> None:
        """Each target's share of the rows to its lane: the required ones' on the budget ``reserve`` took, an
        optional one's only if its own buffer has room now (else they are dropped for it)."""
        sent = len(fanned.rows[self.required[0].name])
        shares: list[Share] = []

        def settled(_: Share) -> None:
            if all(s.future.done() for s in shares):
                fanout.combine(ticket, shares, sent)

        work = []
        ticket.shares = []
        for lane in self.required:
            share = Share(ticket, lane.name, self.name, ticket.sequence, sent, ticket.deadline, ticket.trace,
                          settled)
            shares.append(share)
            ticket.shares.append((lane, share))
            parts = lane.cut(share, fanned.rows[lane.name], nbytes, wire_bytes)
            share.pending = len(parts)
            work.append((lane, parts))
        for name, n in fanned.dropped.items():
            self._drop(name, n, "rejected")
        for lane in self.optional:
            rows = fanned.rows[lane.name]
            if not rows:
                continue
            if not lane.take(nbytes):
                ticket.upstream[lane.name] = "DROPPED buffer full"
                self._drop(lane.name, len(rows), "buffer_full")
                continue
            ticket.upstream[lane.name] = "QUEUED"
            share = Share(None, lane.name, self.name, ticket.sequence, len(rows), None, ticket.trace,
                          self._optional_done)
            parts = lane.cut(share, rows, nbytes, wire_bytes)
            share.pending = len(parts)
            work.append((lane, parts))
        for i, (lane, parts) in enumerate(work):
            try:
                await lane.put(parts)
            except asyncio.CancelledError:
                # The caller left while its rows were being queued (that lane released its own): the rest
                # are never queued, so their room goes back now.
                for other, rest in work[i + 1:]:
                    other.budget.release(sum(p.nbytes for p in rest))
                raise

    def _optional_done(self, share: Share) -> None:
        f = share.failure
        if f is not None:
            lost = share.total - share.accepted
            if lost > 0:
                self._drop(share.lane, lost, "shutdown" if f.reason == SHUTTING_DOWN.reason else "failed",
                           f"{f.code} {f.reason}: {f.message}")

    def _drop(self, target: str, n: int, reason: str, detail: str = "") -> None:
        lane = next(lane for lane in self.lanes if lane.name == target)
        lane.stats.rows_dropped += n
        if self.metrics is not None:
            self.metrics.dropped_rows.labels(self.name, target, reason).inc(n)
        now = asyncio.get_running_loop().time()
        if now - self._drop_logged.get(target, -1e9) >= 10.0:
            self._drop_logged[target] = now
            log.warning("route=%s target=%s (optional) dropped %d row(s): %s%s", self.name, target, n, reason,
                        f" ({detail})" if detail else "")

    def forget(self, ticket: Ticket, why: str = "the caller's call ended before its rows were delivered") -> None:
        """Nobody waits for this ticket any more: its queued rows leave the queue, and rows in a batch being
        retried leave it before the next attempt. A request already on the wire is not recalled. An optional
        target's rows go on."""
        ticket.withdraw("CANCELLED", why)
        if ticket.shares is None:
            self.lanes[0].forget(ticket)
            return
        for lane, share in ticket.shares:
            share.withdraw("CANCELLED", why)
            lane.forget(share)

    # -- batch side ----------------------------------------------------------------
    def start(self) -> None:
        """Start sending; a spooled route opens its log first (SpoolError if it cannot)."""
        if self.spool is not None:
            self.spool.open()
            self.spool.start({lane.name: lane for lane in self.lanes} if self.fanout else self)
        for lane in self.lanes:
            lane.start()
        self._started.set()

    def drop_gauges(self, current: RoutePipeline | None) -> None:
        """After a reload retired this version: remove the gauge series it fed that the route's ``current``
        version does not feed too (a target renamed or removed, a spool dropped); shared ones are current's."""
        keep = {(id(g), labels) for g, labels in current.gauges} if current is not None else set()
        for g, labels in self.gauges:
            if (id(g), labels) not in keep:
                g.remove(*labels)

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered (linger no longer waits), then stop; what is left fails as UNAVAILABLE."""
        self._closing = True
        for lane in self.lanes:
            lane.closing = True
        if self.spool is not None:
            # Spooled rows are safe on disk: stop handing out more, let the batches in flight finish if they can.
            await self.spool.stop_pump()
        await asyncio.gather(*(lane.close(timeout) for lane in self.lanes))
        if self.spool is not None:
            await self.spool.close()


def _shutting_down() -> BatchRejected:
    return BatchRejected("UNAVAILABLE", "BRIDGE_SHUTTING_DOWN", SHUTTING_DOWN.message, retry_after=1.0)
