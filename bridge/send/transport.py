"""The HTTP client: one pooled aiohttp session for the whole bridge."""

from __future__ import annotations

import aiohttp
from yarl import URL

from bridge import __version__
from bridge.send.http import HttpRequest, HttpResponse

# The most of an answer the bridge reads. Past it the answer is marked
# ``oversize``: error text is cut there, and a dialect that must read a
# success body (Axiom's counts) cannot say the rows were taken.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024
USER_AGENT = f"ingest-bridge/{__version__}"


class TransportError(Exception):
    """No whole HTTP answer: ``kind`` is "timeout", "connect" or "incomplete" (the body was cut)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Transport:
    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, enable_cleanup_closed=True),
                headers={"User-Agent": USER_AGENT},
                auto_decompress=True,
            )
        return self._session

    async def send(self, request: HttpRequest, body: bytes, headers: dict[str, str], timeout: float) -> HttpResponse:
        session = self._open()
        try:
            async with session.request(
                request.method,
                # Sent as built: the dialects escaped every name, and nothing may resolve "%2E%2E" away.
                URL(request.url, encoded=True),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                data, oversize = await _read_body(resp)
                return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, data, oversize)
        except TimeoutError:
            raise TransportError("timeout", f"no answer from the target within {timeout:g}s") from None
        except aiohttp.ClientPayloadError as e:
            raise TransportError("incomplete", f"the target's answer was cut off: {e}") from None
        except aiohttp.ClientError as e:
            raise TransportError("connect", f"cannot reach the target: {type(e).__name__}: {e}") from None
        except OSError as e:
            raise TransportError("connect", f"cannot reach the target: {e.strerror or e}") from None

    async def get(self, url: str, headers: dict[str, str], timeout: float) -> HttpResponse:
        return await self.send(HttpRequest("GET", url, headers, b""), b"", headers, timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_body(resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """The whole body up to MAX_RESPONSE_BYTES, and whether there was more (``read(n)`` returns only what
    has arrived so far: a slow or large answer would be cut without a word)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            chunks.append(chunk[: len(chunk) - (size - MAX_RESPONSE_BYTES)])
            resp.close()  # the rest is never read: this connection cannot be reused
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False
