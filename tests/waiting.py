"""Waiting for a condition instead of sleeping a fixed time: fast when it holds early, bounded when it never does."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(predicate: Callable[[], object | Awaitable[object]], timeout: float = 10.0,
                     interval: float = 0.01, what: str = "") -> None:
    """Poll ``predicate`` (a plain or async callable) until it is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout:g}s: {what or getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(interval)
