"""The target dialects, by the name routes use in ``dialect:``."""

from __future__ import annotations

from bridge._registry import LazyRegistry
from bridge.dialects.base import Dialect

DIALECTS: LazyRegistry = LazyRegistry({
    "http": "bridge.dialects.http:HttpDialect",
    "timeplus": "bridge.dialects.timeplus:TimeplusDialect",
    "obsrv": "bridge.dialects.obsrv:ObsrvDialect",
    "feldera": "bridge.dialects.feldera:FelderaDialect",
    "axiom": "bridge.dialects.axiom:AxiomDialect",
})


def get(name: str) -> type[Dialect]:
    return DIALECTS[name]
