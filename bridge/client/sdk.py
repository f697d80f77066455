"""A small async client for the bridge: batches rows, streams them over IngestStream, resends what was not acked.

    async with IngestClient("127.0.0.1:50051", "clicks") as client:
        for event in events:
            await client.add({"id": 1, "name": "a"})       # JSON objects
    print(client.accepted, client.rejected, client.failed)

With ``columns=[...]`` rows are tuples sent as typed values (RowBatch).
At most ``window`` batches wait for their acks; a stream that drops
(UNAVAILABLE, a lost connection, a bridge draining or going away) is opened
again after a bounded backoff (``Reconnect``) and every batch not
acknowledged is sent again, so nothing is lost (the target may see a batch
twice: at-least-once). ``target`` may name several bridges
(``host1:port,host2:port`` or ``dns:///name:port``): streams go round robin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from bridge.client.resume import Reconnect, ack_retryable, channel_target, resumable
from bridge.proto import pb, pb_grpc

__all__ = ["Connection", "IngestClient", "Reconnect", "Totals", "stream", "to_value"]


@dataclass(frozen=True)
class Connection:
    """How to reach the bridge: TLS when ``ca`` is set (mTLS with ``cert`` and ``key``), a bearer ``token``."""

    token: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    # Seconds between HTTP/2 pings on a quiet connection: a bridge that stopped answering (frozen, cut off
    # by the network) is found out within keepalive + keepalive_timeout, and its batches go to another.
    keepalive: float = 20.0
    keepalive_timeout: float = 10.0

    def channel(self, target: str) -> grpc.aio.Channel:
        target, options = channel_target(target)
        options += [("grpc.keepalive_time_ms", int(self.keepalive * 1000)),
                    ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout * 1000))]
        if self.ca is None:
            if self.cert or self.key:
                raise ValueError("a client certificate needs TLS: give the CA that signed the bridge's certificate")
            return grpc.aio.insecure_channel(target, options=options)

        def read(path: str | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        creds = grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))
        return grpc.aio.secure_channel(target, creds, options=options)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None

    def __repr__(self) -> str:
        return f"Connection(token={'***' if self.token else None}, ca={self.ca!r}, cert={self.cert!r})"


def to_value(v: Any) -> pb.Value:
    """A Python value as a typed Value (None, bool, int, float, str, bytes, datetime, list, dict)."""
    if v is None:
        return pb.Value(null=0)
    if isinstance(v, bool):
        return pb.Value(bool=v)
    if isinstance(v, int):
        return pb.Value(int=v) if v < 2**63 else pb.Value(uint=v)
    if isinstance(v, float):
        return pb.Value(double=v)
    if isinstance(v, str):
        return pb.Value(string=v)
    if isinstance(v, bytes):
        return pb.Value(bytes=v)
    if isinstance(v, datetime):
        ts = Timestamp()
        ts.FromDatetime(v)
        return pb.Value(timestamp=ts)
    if isinstance(v, dict):
        m = pb.MapValue()
        for k, x in v.items():
            m.fields[str(k)].CopyFrom(to_value(x))
        return pb.Value(map=m)
    if isinstance(v, (list, tuple)):
        return pb.Value(list=pb.ListValue(values=[to_value(x) for x in v]))
    raise TypeError(f"no Value for {type(v).__name__}")


@dataclass
class Totals:
    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    resent: int = 0
    streams: int = 0  # IngestStream calls opened (1 + reconnects)
    failed: list[pb.BatchAck] = field(default_factory=list)  # acks with a non-OK status
    row_errors: list[tuple[int, pb.RowError]] = field(default_factory=list)  # (sequence, error), first 100


class _Resume(Exception):
    """The bridge answered a batch UNAVAILABLE: open a new stream (perhaps to another bridge) and resend."""


async def stream(target: str | grpc.aio.Channel, requests: AsyncIterator[pb.IngestRequest], window: int = 32,
                 retries: int | None = None, totals: Totals | None = None,
                 on_ack: Callable[[pb.BatchAck], None] | None = None,
                 connection: Connection | None = None, reconnect: Reconnect | None = None) -> Totals:
    """Send every request over IngestStream, at most ``window`` unacknowledged, resending after a dropped stream.

    ``reconnect`` bounds the waits between streams (``retries``, when given, replaces its ``max_attempts``).
    Raises grpc.aio.AioRpcError when the bridge cannot be used (a non-retryable error, or the reconnect
    policy used up with no ack).
    """
    policy = reconnect or Reconnect()
    max_attempts = policy.max_attempts if retries is None else retries
    totals = totals or Totals()
    pending: dict[int, pb.IngestRequest] = {}
    source = aiter(requests)
    exhausted = False
    connection = connection or Connection()
    own = isinstance(target, str)
    channel = connection.channel(target) if isinstance(target, str) else target
    stub = pb_grpc.IngestServiceStub(channel)

    reading: asyncio.Future | None = None  # the source's next request, being read

    class _Ended(Exception):
        """A write failed because the call ended: the reader reports the call's status."""

    async def on_call(op) -> None:
        try:
            await op
        except asyncio.CancelledError:
            raise
        except Exception:  # grpc may raise its own internal error here before the status arrives
            raise _Ended from None

    async def writer(call, room: asyncio.Semaphore) -> None:
        try:
            await write_all(call, room)
        except _Ended:
            return

    async def write_all(call, room: asyncio.Semaphore) -> None:
        nonlocal exhausted, reading
        for req in list(pending.values()):  # resend what was never acknowledged
            await room.acquire()
            await on_call(call.write(req))
        while not exhausted:
            await room.acquire()
            if reading is None:
                reading = asyncio.ensure_future(anext(source))
            try:
                # Shielded: a stream dropped meanwhile must not cancel the read (that would end the source,
                # and lose the rows it was reading); the next stream takes the same read over, even when it
                # finished just as this writer was cancelled.
                req = await asyncio.shield(reading)
            except StopAsyncIteration:
                exhausted = True
                break
            reading = None
            pending[req.sequence] = req
            await on_call(call.write(req))
        await on_call(call.done_writing())

    attempt = 0
    progress = time.monotonic()  # the last ack (or the start)

    def used_up() -> bool:
        return bool(max_attempts and attempt >= max_attempts) or time.monotonic() - progress >= policy.give_up_after
    try:
        while True:
            call = stub.IngestStream(metadata=connection.metadata)
            totals.streams += 1
            room = asyncio.Semaphore(window)
            totals.resent += len(pending)
            task = asyncio.create_task(writer(call, room))
            # The requests' source failed (a file that stops making sense): end the call, or its acks never end.
            task.add_done_callback(lambda t, call=call: call.cancel() if _failed(t) else None)
            try:
                async for ack in call:
                    room.release()
                    if ack.sequence not in pending:
                        continue
                    if ack_retryable(ack.status) and not used_up():
                        raise _Resume
                    del pending[ack.sequence]
                    attempt, progress = 0, time.monotonic()
                    totals.batches += 1
                    totals.accepted += ack.accepted
                    totals.rejected += ack.rejected
                    if ack.status.code != 0:
                        totals.failed.append(ack)
                    for e in ack.errors:
                        if len(totals.row_errors) < 100:
                            totals.row_errors.append((ack.sequence, e))
                    if on_ack is not None:
                        on_ack(ack)
                await task
                return totals
            except (grpc.aio.AioRpcError, asyncio.CancelledError, _Resume) as e:
                if _failed(task):
                    raise task.exception() from None  # type: ignore[misc]
                task.cancel()
                call.cancel()
                if isinstance(e, asyncio.CancelledError):
                    raise
                if isinstance(e, grpc.aio.AioRpcError) and (not resumable(e) or used_up()):
                    raise
                attempt += 1
                await asyncio.sleep(policy.delay(attempt))
    finally:
        if reading is not None and not reading.done():
            reading.cancel()
        if own:
            await channel.close()


def _failed(task: asyncio.Task) -> bool:
    """The writer ended with an error of its own (not a gRPC one, not a write to a call that ended, not a cancel)."""
    return (task.done() and not task.cancelled() and task.exception() is not None
            and not isinstance(task.exception(), (grpc.aio.AioRpcError, asyncio.InvalidStateError)))


class IngestClient:
    """Batches rows for one route and streams them to the bridge in the background."""

    def __init__(self, target: str, route: str, batch_rows: int = 1000, window: int = 32,
                 columns: Sequence[str] | None = None, retries: int | None = None,
                 connection: Connection | None = None, reconnect: Reconnect | None = None) -> None:
        self.target, self.route, self.batch_rows = target, route, batch_rows
        self.connection = connection
        self.columns = list(columns) if columns is not None else None
        self.totals = Totals()
        self._window, self._retries, self._reconnect = window, retries, reconnect
        self._rows: list = []
        self._seq = 0
        self._queue: asyncio.Queue[pb.IngestRequest | None] = asyncio.Queue(maxsize=window)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> IngestClient:
        self._task = asyncio.create_task(stream(self.target, self._requests(), self._window, self._retries,
                                                self.totals, connection=self.connection,
                                                reconnect=self._reconnect))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def accepted(self) -> int:
        return self.totals.accepted

    @property
    def rejected(self) -> int:
        return self.totals.rejected

    @property
    def failed(self) -> list[pb.BatchAck]:
        return self.totals.failed

    async def _requests(self) -> AsyncIterator[pb.IngestRequest]:
        while (req := await self._queue.get()) is not None:
            yield req

    def _batch(self, rows: list) -> pb.IngestRequest:
        req = pb.IngestRequest(route=self.route, sequence=self._seq)
        self._seq += 1
        if self.columns is None:
            req.json.objects.extend(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS) for r in rows)
        else:
            req.rows.columns.extend(self.columns)
            for r in rows:
                req.rows.rows.add().values.extend(to_value(v) for v in r)
        return req

    async def add(self, row: dict | Sequence) -> None:
        """Buffer one row; waits while ``window`` batches are unacknowledged (backpressure)."""
        if self.columns is not None and len(row) != len(self.columns):
            raise ValueError(f"row has {len(row)} values for {len(self.columns)} columns")
        self._rows.append(row)
        if len(self._rows) >= self.batch_rows:
            await self.flush()

    async def add_many(self, rows: Iterable[dict | Sequence]) -> None:
        for row in rows:
            await self.add(row)

    async def flush(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            await self._put(self._batch(rows))

    async def _put(self, item: pb.IngestRequest | None) -> None:
        if self._task is None:
            raise RuntimeError("use IngestClient as 'async with IngestClient(...) as client'")
        put = asyncio.ensure_future(self._queue.put(item))
        done, _ = await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            self._task.result()  # the stream ended: raise its error

    async def close(self) -> Totals:
        """Send what is buffered, wait for every ack, and return the totals."""
        if self._task is None:
            return self.totals
        await self.flush()
        if not self._task.done():
            await self._put(None)
        await self._task
        return self.totals

