"""Timestamps as the target's JSON wants them: RFC 3339 strings or epoch numbers."""

from __future__ import annotations

import time
from collections.abc import Callable

NANOS = 1_000_000_000
_CACHE_MAX = 4096
# The range of google.protobuf.Timestamp (and of RFC 3339).
_MIN = -62135596800
_MAX = 253402300799

TimeFormatter = Callable[[int, int], object]


# ".000Z" ... ".999Z": millisecond suffixes, the common precision.
_MS = [f".{i:03d}Z" for i in range(1000)]


def _date_part(seconds: int) -> str:
    if not _MIN <= seconds <= _MAX:
        raise ValueError(f"timestamp {seconds}s is outside 0001-01-01..9999-12-31")
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def _rfc3339() -> TimeFormatter:
    cache: dict[int, str] = {}

    def fmt(seconds: int, nanos: int) -> str:
        if not 0 <= nanos < NANOS:
            raise ValueError(f"timestamp nanos {nanos} is outside 0..999999999")
        base = cache.get(seconds)
        if base is None:
            # Rows of one batch share a few seconds: the date part is cached.
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            base = cache[seconds] = _date_part(seconds)
        if nanos == 0:
            return base + "Z"
        if nanos % 1_000_000 == 0:
            return base + _MS[nanos // 1_000_000]
        if nanos % 1000 == 0:
            return f"{base}.{nanos // 1000:06d}Z"
        return f"{base}.{nanos:09d}Z"

    return fmt


_EPOCH = {"epoch_s": 1, "epoch_ms": 1000, "epoch_us": 1_000_000, "epoch_ns": NANOS}
_INT64 = 2**63


def _epoch(mode: str) -> TimeFormatter:
    per_second = _EPOCH[mode]
    # The widest seconds whose number still fits the int64 every target reads epochs into.
    lo, hi = max(_MIN, -_INT64 // per_second), min(_MAX, (_INT64 - 1) // per_second - 1)
    div = NANOS // per_second

    def fmt(s: int, n: int) -> int | float:
        if not lo <= s <= hi or not 0 <= n < NANOS:
            raise ValueError(f"timestamp {s}s {n}ns is outside what {mode} can hold")
        if per_second == 1:
            return s if n == 0 else s + n / NANOS
        return s * per_second + n // div

    return fmt


def formatter(mode: str) -> TimeFormatter:
    """A function (seconds, nanos) -> JSON value for the route's ``timestamps`` option."""
    if mode == "rfc3339":
        return _rfc3339()
    if mode in _EPOCH:
        return _epoch(mode)
    raise ValueError(f"unknown timestamps mode {mode!r}")


def format_nanos(values, fmt: TimeFormatter, rfc3339: bool) -> list:
    """Many Unix-nanosecond instants at once (a columnar batch's timestamp column)."""
    if not rfc3339:
        return [fmt(*divmod(x, NANOS)) for x in values]
    cache: dict[int, str] = {}
    ms = _MS
    out: list = []
    append = out.append
    for x in values:
        s, n = divmod(x, NANOS)
        base = cache.get(s)
        if base is None:
            base = cache[s] = _date_part(s)
        if n == 0:
            append(base + "Z")
        elif n % 1_000_000 == 0:
            append(base + ms[n // 1_000_000])
        else:
            append(fmt(s, n))
    return out
