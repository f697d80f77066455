"""Bounded memory in bytes: a route's and the bridge's buffered rows.

``acquire`` waits while the bytes would pass a cap; the receive stage then
stops reading from the caller, and HTTP/2 flow control pushes back to it.
A request alone larger than a cap is let in when nothing else is buffered,
so that it cannot wait forever.
"""

from __future__ import annotations

import asyncio


class ByteBudget:
    def __init__(self, cap: int, parent: ByteBudget | None = None) -> None:
        self.cap = cap
        self.used = 0
        self.peak = 0
        self.parent = parent
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def blocked(self) -> bool:
        """Someone waits for room, or there is none."""
        return bool(self._waiters) or self.used >= self.cap

    def _fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.cap

    def fits(self, n: int) -> bool:
        return self._fits(n) and (self.parent is None or self.parent.fits(n))

    async def acquire(self, n: int) -> None:
        while not self.fits(n):
            full = self if not self._fits(n) else self.parent
            assert full is not None
            fut = asyncio.get_running_loop().create_future()
            full._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in full._waiters:
                    full._waiters.remove(fut)
        self._take(n)

    def try_acquire(self, n: int) -> bool:
        """Take ``n`` now if it fits and nobody waits (an optional target's buffer never waits): False if not."""
        if self._waiters or not self.fits(n):
            return False
        self._take(n)
        return True

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)
        if self.parent is not None:
            self.parent._take(n)

    def release(self, n: int) -> None:
        self.used -= n
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        if self.parent is not None:
            self.parent.release(n)
