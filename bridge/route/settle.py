"""Outcomes back to callers: each sent row's outcome onto its ticket, by the caller's row index."""

from __future__ import annotations

from bridge.model.outcome import Outcome
from bridge.model.rows import RowError
from bridge.model.tickets import Part, Ticket, merge_upstream
from bridge.send.load import Load


def settle(results: list[tuple[Load, Outcome]], stats) -> list[Part]:
    """Apply each (rows, outcome) to the tickets that own the rows; the parts now fully settled.

    A target that counts refused rows without naming them (Axiom) leaves ``unattributed`` rows: when
    several callers' requests shared the request, none can be told which of its rows those were, so each
    is charged up to that many (never told a row was taken when it may not have been).
    """
    done: list[Part] = []
    for load, o in results:
        if o.reason == "WITHDRAWN":
            continue  # nobody waits for these rows: their tickets were answered when they were withdrawn
        unattributed = 0
        if o.ok and o.accepted is not None:
            unattributed = max(0, len(load) - len(o.row_errors) - o.accepted)
        seen: dict[int, int] = {}  # ticket -> rows charged as unattributed in this load
        offset = 0
        for piece in load.pieces:
            part: Part = piece.owner  # type: ignore[assignment]
            t = part.ticket
            a, b = offset, offset + len(piece)
            offset = b
            if id(t) not in seen:
                seen[id(t)] = 0
                merge_upstream(t.upstream, o.upstream)

            def caller(i: int, part: Part = part, start: int = piece.start, a: int = a) -> int:
                return part.rows.caller_index(start + i - a)

            named = [RowError(caller(e.index), e.column, e.reason) for e in o.row_errors if a <= e.index < b]
            if o.ok:
                t.errors += named
                good = b - a - len(named)
                charged = min(good, unattributed - seen[id(t)])
                if charged > 0:
                    seen[id(t)] += charged
                    t.unnamed_rejects += charged
                    good -= charged
                t.accepted += good
                stats.rows_delivered += good
            else:
                _fail(t, o)
                # Rows the target named in a failed batch (Feldera's parse errors), by caller index.
                t.errors += named
                t.failed_rows.extend(caller(i) for i in range(a, b))
            part.settled += len(piece)
            if part.settled >= len(part.rows):
                done.append(part)
    return done


def _fail(t: Ticket, o: Outcome) -> None:
    if t.failure is None:
        t.failure = o


def held_back(failure: Outcome) -> Outcome:
    """The outcome of rows not sent because an earlier batch of their request failed (ordered routes)."""
    return Outcome(code=failure.code, reason=failure.reason, http_status=failure.http_status,
                   upstream_code=failure.upstream_code, retryable=failure.retryable, retry_after=failure.retry_after,
                   message=f"not sent: an earlier batch of this request failed, and this route keeps rows in order "
                           f"({failure.message})")
