"""What every emulator shares: a loopback aiohttp server that records requests, and scripted answers.

Scripted answers are one queue, kept here, with one signature, ``(status, body=None, headers=None, times=1)``;
a body is sent as is when bytes, else as JSON (``None``: ``{"message": "scripted <status>"}``):

* ``fail_next``: the next ingest requests are answered so and the target never looks at them (no rows kept).
* ``lose_answer_next``: the next ingest requests are handled as the target would (rows kept), then answered
  so instead: the answer lost after the write, which only a batch id can make safe.

When a scripted answer is given is one rule: as a real target fails, after its credential check (a request
with bad credentials gets the target's own 401 or 403, and the scripted answer waits for the next request).
An emulator that checks credentials sets ``checks_credentials`` and its ingest handlers call ``scripted()``
right after the check; for the others the base answers the script before the handler, for every POST but the
``/_`` control paths.
"""

from __future__ import annotations

import gzip
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import zstandard
from aiohttp import web

from bridge.model.errors import ListenError


@dataclass
class Captured:
    """One request as the target saw it (body decompressed; ``raw`` as sent)."""

    method: str
    path: str
    raw_path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    raw: bytes
    body: bytes
    rows: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    """A scripted answer: its status, body (bytes as is, anything else as JSON) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if isinstance(self.body, bytes):
            return web.Response(body=self.body, status=self.status, headers=self.headers)
        body = {"message": f"scripted {self.status}"} if self.body is None else self.body
        return web.json_response(body, status=self.status, headers=self.headers)


_LOST = web.RequestKey("scripted_lost_answer", Answer)  # the lose_answer_next answer a request was given


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class Kept(deque):
    """The last ``maxlen`` items, and ``total``: how many were ever added (for a long-running emulator)."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen=maxlen)
        self.total = 0

    def append(self, item: Any) -> None:
        self.total += 1
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        items = list(items)
        self.total += len(items)
        super().extend(items)


def total(items: list | Kept) -> int:
    """How many items were ever added: all of a list, or a window's count."""
    return items.total if isinstance(items, Kept) else len(items)


class Emulator:
    """Subclasses add routes in ``routes()``; ``requests`` keeps every request, ``rows`` what was accepted.

    ``keep(n)`` bounds them (and ``row_logs``, other per-row records) to the last n, counting the rest.
    """

    name = "emulator"
    # True: the ingest handlers call scripted() right after their credential check; False: the base answers
    # the script before the handler (the target checks no credentials).
    checks_credentials = False
    row_logs: tuple[str, ...] = ()  # attributes that grow by one item per row or request

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.rows: list[Any] = []
        self.bytes_in = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._answers: list[Answer] = []
        self._lost: list[Answer] = []

    def fail_next(self, status: int, body: Any = None, headers: dict | None = None, times: int = 1) -> None:
        """Answer the next ``times`` ingest requests with this status and body (bytes as is, else JSON), keeping
        nothing; after the credential check where the target has one."""
        self._answers += [Answer(status, body, headers or {})] * times

    def clear_answers(self) -> None:
        """Drop the ``fail_next`` and ``lose_answer_next`` answers not given yet (the target is back)."""
        self._answers.clear()
        self._lost.clear()

    def lose_answer_next(self, status: int, body: Any = None, headers: dict | None = None, times: int = 1) -> None:
        """Take the next ``times`` ingest requests as usual, then answer them with this instead."""
        self._lost += [Answer(status, body, headers or {})] * times

    def scripted(self, request: web.Request) -> web.Response | None:
        """The script's turn for an ingest request past the credential check: a ``fail_next`` answer to give
        now, or None (a ``lose_answer_next`` answer taken now is given once the handler has kept the rows)."""
        if self._answers:
            return self._answers.pop(0).response()
        if self._lost:
            request[_LOST] = self._lost.pop(0)
        return None

    @web.middleware
    async def _scripted(self, request: web.Request, handler) -> web.StreamResponse:
        if not self.checks_credentials and request.method == "POST" and not request.path.startswith("/_"):
            answer = self.scripted(request)
            if answer is not None:
                await self._record(request)
                return answer
        response = await handler(request)
        lost = request.get(_LOST)
        return response if lost is None else lost.response()

    async def _record(self, request: web.Request) -> None:
        """Keep a request the target never looked at (a body it could not inflate is kept as sent)."""
        raw = await request.read()
        self.bytes_in += len(raw)
        try:
            body = decompress(raw, request.headers.get("Content-Encoding", ""))
        except ValueError:
            body = raw
        self.requests.append(Captured(request.method, request.path, request.raw_path,
                                      list(request.query.items()), dict(request.headers), raw, body))

    def keep(self, rows: int) -> None:
        """Keep the last ``rows`` rows (and as many per-row records), the last ``min(rows, 10)`` requests."""
        self.rows = Kept(rows)
        self.requests = Kept(max(1, min(rows, 10)))  # a request holds its body and rows: few of them
        for name in self.row_logs:
            setattr(self, name, Kept(rows))

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def demo_route(self) -> dict:
        """A route config (the YAML mapping) that sends to this emulator, for ``ingest-bridge demo``."""
        raise NotImplementedError

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self._scripted])
        self.routes(app)
        return app

    async def capture(self, request: web.Request) -> Captured:
        raw = await request.read()
        self.bytes_in += len(raw)
        enc = request.headers.get("Content-Encoding", "")
        body = decompress(raw, enc)
        cap = Captured(
            request.method, request.path, request.raw_path, list(request.query.items()),
            dict(request.headers), raw, body,
        )
        self.requests.append(cap)
        return cap

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        # The emulators read raw request bodies themselves, so aiohttp must not inflate them.
        self._runner = web.AppRunner(self.app(), access_log=None, auto_decompress=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            raise ListenError("emulator", f"{host}:{port}", reason) from None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
