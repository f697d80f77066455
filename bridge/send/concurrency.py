"""How many requests a route has in flight: a fixed number, or adaptive (AIMD), after Vector's adaptive request
concurrency.

A worker takes a slot before it takes a batch (so rows wait in the batcher, where they can still join a batch,
while the target is busy) and gives it back when the batch is settled. The sender reports every answer:
its round-trip time when it succeeded, and whether it was back pressure (HTTP 429, 503, 504 or a timeout).

Adaptive, per interval of about one mean round trip:

* additive increase: +1 when the interval's requests filled the limit, none met back pressure and their mean
  RTT was no worse than the long-run mean (an EWMA), so the target has shown it takes more. Until the first
  decrease a rise within the noise does not stop the increase either (a start from ``min`` reaches the
  target's capacity in about as many intervals, not two or three times as many);
* multiplicative decrease: x``decrease`` when the mean RTT rose above the long-run mean by more than
  ``deviations`` of its deviation (the target is queueing), and at once on back pressure (the target said
  so), at most once per interval, so one burst of refusals costs one decrease.

Unlike plain AIMD, a limit at which the target refused is remembered: probing at or past it again waits for
more quiet intervals each time it is refused there again (2, 4, 8, ... up to 64), so a target with a hard
capacity sees a refusal now and then, not every few intervals. A probe that passes clears the memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

# Vector's defaults, which its simulations chose: new RTTs weigh 0.4, a rise past 2.5 deviations is queueing.
EWMA_ALPHA = 0.4
DEVIATIONS = 2.5
DECREASE = 0.9
MAX_PROBE_WAIT = 64  # intervals between probes of a limit the target refused, at most

BACK_PRESSURE_STATUS = frozenset({429, 503, 504})


class Limiter:
    """Slots for requests in flight. Fixed when ``adaptive`` is false: ``limit`` never moves."""

    def __init__(self, limit: int, adaptive: bool = False, minimum: int = 1, maximum: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.adaptive = adaptive
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum if maximum is not None else limit)
        self.limit = max(self.minimum, min(self.maximum, limit)) if adaptive else max(1, limit)
        self.clock = clock
        self.held = 0  # slots taken (a worker waiting for a batch holds one)
        self.in_flight = 0  # slots with a batch being delivered
        self._waiters: deque[asyncio.Future[None]] = deque()
        # RTT statistics: the long-run EWMA and its variance, and the current interval's sum and count.
        self._mean: float | None = None
        self._var = 0.0
        self._sum = 0.0
        self._n = 0
        self._next = 0.0  # when the current interval ends
        self._reached = False  # the interval filled the limit
        self._pressure = False  # the interval met back pressure
        self._recovering_until = 0.0  # no second decrease for back pressure before this
        self._ceiling: int | None = None  # the lowest limit the target refused at, since the last passed probe
        self._probe_wait = 0  # quiet intervals needed before probing the ceiling again
        self._quiet = 0  # quiet intervals in a row at the limit just below the ceiling
        self.increases = self.decreases = 0

    # -- slots -------------------------------------------------------------------------------------------
    async def acquire(self) -> None:
        if self.held < self.limit and not self._waiters:
            self.held += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release_slot()  # granted just as it was cancelled: give it on
            else:
                self._waiters.remove(fut)
            raise

    def start(self) -> None:
        """The holder of a slot is sending a batch now."""
        self.in_flight += 1
        if self.in_flight >= self.limit:
            self._reached = True

    def release(self, started: bool = True) -> None:
        if started:
            self.in_flight -= 1
        self._release_slot()

    def _release_slot(self) -> None:
        self.held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.held < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.held += 1
                fut.set_result(None)

    # -- feedback ------------------------------------------------------------------------------------------
    def observe(self, rtt: float | None, back_pressure: bool) -> None:
        """One answer: ``rtt`` when the target took the request (None otherwise), ``back_pressure`` when it said
        it is overloaded or did not answer in time."""
        if not self.adaptive:
            return
        now = self.clock()
        if back_pressure:
            self._pressure = True
            if now >= self._recovering_until:
                self._refused_at(self.limit)
                self._decrease()
                self._recovering_until = now + (self._mean or 0.0)
        if rtt is not None:
            self._sum += rtt
            self._n += 1
        if self._mean is None:
            if self._n:
                self._mean = self._sum / self._n
                self._end_interval(now)
            return
        if now >= self._next:
            self._adjust()
            self._end_interval(now)

    def _end_interval(self, now: float) -> None:
        if self._n and self._mean is not None:
            current = self._sum / self._n
            diff = current - self._mean
            self._mean += EWMA_ALPHA * diff
            self._var = (1 - EWMA_ALPHA) * (self._var + EWMA_ALPHA * diff * diff)
        self._sum, self._n = 0.0, 0
        self._next = now + (self._mean or 0.0)
        self._reached = self.in_flight >= self.limit
        self._pressure = False

    def _adjust(self) -> None:
        assert self._mean is not None
        current = self._sum / self._n if self._n else None
        if self._pressure:
            return  # already decreased when it came
        # A rise within the noise (or within 1 %, when the RTT has been flat) is not queueing.
        threshold = max(DEVIATIONS * self._var ** 0.5, 0.01 * self._mean)
        if current is not None and current > self._mean + threshold:
            self._decrease()
        elif (self._reached and current is not None and (current <= self._mean or not self.decreases)
              and self.limit < self.maximum):
            if self._ceiling is not None and self.limit >= self._ceiling:
                self._ceiling, self._probe_wait = None, 0  # a probe passed: the target takes more now
            elif self._ceiling is not None and self.limit + 1 >= self._ceiling:
                self._quiet += 1
                if self._quiet < self._probe_wait:
                    return
            self._quiet = 0
            self.limit += 1
            self.increases += 1
            self._wake()

    def _refused_at(self, limit: int) -> None:
        if self._ceiling is not None and limit >= self._ceiling:
            self._probe_wait = min(MAX_PROBE_WAIT, max(2, self._probe_wait * 2))
        else:
            self._probe_wait = max(2, self._probe_wait)
        self._ceiling = limit if self._ceiling is None else min(self._ceiling, limit)
        self._quiet = 0

    def _decrease(self) -> None:
        new = max(self.minimum, int(self.limit * DECREASE))
        if new < self.limit:
            self.limit = new
            self.decreases += 1
