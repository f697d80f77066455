"""The caller contract, in code: what ends a stream for a retry, how long to wait, and how to reach several bridges.

A stream that ends UNAVAILABLE (the bridge is draining, was restarted, or
asked the connection to go away: GOAWAY), or whose connection was lost
(gRPC reports that as UNAVAILABLE, or INTERNAL "Internal error from Core"
with no status details from the bridge), is opened again after a backoff and
every batch not acknowledged is sent again. An ack whose status is
UNAVAILABLE (``BRIDGE_SHUTTING_DOWN``, ``SPOOL_FULL``) is not an
acknowledgement either, as long as the reconnect budget lasts.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

ROUND_ROBIN = '{"loadBalancingConfig": [{"round_robin": {}}]}'


@dataclass(frozen=True)
class Reconnect:
    """How a dropped stream is opened again: exponential backoff with full jitter, bounded.

    ``give_up_after``: seconds without a single ack before the error is raised; ``max_attempts`` (0: no
    limit) bounds the reconnects in a row without an ack. Both reset whenever an ack arrives.
    """

    initial: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    give_up_after: float = 120.0
    max_attempts: int = 0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_backoff, self.initial * self.multiplier ** max(0, attempt - 1)))


def rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


def _has(st: status_pb2.Status | None, kind) -> bool:
    return st is not None and any(d.Is(kind.DESCRIPTOR) for d in st.details)


def resumable(err: grpc.aio.AioRpcError) -> bool:
    """The stream ended for a reason a new one (perhaps to another bridge) does not share."""
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        # A port that answers HTTP/1 (the bridge's ops port, dialled by mistake) will not start speaking gRPC.
        return "http1.x server" not in (err.details() or "")
    st = rich_status(err)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return _has(st, error_details_pb2.RetryInfo)  # the bridge says when; gRPC's own size check does not
    # A connection cut under a call (the bridge killed) surfaces as INTERNAL or UNKNOWN from the gRPC core;
    # an error the bridge itself answers always carries its rich status.
    return code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) and st is None


def ack_retryable(status: status_pb2.Status) -> bool:
    """An ack that is not an acknowledgement: UNAVAILABLE (the bridge shut down before delivering the batch,
    its spool is full, the target stayed away): the batch is sent again, on a new stream."""
    return status.code == grpc.StatusCode.UNAVAILABLE.value[0]


def channel_target(target: str) -> tuple[str, list[tuple[str, str]]]:
    """A gRPC target and channel options for ``host:port``, ``host1:port,host2:port`` or ``dns:///name:port``.

    Several addresses, or a DNS name, get gRPC's round_robin policy: every bridge behind the name gets
    streams, and a stream dropped by one is opened again on another.
    """
    if "," not in target and not target.startswith("dns:"):
        return target, []
    if target.startswith("dns:"):
        return target, [("grpc.service_config", ROUND_ROBIN)]
    v4, v6 = [], []
    first_host = ""
    for item in (t.strip() for t in target.split(",") if t.strip()):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"{item!r} is not HOST:PORT")
        host = host.strip("[]")
        first_host = first_host or item
        try:
            addrs = [ipaddress.ip_address(host)]
        except ValueError:  # a name: each of its addresses is a bridge
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            addrs = [ipaddress.ip_address(i[4][0]) for i in infos]
        for a in dict.fromkeys(addrs):
            (v4 if a.version == 4 else v6).append(f"{a}:{port}" if a.version == 4 else f"[{a}]:{port}")
    # gRPC takes one address family per target; IPv4 when there is any.
    uri = "ipv4:" + ",".join(v4) if v4 else "ipv6:" + ",".join(v6)
    # TLS checks the certificate against the first name given, as for a single address.
    return uri, [("grpc.service_config", ROUND_ROBIN), ("grpc.default_authority", first_host)]
