"""ingest-bridge: stream Protobuf rows over gRPC into the REST ingest APIs of streaming databases and log stores.

The public API is what this module names; everything else is the bridge's own and may change:

* ``IngestClient``, ``Connection``: call a running bridge from Python (``bridge.client``).
* ``Bridge``: run a bridge inside your own asyncio program (``await Bridge(config).start()``).
* ``load_config``, ``parse_config``, ``describe``: read and check a configuration, show it without secrets.
* ``BridgeError``, ``ConfigError``: the errors those raise.

Names are imported on first use, so ``import bridge`` stays cheap for a client that needs only gRPC.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "IngestClient": "bridge.client",
    "Connection": "bridge.client",
    "Bridge": "bridge.ingest.server",
    "load_config": "bridge.config",
    "parse_config": "bridge.config",
    "describe": "bridge.config",
    "BridgeError": "bridge.model.errors",
    "ConfigError": "bridge.model.errors",
}

__all__ = [  # noqa: RUF022 (grouped as above)
    "__version__", "IngestClient", "Connection", "Bridge", "load_config", "parse_config", "describe", "BridgeError",
    "ConfigError",
]

# Imported on first use, not here: the layer contracts see no import from this module into the packages.
def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'bridge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
