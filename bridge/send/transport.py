"""The HTTP client: one pooled aiohttp session for the whole bridge."""

from __future__ import annotations

import aiohttp
from yarl import URL

from bridge import __version__
from bridge.dialects.base import HttpRequest, HttpResponse

# Error bodies are for messages only; a target that streams megabytes of
# error text is cut here.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
USER_AGENT = f"ingest-bridge/{__version__}"


class TransportError(Exception):
    """No HTTP answer: ``kind`` is "timeout" or "connect"."""

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
                data = await resp.content.read(MAX_RESPONSE_BYTES)
                return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, data)
        except TimeoutError:
            raise TransportError("timeout", f"no answer from the target within {timeout:g}s") from None
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
