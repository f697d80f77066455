"""The numeric exception codes of ClickHouse and its forks (Timeplus, Proton): ``src/Common/ErrorCodes.cpp``.

These servers answer many errors with HTTP 500, whatever the cause; the code says whose fault it is, so a row
the server cannot parse is the caller's (not retried) rather than the server's.
"""

from __future__ import annotations

import re

from bridge.model.outcome import Outcome

AUTH_CODES = {192, 193, 194, 516}  # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
NOT_FOUND_CODES = {60, 81}  # UNKNOWN_TABLE (UNKNOWN_STREAM), UNKNOWN_DATABASE
# Parse errors (6, 26, 27, 38, 41, 72, 117), NO_SUCH_COLUMN_IN_TABLE (16), CANNOT_CONVERT_TYPE (70), ...
INVALID_CODES = {6, 16, 26, 27, 38, 41, 47, 53, 62, 70, 72, 117, 408}
_BODY_CODE = re.compile(rb"\s*Code: (\d+)[.,]")


def code_of(header: str | None, body: bytes = b"") -> int | None:
    """The exception code from ``X-ClickHouse-Exception-Code`` (or a fork's header), else a ``Code: N`` text body."""
    if header is not None:
        try:
            return int(header)
        except ValueError:
            return None
    m = _BODY_CODE.match(body[:32])
    return int(m.group(1)) if m else None


def refine(outcome: Outcome, number: int | None) -> Outcome:
    """The outcome of an error answer, corrected by its exception code where the code says more than the status."""
    if number in AUTH_CODES:
        outcome.code, outcome.reason, outcome.retryable = "UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED", False
    elif number in NOT_FOUND_CODES:
        outcome.code, outcome.reason, outcome.retryable = "NOT_FOUND", "TARGET_NOT_FOUND", False
    elif number in INVALID_CODES:
        outcome.code, outcome.reason, outcome.retryable = "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False
    return outcome
