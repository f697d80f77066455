"""gRPC statuses with rich details: what a caller reads when its rows did not all go in.

The HTTP side (an answer to an ``Outcome``) is ``bridge.send.answer``. Every non-OK status carries exactly one ErrorInfo
(domain ``ingest-bridge``), RetryInfo when a retry may succeed, BadRequest
for named rows and ResourceInfo for a missing target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from bridge.model.outcome import Outcome
from bridge.model.rows import RowError

DOMAIN = "ingest-bridge"
# Shown to callers as the delay hint when nothing better is known.
DEFAULT_RETRY_DELAY = 1.0
MAX_VIOLATIONS = 100

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
