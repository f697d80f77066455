"""Transcoding large requests on a small thread pool, so that the native decode (which releases the GIL for
requests of at least 64 KiB, native/src/py.rs) runs beside the event loop on another core.

``INGEST_BRIDGE_TRANSCODE_THREADS`` sets the pool's size; 0 transcodes every request inline on the event
loop. Only requests the native transcoder takes and that are large enough for it to release the GIL go to
the pool: the Python transcoder holds the GIL throughout, so a thread would only add a hand-off.
Messages of one stream are still transcoded one at a time, in order (the service awaits each).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from bridge.model.rows import RowError, Rows

if TYPE_CHECKING:
    from bridge.route.fanout import Fanned
    from bridge.route.pipeline import RoutePipeline

THREADS_ENV = "INGEST_BRIDGE_TRANSCODE_THREADS"
# Below this the native decode keeps the GIL (native/src/py.rs): nothing would run beside it.
MIN_BYTES = 64 * 1024
DEFAULT_THREADS = 0

_pool: ThreadPoolExecutor | None = None


def threads() -> int:
    """The pool's size from the environment (0: inline); a bad value is a clear error at start-up."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={raw}: expected a whole number of threads (0 transcodes inline)") from None
    if not 0 <= n <= 64:
        raise ValueError(f"{THREADS_ENV}={n}: expected 0 to 64 threads (0 transcodes inline)")
    return n


def pool() -> ThreadPoolExecutor | None:
    """The process's transcode pool, made on first use; None where requests are transcoded inline."""
    global _pool
    if _pool is None and (n := threads()):
        _pool = ThreadPoolExecutor(n, thread_name_prefix="transcode")
    return _pool


def _native(route: RoutePipeline) -> bool:
    """Whether any of the route's targets (lanes) reads requests with the native transcoder."""
    return any(getattr(lane.transcoder, "name", "") == "native" for lane in route.lanes)


async def prepare(route: RoutePipeline, request: Any, size: int, raw: bytes | None
                  ) -> tuple[Rows | Fanned, list[RowError]]:
    """``route.prepare(request, size, raw)``, on the pool where it is worth it, else inline."""
    executor = pool()
    if executor is None or size < MIN_BYTES or not _native(route):
        return route.prepare(request, size, raw)
    return await asyncio.get_running_loop().run_in_executor(executor, route.prepare, request, size, raw)
