"""The retry layer: exponential backoff with full jitter, Retry-After as a floor, bounded by deadlines."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime

from bridge.model.config import DeliveryConfig
from bridge.model.outcome import Outcome


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class RetryPolicy:
    def __init__(self, cfg: DeliveryConfig, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, initial * multiplier**(attempt-1))]."""
        c = self.cfg
        ceiling = min(c.max_backoff, c.initial_backoff * c.multiplier ** max(0, attempt - 1))
        return self.rng.uniform(0, ceiling)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        d = self.backoff(attempt)
        return d if retry_after is None else max(d, retry_after)


# The least time worth another attempt: one with less would time out on a busy target and hide its answer.
MIN_ATTEMPT = 0.1

# One attempt with the given timeout; None when there is nothing left to send (no more attempts).
Attempt = Callable[[float], Awaitable[Outcome | None]]


async def with_retries(
    attempt: Attempt,
    policy: RetryPolicy,
    deadline: Callable[[], float | None],
    clock: Callable[[], float] = time.monotonic,
    forever: bool = False,
) -> Outcome | None:
    """Run ``attempt(timeout)`` until it succeeds, fails for good or time runs out.

    ``deadline()`` is on ``clock``: the latest deadline of the callers still waiting, read before each
    attempt (it moves earlier as callers leave). The route's max_elapsed bounds it too, unless
    ``forever`` (durable rows whose order must hold). The last outcome is returned as is, so a
    transient failure still says "retryable" to the caller; DEADLINE_EXCEEDED only once the deadline
    has passed, never because the next wait would not fit in it.
    """
    cfg = policy.cfg
    start = clock()
    n = n500 = 0
    last: Outcome | None = None
    while True:
        d = deadline()
        end = start + cfg.max_elapsed if not forever else float("inf")
        if d is not None:
            end = min(end, d)
        if last is not None and clock() >= end:
            # The wait overran the end (a busy loop): the last real answer stands, not a starved extra attempt.
            return _gave_up(last, d, clock(), 0.0)
        timeout = max(0.001, min(cfg.timeout, end - clock()))
        outcome = await attempt(timeout)
        if outcome is None:
            return None
        n += 1
        if outcome.ok or not outcome.retryable:
            return outcome
        if outcome.http_status == 500 and not forever:
            n500 += 1
            if n500 >= cfg.max_500_attempts:
                return outcome
        if cfg.max_attempts and n >= cfg.max_attempts and not forever:
            return outcome
        wait = policy.delay(n, outcome.retry_after)
        now = clock()
        if now + wait + min(cfg.timeout, MIN_ATTEMPT) >= end:
            return _gave_up(outcome, d, now, wait)
        last = outcome
        await asyncio.sleep(wait)


def _gave_up(outcome: Outcome, caller_deadline: float | None, now: float, wait: float) -> Outcome:
    """The last answer, once no further attempt fits before the end."""
    if caller_deadline is not None and now >= caller_deadline:
        # The caller's own deadline ended the retries: that is what it hears, with the last answer.
        outcome.code, outcome.reason = "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"
        outcome.message = f"the call's deadline passed while retrying; last: {outcome.message}"
    elif outcome.retry_after is None or outcome.retry_after < wait:
        outcome.retry_after = wait
    return outcome
