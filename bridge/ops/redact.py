"""Secrets out of every text the bridge shows: logs, errors, status details, metrics.

Targets sometimes echo what they were sent (a rejected token, a header) in an
error body; the bridge passes target messages on to callers, so each one is
scrubbed of the route's credentials, in every form they travel in, first.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from bridge.model.config import BridgeConfig, RouteConfig, Secret

MASK = "***"


def route_secrets(route: RouteConfig, usernames: bool = True) -> list[str]:
    """A route's credentials as they are configured and as they go on the wire (Basic auth's base64).

    ``usernames=False`` leaves out a plain ``username`` (shown requests would lose every word it is part of).
    """
    out = [s for t in route.targets for s in route_secrets(t.cfg, usernames)]
    for key, value in route.auth.items():
        if isinstance(value, dict):
            out += [v.value for v in value.values() if isinstance(v, Secret)]
        elif isinstance(value, Secret) and (usernames or key != "username"):
            out.append(value.value)
    user, password = route.auth.get("username"), route.auth.get("password")
    if isinstance(user, Secret):
        pair = f"{user.value}:{password.value if isinstance(password, Secret) else ''}"
        out.append(base64.b64encode(pair.encode()).decode())
    return out


def config_secrets(config: BridgeConfig) -> list[str]:
    """Every secret of a configuration: the routes' credentials and the callers' tokens."""
    out = [s for r in config.routes.values() for s in route_secrets(r)]
    if config.access is not None:
        out += [t.token.value for t in config.access.tokens]
    return out


class Redactor:
    """``redact(text)``: the text with each secret (of four characters or more) replaced by ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not self.secrets or not text:
            return text
        for s in self.secrets:
            if s in text:
                text = text.replace(s, MASK)
        return text
