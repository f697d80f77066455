"""The status mapping: HTTP answers to gRPC codes, and gRPC statuses with rich details.

One table (design.md, "Status mapping"); dialects refine it from the error
body before it is applied. Every non-OK status carries exactly one ErrorInfo
(domain ``ingest-bridge``), RetryInfo when a retry may succeed, BadRequest
for named rows and ResourceInfo for a missing target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from bridge.outcome import Outcome
from bridge.rows import RowError

DOMAIN = "ingest-bridge"
# Shown to callers as the delay hint when nothing better is known.
DEFAULT_RETRY_DELAY = 1.0
MAX_VIOLATIONS = 100

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


def _pack(msg) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def _duration(seconds: float) -> duration_pb2.Duration:
    seconds = max(0.0, seconds)
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def row_violations(errors: Iterable[RowError]) -> error_details_pb2.BadRequest:
    br = error_details_pb2.BadRequest()
    for n, e in enumerate(errors):
        if n == MAX_VIOLATIONS:
            break
        field = f"rows[{e.index}]" + (f".{e.column}" if e.column else "")
        br.field_violations.add(field=field, description=e.reason)
    return br


def rich_status(
    code: str,
    reason: str,
    message: str,
    *,
    route: str = "",
    sequence: int | None = None,
    metadata: dict[str, str] | None = None,
    retry_after: float | None = None,
    retryable: bool = False,
    row_errors: Iterable[RowError] = (),
    resource: tuple[str, str] | None = None,
    extra: Iterable = (),
) -> status_pb2.Status:
    """Build a google.rpc.Status; OK statuses carry no details."""
    st = status_pb2.Status(code=getattr(code_pb2, code), message=message)
    if code == "OK":
        return st
    md = {"route": route} if route else {}
    if sequence is not None:
        md["sequence"] = str(sequence)
    md.update({k: v for k, v in (metadata or {}).items() if v not in (None, "")})
    st.details.append(_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=md)))
    # Callers drop data on a bare RESOURCE_EXHAUSTED: it always says when to retry.
    if retryable or retry_after is not None or code == "RESOURCE_EXHAUSTED":
        delay = retry_after if retry_after is not None else DEFAULT_RETRY_DELAY
        st.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=_duration(delay))))
    errors = list(row_errors)
    if errors:
        st.details.append(_pack(row_violations(errors)))
    if resource:
        st.details.append(
            _pack(error_details_pb2.ResourceInfo(resource_type=resource[0], resource_name=resource[1]))
        )
    for msg in extra:
        st.details.append(_pack(msg))
    return st


def outcome_status(
    outcome: Outcome,
    route: str,
    sequence: int | None,
    resource_type: str = "",
    metadata: dict[str, str] | None = None,
    extra: Iterable = (),
    row_errors: Iterable[RowError] | None = None,
) -> status_pb2.Status:
    """The google.rpc.Status for a target outcome (``row_errors``: the named rows, by caller index)."""
    md = dict(metadata or {})
    if outcome.http_status is not None:
        md["http_status"] = str(outcome.http_status)
    if outcome.upstream_code:
        md["upstream_code"] = outcome.upstream_code
    resource = None
    if outcome.code == "NOT_FOUND" and outcome.resource:
        resource = (resource_type or "target", outcome.resource)
    return rich_status(
        outcome.code,
        outcome.reason or outcome.code,
        outcome.message,
        route=route,
        sequence=sequence,
        metadata=md,
        retry_after=outcome.retry_after,
        retryable=outcome.retryable,
        row_errors=outcome.row_errors if row_errors is None else row_errors,
        resource=resource,
        extra=extra,
    )



def error_info(st: status_pb2.Status) -> tuple[error_details_pb2.ErrorInfo, int] | None:
    """The ErrorInfo of a status and its position among the details."""
    for i, d in enumerate(st.details):
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info, i
    return None
