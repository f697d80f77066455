"""A request the service has read only as far as it needs: route, sequence, payload kind and row count.

The native module reads those from the wire bytes of a plain RowBatch, ColumnBatch or JsonBatch request (one upb is
sure to parse: native/src/peek.rs); the native transcoder then reads the rows from the same bytes, and the
message is never built. Anything else of it that is asked for (a route on the Python transcoder, a batch
the native one leaves to Python) parses it with upb then, once.
"""

from __future__ import annotations

from typing import Any

from bridge.proto import pb


class Peeked:
    """Stands in for a ``pb.IngestRequest``: ``route``, ``sequence`` and ``WhichOneof("payload")`` come
    from the peek, every other attribute from the message, parsed on first use."""

    __slots__ = ("_kind", "_message", "_raw", "route", "row_count", "sequence")

    def __init__(self, raw: bytes, route: str, sequence: int, kind: str, rows: int) -> None:
        self._raw = raw
        self._message: pb.IngestRequest | None = None
        self._kind = kind
        self.route = route
        self.sequence = sequence
        self.row_count = rows

    def WhichOneof(self, name: str) -> str | None:
        return self._kind if name == "payload" else self.message.WhichOneof(name)

    @property
    def message(self) -> pb.IngestRequest:
        if self._message is None:
            # The peek accepted it: upb parses it (a DecodeError here is a fault in the peek).
            self._message = pb.IngestRequest.FromString(self._raw)
        return self._message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.message, name)
