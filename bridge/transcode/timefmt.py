"""Timestamps as the target's JSON wants them: RFC 3339 strings or exact epoch numbers.

One precision rule everywhere: no fraction, 3, 6 or 9 digits, the shortest of
these that is exact. Epoch seconds are an exact decimal (never a double), the
other epoch units the floor of the exact nanosecond count, valid while that
number fits an int64.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import orjson

NANOS = 1_000_000_000
_CACHE_MAX = 4096
# The range of google.protobuf.Timestamp (and of RFC 3339).
_MIN = -62135596800
_MAX = 253402300799
_INT64 = 2**63

TimeFormatter = Callable[[int, int], object]


# ".000Z" ... ".999Z": millisecond suffixes, the common precision.
_MS = [f".{i:03d}Z" for i in range(1000)]


def fraction(nanos: int) -> str:
    """``.fff``, ``.ffffff`` or ``.fffffffff`` for 0 < nanos < 1e9: the shortest that is exact."""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1000 == 0:
        return f".{nanos // 1000:06d}"
    return f".{nanos:09d}"


def _date_part(seconds: int) -> str:
    if not _MIN <= seconds <= _MAX:
        raise ValueError(f"timestamp {seconds}s is outside 0001-01-01..9999-12-31")
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def _check_nanos(nanos: int) -> None:
    if not 0 <= nanos < NANOS:
        raise ValueError(f"timestamp nanos {nanos} is outside 0..999999999")


def _rfc3339() -> TimeFormatter:
    cache: dict[int, str] = {}

    def fmt(seconds: int, nanos: int) -> str:
        if not 0 <= nanos < NANOS:  # inline: this runs once per timestamp value
            _check_nanos(nanos)
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
        return base + fraction(nanos) + "Z"

    return fmt


def epoch_seconds(total_ns: int) -> int | orjson.Fragment:
    """Exact decimal seconds: an int when whole, else a JSON number written as text (a double would round)."""
    whole, nanos = divmod(abs(total_ns), NANOS)
    if nanos == 0:
        return whole if total_ns >= 0 else -whole
    return orjson.Fragment(f"{'-' if total_ns < 0 else ''}{whole}{fraction(nanos)}".encode())


_EPOCH = {"epoch_s": 1, "epoch_ms": 1000, "epoch_us": 1_000_000, "epoch_ns": NANOS}


def _epoch(mode: str) -> TimeFormatter:
    if mode == "epoch_s":
        def seconds(s: int, n: int) -> int | orjson.Fragment:
            if not 0 <= n < NANOS:
                _check_nanos(n)
            return s if n == 0 else epoch_seconds(s * NANOS + n)

        return seconds
    div = NANOS // _EPOCH[mode]

    def fmt(s: int, n: int) -> int:
        if not 0 <= n < NANOS:
            _check_nanos(n)
        # Floor division of the exact count; the range check is on the number written, not on the seconds.
        out = (s * NANOS + n) // div
        if not -_INT64 <= out < _INT64:
            raise ValueError(f"timestamp {s}s {n}ns does not fit an int64 in {mode}")
        return out

    return fmt


def formatter(mode: str) -> TimeFormatter:
    """A function (seconds, nanos) -> JSON value for the route's ``timestamps`` option."""
    if mode == "rfc3339":
        return _rfc3339()
    if mode in _EPOCH:
        return _epoch(mode)
    raise ValueError(f"unknown timestamps mode {mode!r}")


def format_nanos(values: Iterable[int], fmt: TimeFormatter, mode: str, bad: dict[int, str], what: str) -> list:
    """Many Unix-nanosecond instants at once (a columnar batch's timestamp column).

    A value that cannot be written is noted in ``bad`` by row (and holds None): a row error, never the batch's.
    """
    if mode == "epoch_ns":
        return list(values)  # an int64 count of nanoseconds is already the number to write
    if mode == "epoch_s":
        return [epoch_seconds(x) for x in values]
    if mode != "rfc3339":
        div = NANOS // _EPOCH[mode]
        return [x // div for x in values]  # the floor of an int64 always fits
    cache: dict[int, str] = {}
    ms = _MS
    out: list = []
    append = out.append
    for i, x in enumerate(values):
        s, n = divmod(x, NANOS)
        base = cache.get(s)
        if base is None:
            try:
                base = cache[s] = _date_part(s)
            except ValueError as e:
                bad.setdefault(i, f"{what}: {e}")
                append(None)
                continue
        if n == 0:
            append(base + "Z")
        elif n % 1_000_000 == 0:
            append(base + ms[n // 1_000_000])
        else:
            append(base + fraction(n) + "Z")
    return out
