"""Spool mode: a per-route write-ahead log between the receive and send stages (one cursor per target)."""

from bridge.model.errors import SpoolError
from bridge.spool.cursor import Cursor
from bridge.spool.pump import Downstream
from bridge.spool.spool import Spool
from bridge.spool.wal import Recovery, Wal

__all__ = ["Cursor", "Downstream", "Recovery", "Spool", "SpoolError", "Wal"]
