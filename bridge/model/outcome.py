"""What happened to a request at the target, in the bridge's own terms."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.model.rows import RowError


@dataclass(slots=True)
class Outcome:
    """The classified answer of the target (or of the transport) for one request.

    ``code`` is a grpc.StatusCode name ("OK", "UNAVAILABLE", ...). Row errors
    name rows by their position in the request that was sent.
    """

    code: str = "OK"
    reason: str = ""
    message: str = ""
    retryable: bool = False
    retry_after: float | None = None
    http_status: int | None = None
    upstream_code: str = ""
    row_errors: list[RowError] = field(default_factory=list)
    upstream: dict[str, str] = field(default_factory=dict)
    # Set when the target only had a look at part of the request (Axiom counts).
    accepted: int | None = None
    resource: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "OK"


@dataclass(slots=True)
class Span:
    """The outcome for rows [start, stop) of a sent batch (413 splits produce several)."""

    start: int
    stop: int
    outcome: Outcome
