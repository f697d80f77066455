"""Configuration: one YAML file, checked fully before anything starts (``parse``), and shown to people (``describe``).

The typed form it builds lives in ``bridge.model.config``, so that every stage can read a route's settings without
depending on the parser (which knows the dialects' option tables).
"""

from bridge.config.checks import COLUMN_TYPES, parse_duration, parse_listen, parse_size
from bridge.config.describe import describe
from bridge.config.parse import load_config, parse_config
from bridge.model.config import (
    AccessConfig,
    BatchConfig,
    BridgeConfig,
    CallerToken,
    ColumnSpec,
    DeliveryConfig,
    LimitsConfig,
    RouteConfig,
    Secret,
    SpoolConfig,
    TLSConfig,
)

__all__ = [
    "COLUMN_TYPES", "AccessConfig", "BatchConfig", "BridgeConfig", "CallerToken", "ColumnSpec", "DeliveryConfig",
    "LimitsConfig", "RouteConfig", "Secret", "SpoolConfig", "TLSConfig", "describe", "load_config", "parse_config",
    "parse_duration", "parse_listen", "parse_size",
]
