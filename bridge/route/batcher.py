"""The batch stage of one route: parts wait here, in arrival order, until they leave as a batch.

A batch is parts of one shape (rows of the same columns share a request), up
to ``max_rows`` and about ``max_bytes``, sent once it is full or its oldest
part has waited ``linger``. Unordered routes gather every waiting part of a
shape into a batch; ordered routes (rows that carry ops) take only the run of
parts at the head of the queue, so rows leave in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from bridge.model.tickets import Part, Ticket


class Batcher:
    def __init__(self, max_rows: int, max_bytes: int, linger: float, ordered: bool,
                 release: Callable[[int], None]) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.linger = linger
        self.ordered = ordered
        self._release = release  # gives a part's bytes back to the route's budget
        self._queue: deque[Part] = deque()
        # Per shape: the waiting rows and their estimated encoded bytes, in one entry so they cannot drift apart.
        self._waiting: dict[object, list[int]] = {}
        self._cond: asyncio.Condition | None = None
        self.closing = False

    def __len__(self) -> int:
        return len(self._queue)

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def put(self, parts: list[Part]) -> None:
        cond = self._condition()
        try:
            await cond.acquire()
        except asyncio.CancelledError:
            for p in parts:  # the caller left before its rows were queued
                self._release(p.nbytes)
            raise
        try:
            for p in parts:
                self._queue.append(p)
                self._count(p, 1)
            cond.notify(len(parts))
        finally:
            cond.release()

    def _count(self, p: Part, sign: int) -> None:
        shape = p.rows.shape
        w = self._waiting.setdefault(shape, [0, 0])
        w[0] += sign * len(p.rows)
        w[1] += sign * p.body_bytes
        if not w[0]:
            del self._waiting[shape]

    def forget(self, ticket: Ticket) -> None:
        """Drop a ticket's parts that still wait for a batch (nobody waits for them any more)."""
        if not any(p.ticket is ticket for p in self._queue):
            return
        keep: deque[Part] = deque()
        for p in self._queue:
            if p.ticket is ticket:
                self._count(p, -1)
                self._release(p.nbytes)
            else:
                keep.append(p)
        self._queue = keep

    async def wake(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def drain(self) -> list[Part]:
        """Every part still waiting (the route is closing)."""
        parts = list(self._queue)
        self._queue.clear()
        self._waiting.clear()
        return parts

    # -- taking a batch ----------------------------------------------------------------------------
    def _head_run(self) -> tuple[int, int, bool]:
        """Rows and bytes of the run of same-shape parts at the head, and whether another shape follows it."""
        shape = self._queue[0].rows.shape
        rows = size = 0
        for p in self._queue:
            if p.rows.shape != shape:
                return rows, size, True
            rows += len(p.rows)
            size += p.body_bytes
            if rows >= self.max_rows or size >= self.max_bytes:
                break
        return rows, size, False

    def _ready(self, now: float) -> tuple[object, float | None]:
        """A shape to take now, or how long until the head part has lingered enough."""
        if not self._queue:
            return _NONE, None
        head = self._queue[0]
        # The head is the oldest part of all: when it has not waited long enough, no other part has.
        if self.closing or now - head.since >= self.linger:
            return head.rows.shape, None
        if self.ordered:
            rows, size, blocked = self._head_run()
            if blocked or rows >= self.max_rows or size >= self.max_bytes:
                return head.rows.shape, None
        else:
            for shape, (rows, size) in self._waiting.items():
                if rows >= self.max_rows or size >= self.max_bytes:
                    return shape, None
        return _NONE, head.since + self.linger - now

    def _take(self, shape: object) -> list[Part]:
        taken: list[Part] = []
        keep: deque[Part] = deque()
        rows = size = 0
        full = False
        now = time.monotonic()
        for p in self._queue:
            if full or p.rows.shape != shape:
                keep.append(p)
                full = full or self.ordered  # ordered: only the run at the head
                continue
            if taken and not fits(rows, size, len(p.rows), p.body_bytes, self.max_rows, self.max_bytes):
                keep.append(p)
                full = True
                continue
            self._count(p, -1)
            if not p.ticket.wanted(now):
                self._release(p.nbytes)  # nobody waits for these rows: the caller resends what was not acknowledged
                continue
            taken.append(p)
            rows += len(p.rows)
            size += p.body_bytes
        self._queue = keep
        return taken

    async def next_batch(self) -> list[Part] | None:
        """The next batch to send; None once the route is closing and nothing is left."""
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
                if self.closing:
                    return None
                # asyncio.timeout, not wait_for: no task per wait (cond.wait() holds the lock again either way).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await cond.wait()


def fits(rows: int, size: int, part_rows: int, part_bytes: int, max_rows: int, max_bytes: int) -> bool:
    """Whether a part joins a batch of ``rows`` and ``size`` (a batch's first part always does)."""
    return rows + part_rows <= max_rows and size + part_bytes <= max_bytes


class _NoShape:
    pass


_NONE = _NoShape()
