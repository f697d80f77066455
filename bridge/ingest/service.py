"""Receive stage: the IngestService over grpc.aio.

Reads a stream only as fast as the routes take rows (their byte budgets):
while ``submit`` waits, nothing more is read and HTTP/2 flow control pushes
back to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
from collections.abc import AsyncIterator

import grpc
from google.rpc import status_pb2

from bridge.ingest import acks, status
from bridge.ingest.access import Access, Caller
from bridge.ingest.calls import abort, deadline, shutting_down, traceparent
from bridge.ingest.peeked import Peeked
from bridge.model.errors import BatchRejected
from bridge.model.tickets import SHUTTING_DOWN
from bridge.proto import pb
from bridge.route import offload
from bridge.route.pipeline import RoutePipeline, Ticket

log = logging.getLogger("bridge.ingest.service")

# A request as read off the wire: the message, its size, why it could not be parsed (None when it could), and
# its wire bytes (for the native transcoder). Under the native transcoder a plain RowBatch or ColumnBatch
# request comes as a ``Peeked`` (ingest/peeked.py): upb parses it only if something asks for more.
Sized = tuple[pb.IngestRequest | Peeked, int, str | None, bytes]


class IngestService:
    def __init__(self, routes: dict[str, RoutePipeline], access: Access | None = None,
                 max_pending_acks: int = 1000, max_rows_per_message: int = 100_000, max_calls: int = 1000) -> None:
        self.routes = routes
        # Routes a reload removed, while they deliver what they hold: their callers' acks still need them.
        self.retired: dict[str, RoutePipeline] = {}
        self.max_calls = max_calls
        self.calls = 0  # ingest calls open now
        self.calls_opened = 0  # since start
        self.access = access or Access(None)
        self.max_pending_acks = max_pending_acks
        self.max_rows = max_rows_per_message
        # Set on SIGTERM: no new call or message is taken; open calls end once their admitted batches are
        # answered, with UNAVAILABLE + RetryInfo, so that callers resend the rest to another bridge.
        self.draining = asyncio.Event()

    def drain(self) -> None:
        self.draining.set()

    async def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who is calling; a call without a valid token ends here, before any message is read."""
        try:
            return self.access.caller(context.invocation_metadata())
        except BatchRejected as e:
            await abort(context, acks.rejected_status(e, "", None))
            raise AssertionError("unreachable") from None

    async def _open(self, context: grpc.aio.ServicerContext) -> Caller:
        """A new ingest call: its caller, and one of ``max_calls`` slots (the caller releases it)."""
        caller = await self._caller(context)
        if self.draining.is_set():
            await abort(context, acks.rejected_status(shutting_down(), "", None))
        if self.calls >= self.max_calls:
            e = BatchRejected("UNAVAILABLE", "TOO_MANY_CALLS",
                              f"{self.calls} calls are open, the limit is {self.max_calls} (limits.max_calls); "
                              "retry shortly", {"limit": str(self.max_calls)}, retry_after=1.0)
            await abort(context, acks.rejected_status(e, "", None))
        self.calls += 1
        self.calls_opened += 1
        return caller

    def _route(self, name: str, previous: str, caller: Caller) -> RoutePipeline:
        # An empty name means the stream's previous one, found or not (after an unknown route, its NOT_FOUND
        # again); by name, not the pipeline: a reload may have replaced or removed the route since.
        name = name or previous
        if not name:
            raise BatchRejected(
                "INVALID_ARGUMENT", "ROUTE_REQUIRED",
                "the request names no route (only a message after one that named a route may leave it empty)",
            )
        route = self.routes.get(name)
        if route is None:
            # Only the routes this caller may use are named: the list is not a way to discover the others.
            mine = [r for r in sorted(self.routes) if caller.may_use(r)]
            hint = difflib.get_close_matches(name, mine, n=1)
            raise BatchRejected(
                "NOT_FOUND", "ROUTE_NOT_FOUND",
                f"route {name!r} is not configured" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; configured: {', '.join(mine) or 'none'}",
                {"route": name},
            )
        self.access.check(caller, name)
        return route

    @staticmethod
    def _check_parsed(bad: str | None) -> None:
        if bad is not None:
            raise BatchRejected("INVALID_ARGUMENT", "MALFORMED_REQUEST",
                                f"the message is not an ingestbridge.v1.IngestRequest: {bad}")

    def _check_rows(self, request: pb.IngestRequest) -> None:
        n = acks.request_rows(request)
        if n > self.max_rows:
            raise BatchRejected("INVALID_ARGUMENT", "TOO_MANY_ROWS",
                                f"the message holds {n} rows; the limit is {self.max_rows} "
                                "(limits.max_rows_per_message): split it", {"limit": str(self.max_rows)})

    async def _admit(self, request: pb.IngestRequest, size: int, route: RoutePipeline,
                     context: grpc.aio.ServicerContext, track: list[Ticket] | None = None,
                     raw: bytes | None = None) -> Ticket:
        # Room first, then decode: a caller waiting for room holds its protobuf message, not its decoded rows.
        async with route.admission():
            charge = route.charge(request, size)
            await route.reserve(charge)
            try:
                rows, errors = await offload.prepare(route, request, size, raw)
            except BatchRejected:
                route.release(charge)
                raise
            except BaseException as e:
                route.release(charge)
                if not isinstance(e, Exception):
                    raise
                # A fault in the bridge is INTERNAL with a reason, never an UNKNOWN without one.
                log.exception("route=%s seq=%d cannot decode the request", route.name, request.sequence)
                raise BatchRejected("INTERNAL", "BRIDGE_ERROR",
                                    f"internal error while decoding the request: {type(e).__name__}") from None
            ticket = Ticket(route.name, request.sequence, acks.request_rows(request), errors, deadline(context),
                            trace=traceparent(context.invocation_metadata()))
            if track is not None:
                # Tracked before submit: a caller that leaves now must not strand rows.
                track.append(ticket)
            await route.submit(ticket, rows, charge, size)
        return ticket

    async def _next(self, sized: Sized, previous: str, caller: Caller,
                    context: grpc.aio.ServicerContext, track: list[Ticket] | None = None
                    ) -> tuple[RoutePipeline, Ticket]:
        """One message: its route (empty means the previous one in a stream) and its ticket."""
        request, size, bad, raw = sized
        self._check_parsed(bad)
        route = self._route(request.route, previous, caller)
        self._check_rows(request)
        return route, await self._admit(request, size, route, context, track, raw)

    @staticmethod
    def _name(request: pb.IngestRequest, previous: str) -> str:
        return request.route or previous

    def _ack(self, t: Ticket) -> pb.BatchAck:
        return acks.ticket_ack(t, self._pipeline(t.route).resource_type)

    def _pipeline(self, name: str) -> RoutePipeline:
        """A ticket's route: the configured one, or one a reload removed that still delivers its rows."""
        return self.routes.get(name) or self.retired[name]

    # -- unary -----------------------------------------------------------------------
    async def IngestBatch(self, sized: Sized, context: grpc.aio.ServicerContext) -> pb.BatchAck:
        caller = await self._open(context)
        try:
            return await self._ingest_batch(sized, context, caller)
        finally:
            self.calls -= 1

    async def _ingest_batch(self, sized: Sized, context: grpc.aio.ServicerContext, caller: Caller) -> pb.BatchAck:
        request = sized[0]
        try:
            _, ticket = await self._next(sized, "", caller, context)
        except BatchRejected as e:
            await abort(context, acks.rejected_status(e, request.route, request.sequence))
            raise AssertionError("unreachable") from None
        try:
            t = await ticket.future
        except asyncio.CancelledError:
            self._pipeline(ticket.route).forget(ticket)
            raise
        ack = self._ack(t)
        if t.failure is not None:
            st = status_pb2.Status()
            st.CopyFrom(ack.status)
            st.details.add().Pack(ack)  # the counts and named rows, for callers that want them
            await abort(context, st)
        return ack

    # -- bidirectional -----------------------------------------------------------------
    async def IngestStream(self, requests: AsyncIterator[Sized],
                           context: grpc.aio.ServicerContext) -> AsyncIterator[pb.BatchAck]:
        caller = await self._open(context)
        try:
            async for ack in self._stream(requests, context, caller):
                yield ack
        finally:
            self.calls -= 1

    async def _stream(self, requests: AsyncIterator[Sized], context: grpc.aio.ServicerContext,
                      caller: Caller) -> AsyncIterator[pb.BatchAck]:
        # Bounded: a caller that never reads its acks stops being read, instead of piling them up here.
        room = asyncio.Semaphore(self.max_pending_acks)
        queue: asyncio.Queue[Ticket | pb.BatchAck | None] = asyncio.Queue()
        live: list[Ticket] = []
        reading = True  # the reader waits for the caller's next message (not admitting one)
        cut = False  # the call ends before the caller's last message: it must resend what is not acknowledged

        async def read() -> None:
            nonlocal reading, cut
            previous = ""
            try:
                async for sized in requests:
                    reading = False
                    request = sized[0]
                    await room.acquire()
                    if self.draining.is_set():
                        cut = True  # not admitted, never acknowledged: the caller resends it elsewhere
                        return
                    name = self._name(request, previous)
                    try:
                        _, ticket = await self._next(sized, previous, caller, context, live)
                    except BatchRejected as e:
                        if e.reason == "BRIDGE_SHUTTING_DOWN":
                            cut = True
                            return
                        await queue.put(acks.rejected_ack(e, name, request.sequence, acks.request_rows(request)))
                        continue
                    finally:
                        reading = True
                        previous = name
                    await queue.put(ticket)
            finally:
                queue.put_nowait(None)

        async def next_item() -> Ticket | pb.BatchAck | None:
            nonlocal cut
            if queue.empty() and not self.draining.is_set():
                drain = asyncio.ensure_future(self.draining.wait())
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait({get, drain}, return_when=asyncio.FIRST_COMPLETED)
                drain.cancel()
                if get.done():
                    return get.result()
                get.cancel()
            if self.draining.is_set() and reading and not reader.done():
                # A reader waiting for the caller's next message stops now; one admitting a message finishes
                # it (a spooled record is acknowledged once fsynced).
                cut = True
                reader.cancel()
            return await queue.get()

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await next_item()
                if item is None:
                    break
                if isinstance(item, Ticket):
                    t = await item.future
                    live.remove(item)
                    if t.failure is not None and t.failure.reason == SHUTTING_DOWN.reason:
                        cut = True  # not delivered in time: not acknowledged, the caller resends it
                        break
                    item = self._ack(t)
                yield item
                room.release()
            if cut:
                await abort(context, acks.rejected_status(shutting_down(), "", None))
            await reader
        finally:
            # The caller went away (or the stream ended): nothing here may outlive it. Its rows still queued are
            # withdrawn, rows in a batch being retried leave it before the next attempt; only a request already
            # on the wire goes on (its outcome can no longer reach the caller, who resends what was not acked).
            for t in live:
                self._pipeline(t.route).forget(t)
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    # -- client stream -------------------------------------------------------------------
    async def Ingest(self, requests: AsyncIterator[Sized], context: grpc.aio.ServicerContext) -> pb.IngestSummary:
        caller = await self._open(context)
        try:
            return await self._ingest(requests, context, caller)
        finally:
            self.calls -= 1

    async def _ingest(self, requests: AsyncIterator[Sized], context: grpc.aio.ServicerContext,
                      caller: Caller) -> pb.IngestSummary:
        loop = asyncio.get_running_loop()
        tickets: list[Ticket] = []
        failed: asyncio.Future[status_pb2.Status] = loop.create_future()

        def fail(st: status_pb2.Status) -> None:
            if failed.done():
                return
            failed.set_result(st)
            # The call ends at its first failure: its other rows are withdrawn now, before a worker sends the
            # next batch, so that nothing goes out for a call that has ended and only what the target took
            # is reported delivered.
            for t in tickets:
                if not t.future.done():
                    self._pipeline(t.route).forget(t, "the call ended at an earlier batch's failure")

        def on_done(fut: asyncio.Future[Ticket]) -> None:
            t = fut.result()
            if t.failure is not None and t.gone is None:
                fail(self._ack(t).status)

        async def read() -> None:
            previous = ""
            async for sized in requests:
                if failed.done():
                    return
                request = sized[0]
                if self.draining.is_set():
                    fail(acks.rejected_status(shutting_down(), self._name(request, previous), request.sequence))
                    return
                try:
                    _, ticket = await self._next(sized, previous, caller, context, tickets)
                except BatchRejected as e:
                    fail(acks.rejected_status(e, self._name(request, previous), request.sequence))
                    return
                previous = self._name(request, previous)
                ticket.future.add_done_callback(on_done)

        reader = asyncio.create_task(read())
        try:
            done, _ = await asyncio.wait({reader, failed}, return_when=asyncio.FIRST_COMPLETED)
            if failed not in done:
                await reader
                waiting = [t.future for t in tickets if not t.future.done()]
                if waiting:
                    # Not cancelled when the call fails first: the ticket futures are the pipeline's to resolve.
                    everything = asyncio.gather(*waiting)
                    await asyncio.wait({everything, failed}, return_when=asyncio.FIRST_COMPLETED)
            summary = self._summary(tickets)
            if failed.done():
                st = failed.result()
                delivered = [t.sequence for t in tickets if t.future.done() and t.failure is None]
                out = status_pb2.Status()
                out.CopyFrom(st)
                info = status.error_info(out)
                if info is not None:
                    info_msg, index = info
                    info_msg.metadata["delivered_sequences"] = acks.ranges(delivered)
                    out.details[index].Pack(info_msg)
                out.details.add().Pack(summary)
                await abort(context, out)
            return summary
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            for t in tickets:
                if not t.future.done():
                    self._pipeline(t.route).forget(t)

    def _summary(self, tickets: list[Ticket]) -> pb.IngestSummary:
        summary = pb.IngestSummary()
        for t in tickets:
            if not t.future.done() or t.failure is not None:
                continue
            summary.batches += 1
            summary.accepted += t.accepted
            summary.rejected += t.total - t.accepted
            if t.total - t.accepted:
                summary.failed.append(self._ack(t))
        return summary

    # -- routes ------------------------------------------------------------------------
    async def ListRoutes(self, request: pb.ListRoutesRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ListRoutesResponse:
        caller = await self._caller(context)
        out = pb.ListRoutesResponse()
        for name in sorted(self.routes):
            if not caller.may_use(name):
                continue
            r = self.routes[name]
            info = out.routes.add(name=name, dialect=r.cfg.dialect, max_rows_per_request=r.max_rows)
            for c in r.columns:
                info.columns.add(name=c.name, type=c.type + ("?" if c.nullable else ""), nullable=c.nullable,
                                 base_type=c.type)
            # The route takes the ops every required target can express.
            ops = frozenset.intersection(*(lane.dialect.supported_ops() for lane in r.required))
            info.ops.extend(sorted(int(o) for o in ops))
            for lane in r.lanes:
                info.targets.add(name=lane.name, dialect=lane.cfg.dialect, required=lane.required,
                                 ops=sorted(int(o) for o in lane.dialect.supported_ops()),
                                 max_rows_per_request=lane.max_rows)
        return out

