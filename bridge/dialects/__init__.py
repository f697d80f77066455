"""The target dialects, by the name routes use in ``dialect:``."""

from __future__ import annotations

from bridge.dialects.base import Dialect
from bridge.dialects.http import HttpDialect

DIALECTS: dict[str, type[Dialect]] = {
    HttpDialect.name: HttpDialect,
}


def get(name: str) -> type[Dialect]:
    return DIALECTS[name]
