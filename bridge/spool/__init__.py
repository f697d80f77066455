"""Spool mode: a per-route write-ahead log between the receive and send stages."""

from bridge.model.errors import SpoolError
from bridge.spool.spool import Spool
from bridge.spool.wal import Recovery, Wal

__all__ = ["Recovery", "Spool", "SpoolError", "Wal"]
