"""What every emulator shares: a loopback aiohttp server that records requests."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import zstandard
from aiohttp import web


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


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class Emulator:
    """Subclasses add routes in ``routes()``; ``requests`` keeps every request, ``rows`` what was accepted."""

    name = "emulator"

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.rows: list[Any] = []
        self.bytes_in = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def demo_route(self) -> dict:
        """A route config (the YAML mapping) that sends to this emulator, for ``ingest-bridge demo``."""
        raise NotImplementedError

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
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
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
