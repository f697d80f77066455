"""The configuration's typed form, as ``bridge.config`` builds it from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024


class Secret:
    """A credential from the config. Its text never shows in repr, logs or errors."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True)
class BatchConfig:
    """When a route's rows leave as one request, and how much a route may buffer."""

    max_rows: int = 5000
    max_bytes: int = 4 * MiB  # of the encoded body
    linger: float = 0.2  # seconds a partial batch waits for more rows
    # Estimated memory of rows accepted but not yet delivered: eight full 4 MiB batches. Under a stalled
    # target RSS grows by about this much (plus ~0.5 MiB per waiting caller).
    max_buffered_bytes: int = 32 * MiB


@dataclass(frozen=True)
class AdaptiveConcurrency:
    """``delivery.concurrency: adaptive``: the limit moves between these bounds with the target's answers."""

    min: int = 1
    max: int = 64


@dataclass(frozen=True)
class DeliveryConfig:
    """How a route's requests are sent and retried."""

    concurrency: int = 4  # requests in flight to the target (adaptive: the most)
    adaptive: AdaptiveConcurrency | None = None  # None: concurrency is fixed
    timeout: float = 30.0  # per attempt, seconds
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    multiplier: float = 2.0
    max_elapsed: float = 300.0  # give up on a batch after this long
    max_attempts: int = 0  # 0: bounded by max_elapsed only
    max_500_attempts: int = 3  # HTTP 500 is retried within this small budget
    # Rows reach the target in the order they came (one request in flight): None (auto) means yes for
    # a route whose target takes deletes or upserts, no for insert-only routes.
    ordered: bool | None = None


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # int, uint, double, bool, string, bytes, timestamp, json
    nullable: bool = False


@dataclass(frozen=True)
class SpoolConfig:
    """Spool mode: rows are acknowledged once fsynced to a write-ahead log under ``dir``, delivered from it."""

    dir: str
    max_bytes: int = 1024 * MiB
    fsync_interval: float = 0.0  # 0: every append is fsynced (appends waiting together share one fsync)
    segment_bytes: int = 16 * MiB


@dataclass(frozen=True)
class RouteConfig:
    name: str
    dialect: str
    url: str
    target: str = ""
    auth: dict[str, Any] = field(default_factory=dict)  # str values are Secret
    options: dict[str, Any] = field(default_factory=dict)  # validated, defaults filled in
    batch: BatchConfig = field(default_factory=BatchConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    columns: tuple[ColumnSpec, ...] | None = None
    # ``columns: discover``: the columns are read from the target at start and on reload.
    discover: bool = False
    # A key or column the columns do not hold: refused (reject) or left out of the row (drop).
    unknown_columns: str = "reject"
    # reject_row: bad rows are rejected by index, the rest go on;
    # reject_batch: one bad row fails the whole request (INVALID_ARGUMENT).
    on_bad_row: str = "reject_row"
    spool: SpoolConfig | None = None
    # Fan-out (``targets:``): each target's settings as a RouteConfig of its own (the route's name, columns and
    # row rules, the target's dialect, url, auth, options, batch and delivery). Empty: the route is its target.
    targets: tuple[TargetConfig, ...] = ()

    def lanes(self) -> tuple[TargetConfig, ...]:
        """The route's targets; a single-target route has one, named after its dialect, required."""
        return self.targets or (TargetConfig(self.dialect, True, self),)


@dataclass(frozen=True)
class TargetConfig:
    """One target of a route: its name (the ``target`` label, the key in a BatchAck's ``upstream``), whether
    callers' acks wait for it, and its settings."""

    name: str
    required: bool
    cfg: RouteConfig


@dataclass(frozen=True)
class LimitsConfig:
    """What one caller may send and hold: every limit is checked with an error that names it."""

    max_message_bytes: int = 16 * MiB  # one gRPC message
    max_buffered_bytes: int = 128 * MiB  # over all routes (estimated memory of accepted rows)
    max_rows_per_message: int = 100_000
    max_columns: int = 1000
    # The longest single value on the wire: a string, bytes, one JSON object or one user message.
    max_value_bytes: int = 1 * MiB
    max_depth: int = 32  # nesting of lists and maps in a value (and of arrays and objects in JSON rows)
    max_calls: int = 1000  # concurrent calls over all connections
    max_streams_per_connection: int = 100
    max_pending_acks: int = 1000  # per stream: acks a caller has not read before the bridge stops reading
    handshake_timeout: float = 10.0  # seconds a new connection has to finish its TLS / HTTP/2 preface
    idle_timeout: float = 900.0  # a connection without calls is closed after this long
    # A connection is asked to go away (GOAWAY) after this long, so callers' long streams spread over bridges
    # added since; its calls then have max_connection_age_grace to end before they are cut.
    max_connection_age: float = 600.0
    max_connection_age_grace: float = 30.0
    # On SIGTERM: batches in flight have this long to be delivered (under Kubernetes' default 30 s grace
    # period); what is not is answered UNAVAILABLE + RetryInfo (BRIDGE_SHUTTING_DOWN) for the caller to resend.
    shutdown_grace: float = 25.0


@dataclass(frozen=True)
class TLSConfig:
    """TLS on the gRPC port; with ``client_ca`` every caller must present a certificate it signed (mTLS)."""

    cert: str
    key: str
    client_ca: str | None = None


@dataclass(frozen=True)
class CallerToken:
    """One bearer token callers present, and the routes it may use (``None``: every route)."""

    name: str
    token: Secret
    routes: frozenset[str] | None = None


@dataclass(frozen=True)
class AccessConfig:
    tokens: tuple[CallerToken, ...] = ()


@dataclass(frozen=True)
class BridgeConfig:
    listen: str = "127.0.0.1:50051"
    http: str | None = "127.0.0.1:9464"
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    tls: TLSConfig | None = None
    access: AccessConfig | None = None  # None: callers need no token
