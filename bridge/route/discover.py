"""``columns: discover``: a route reads its target's columns, and reads them again until it can.

Until the columns are known the route takes nothing (callers get UNAVAILABLE with RetryInfo, reason
``SCHEMA_UNKNOWN``) and its health is NOT_SERVING: the bridge never guesses a schema. The dialect says
which request reads the schema and how its answer maps to columns (``Dialect.schema_request`` and
``schema_columns``); this module sends it, with backoff and jitter between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from bridge.dialects.schema import SchemaError
from bridge.model.config import ColumnSpec
from bridge.ops.redact import Redactor, route_secrets
from bridge.send.transport import Transport, TransportError

log = logging.getLogger("bridge.route.discover")

FIRST_DELAY = 0.5
MOST_DELAY = 30.0


class Discovery:
    """One route's schema reader. ``columns`` is None until read; ``problem`` says why it is not."""

    def __init__(self, dialect: Any, transport: Transport | None,
                 on_columns: Callable[[tuple[ColumnSpec, ...]], None], timeout: float = 10.0,
                 first_delay: float = FIRST_DELAY, most_delay: float = MOST_DELAY) -> None:
        self.dialect = dialect
        self.transport = transport
        self.on_columns = on_columns
        self.timeout = timeout
        self.first_delay, self.most_delay = first_delay, most_delay
        self.columns: tuple[ColumnSpec, ...] | None = None
        self.problem: str | None = "the target's schema has not been read yet"
        self.attempts = 0
        self._redact = Redactor(route_secrets(dialect.route))
        self._task: asyncio.Task | None = None
        self._tried = asyncio.Event()  # set after the first attempt, whatever it found

    async def read(self) -> tuple[ColumnSpec, ...]:
        """One attempt: the target's columns, or SchemaError saying why not (secrets masked)."""
        assert self.transport is not None
        req = self.dialect.schema_request()
        self.attempts += 1
        try:
            resp = await self.transport.send(req, b"", dict(req.headers), self.timeout)
        except TransportError as e:
            raise SchemaError(self._redact(e.detail)) from None
        if resp.status != 200:
            text = resp.body[:300].decode("utf-8", "replace").strip()
            raise SchemaError(self._redact(f"the target answered {resp.status} to {req.method} "
                                           f"{_path(req.url)}: {text}".rstrip(": ")))
        body = resp.json()
        if body is None:
            raise SchemaError(f"the target's answer to {_path(req.url)} is not JSON")
        try:
            cols = self.dialect.schema_columns(body)
        except SchemaError as e:
            raise SchemaError(self._redact(f"{_path(req.url)}: {e}")) from None
        return cols

    def start(self) -> None:
        """Read in the background until the columns are known (idempotent)."""
        if self._task is None and self.columns is None:
            self._task = asyncio.create_task(self._run(), name=f"discover-{self.dialect.route.name}")

    async def first_attempt(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the first attempt has an answer, or none in time."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), timeout)

    async def _run(self) -> None:
        name = self.dialect.route.name
        delay = self.first_delay
        while True:
            try:
                cols = await self.read()
            except SchemaError as e:
                self.problem = f"cannot read the target's schema: {e.args[0]}"
                self._tried.set()
                if self.attempts == 1 or self.attempts % 10 == 0:
                    log.warning("route=%s %s (attempt %d; trying again)", name, self.problem, self.attempts)
                await asyncio.sleep(random.uniform(delay / 2, delay))  # jitter: bridges do not retry together
                delay = min(self.most_delay, delay * 2)
                continue
            self._found(cols)
            self._tried.set()
            return

    def _found(self, cols: tuple[ColumnSpec, ...]) -> None:
        self.columns, self.problem = cols, None
        self.on_columns(cols)
        log.info("route=%s read the target's schema: %s", self.dialect.route.name,
                 ", ".join(f"{c.name}: {c.type}{'?' if c.nullable else ''}" for c in cols))

    async def refresh(self) -> None:
        """Read again (a reload): new columns apply; a failure keeps the known ones (never a guess)."""
        if self.columns is None:
            self.start()
            return
        try:
            cols = await self.read()
        except SchemaError as e:
            log.warning("route=%s cannot read the target's schema again, the known columns stay: %s",
                        self.dialect.route.name, e.args[0])
            return
        if cols != self.columns:
            self._found(cols)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _path(url: str) -> str:
    """The URL without its query (which may hold credentials on an http route)."""
    return url.split("?", 1)[0]
