"""What a call carries beyond its rows: the caller's W3C trace context, and the answer while the bridge drains."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

from bridge.model.errors import BatchRejected

# W3C Trace Context: version-traceid-parentid-flags, lower-case hex; all-zero ids and version ff are invalid.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def traceparent(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The caller's ``traceparent`` metadata when it is valid (anything else is dropped, never forwarded)."""
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str):
            v = value.strip()
            # Version 00 is exactly 55 characters; a later version may append fields, of which only the
            # ones this version defines are forwarded.
            head = v[:55]
            if (_TRACEPARENT.fullmatch(head) and (len(v) == 55 or (v[:2] != "00" and v[55] == "-"))
                    and not head.startswith("ff") and head[3:35] != "0" * 32 and head[36:52] != "0" * 16):
                return head
            return None
    return None


def shutting_down() -> BatchRejected:
    """The refusal of a call or message while the bridge drains: retryable, to another bridge."""
    return BatchRejected("UNAVAILABLE", "BRIDGE_SHUTTING_DOWN",
                         "the bridge is shutting down: resend what was not acknowledged (to another bridge)",
                         retry_after=1.0)


async def abort(context: grpc.aio.ServicerContext, st: status_pb2.Status) -> None:
    """End the call with this status, its details included."""
    s = rpc_status.to_status(st)
    await context.abort(s.code, s.details, s.trailing_metadata)


def deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The caller's deadline on the monotonic clock (None: the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
