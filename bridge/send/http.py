"""One HTTP request as the target will receive it, and the answer as the bridge read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class HttpRequest:
    """One request as the target will receive it. ``url`` already holds the query."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    # Ask the sender to compress the body with this Content-Encoding.
    compression: str | None = None
    # Values a caller may want back whatever the answer (Obsrv's msgid, ...).
    upstream: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    oversize: bool = False  # the target said more than the bridge reads: ``body`` is its beginning

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None
