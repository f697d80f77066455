"""Inbound access: which caller may use which route, from ``authorization: Bearer <token>`` metadata.

Tokens are kept and compared as SHA-256 digests, so a lookup takes the same
time whatever the token, and the plain text is never held past start-up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.model.config import AccessConfig
from bridge.model.errors import BatchRejected


@dataclass(frozen=True)
class Caller:
    name: str
    routes: frozenset[str] | None  # None: every route

    def may_use(self, route: str) -> bool:
        return self.routes is None or route in self.routes


ANYONE = Caller("anonymous", None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Access:
    """``caller(metadata)`` names who is calling, or raises BatchRejected(UNAUTHENTICATED)."""

    def __init__(self, config: AccessConfig | None) -> None:
        self.required = config is not None
        self._callers = {_digest(t.token.value): Caller(t.name, t.routes) for t in (config.tokens if config else ())}

    def caller(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Caller:
        if not self.required:
            return ANYONE
        header = None
        for key, value in metadata or ():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode("latin-1")
                break
        if header is None:
            raise BatchRejected("UNAUTHENTICATED", "TOKEN_REQUIRED",
                                "this bridge requires a token: send metadata 'authorization: Bearer <token>'")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise BatchRejected("UNAUTHENTICATED", "TOKEN_REQUIRED",
                                "the authorization metadata must be 'Bearer <token>'")
        found = self._callers.get(_digest(token.strip()))
        if found is None:
            raise BatchRejected("UNAUTHENTICATED", "TOKEN_INVALID", "the token is not valid for this bridge")
        return found

    @staticmethod
    def check(caller: Caller, route: str) -> None:
        if not caller.may_use(route):
            raise BatchRejected("PERMISSION_DENIED", "ROUTE_NOT_ALLOWED",
                                f"caller {caller.name!r} may not use route {route!r}", {"route": route})
