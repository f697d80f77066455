"""A target's HTTP answer, or the lack of one, as an ``Outcome``: the bridge's one status table.

Dialects refine it from the error body before it is applied (a Timeplus code, an Obsrv ``params.err``); the receive
side turns the resulting Outcome into a gRPC status (``bridge.ingest.status``).
"""

from __future__ import annotations

from bridge.model.outcome import Outcome

# status -> (gRPC code, reason, retried by the bridge)
HTTP_TABLE: dict[int, tuple[str, str, bool]] = {
    400: ("INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False),
    401: ("UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED", False),
    403: ("PERMISSION_DENIED", "UPSTREAM_PERMISSION_DENIED", False),
    404: ("NOT_FOUND", "TARGET_NOT_FOUND", False),
    408: ("UNAVAILABLE", "UPSTREAM_TIMEOUT", True),
    409: ("ABORTED", "UPSTREAM_CONFLICT", False),
    412: ("FAILED_PRECONDITION", "UPSTREAM_PRECONDITION_FAILED", False),
    413: ("INVALID_ARGUMENT", "ROW_TOO_LARGE", False),
    422: ("INVALID_ARGUMENT", "UPSTREAM_UNPROCESSABLE", False),
    429: ("RESOURCE_EXHAUSTED", "UPSTREAM_RATE_LIMITED", True),
    500: ("INTERNAL", "UPSTREAM_INTERNAL_ERROR", True),
    501: ("UNIMPLEMENTED", "UPSTREAM_UNIMPLEMENTED", False),
    502: ("UNAVAILABLE", "UPSTREAM_UNAVAILABLE", True),
    503: ("UNAVAILABLE", "UPSTREAM_UNAVAILABLE", True),
    504: ("UNAVAILABLE", "UPSTREAM_TIMEOUT", True),
}


def from_http(status: int, message: str = "", upstream_code: str = "") -> Outcome:
    """The default table applied to an HTTP status."""
    if 200 <= status < 300:
        return Outcome(code="OK", http_status=status, upstream_code=upstream_code)
    if status in HTTP_TABLE:
        code, reason, retry = HTTP_TABLE[status]
    elif 400 <= status < 500:
        code, reason, retry = "INVALID_ARGUMENT", "UPSTREAM_REJECTED", False
    else:
        code, reason, retry = "UNAVAILABLE", "UPSTREAM_ERROR", True
    text = f"target answered HTTP {status}"
    if message:
        text += f": {message}"
    return Outcome(
        code=code, reason=reason, message=text, retryable=retry, http_status=status,
        upstream_code=upstream_code,
    )


def transport_failure(kind: str, detail: str) -> Outcome:
    """A request that got no HTTP answer: refused, reset, timed out."""
    reasons = {"timeout": "UPSTREAM_TIMEOUT", "incomplete": "UPSTREAM_ANSWER_INCOMPLETE"}
    reason = reasons.get(kind, "UPSTREAM_UNREACHABLE")
    return Outcome(code="UNAVAILABLE", reason=reason, message=detail, retryable=True)
