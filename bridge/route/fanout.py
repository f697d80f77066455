"""A route with several targets: one request's rows for each target, and the targets' answers as one ack.

Rows: each target's transcoder (its dialect's plan and row checks) reads the request. A row any required
target rejects is rejected to the caller and sent to no target, so the required targets get the same rows;
an optional target's own rejections are dropped for it (counted), never told to the caller.

Ack: the caller's ticket settles once every required target's share has. It is OK only if each of them took
the rows. When several fail, the status is the most actionable failure: one the caller cannot cure by sending
again (not retryable) before a retryable one; between equals, the first in the route's ``targets`` list. Its
message names the target. ``upstream`` holds each target's answer by name (``"OK"`` or ``"<code> <reason>:
<message>"``; an optional target's ``"QUEUED"`` or ``"DROPPED <why>"``) and each target's own keys as
``"<name>.<key>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bridge.model.rows import RowError, Rows
from bridge.model.tickets import Share, Ticket

if TYPE_CHECKING:
    from bridge.route.lane import Lane


@dataclass
class Fanned:
    """One request's rows for each target (by name), once the targets' transcoders have read it."""

    rows: dict[str, Rows]
    # Rows rejected to the caller, counted against the first required target that rejected each.
    blame: dict[str, int] = field(default_factory=dict)
    # Rows an optional target's own transcoder rejected (dropped for it).
    dropped: dict[str, int] = field(default_factory=dict)
    # The caller's request as it came (its wire bytes): what a spooled route writes to its log, for each
    # target to transcode again when its cursor reaches it.
    request: bytes | None = None

    def __len__(self) -> int:
        return max((len(r) for r in self.rows.values()), default=0)


def merge_errors(required: list[tuple[str, list[RowError]]]) -> tuple[list[RowError], dict[str, int]]:
    """The rows the caller is told are rejected: every row some required target rejects. Where the targets
    disagree (one rejects, another takes it, or they give different reasons) the reason names the target."""
    by_index: dict[int, list[tuple[str, RowError]]] = {}
    for name, errors in required:
        for e in errors:
            by_index.setdefault(e.index, []).append((name, e))
    merged: list[RowError] = []
    blame: dict[str, int] = {}
    for index in sorted(by_index):
        items = by_index[index]
        blame[items[0][0]] = blame.get(items[0][0], 0) + 1
        if len(items) == len(required) and len({e.reason for _, e in items}) == 1:
            merged.append(items[0][1])
        else:
            merged.append(RowError(index, items[0][1].column,
                                   "; ".join(f"target {name}: {e.reason}" for name, e in items)))
    return merged, blame


def transcode_once(lanes: Sequence[Lane], request: Any, size: int | None, raw: bytes | None
                   ) -> dict[str, tuple[Rows, list[RowError]]]:
    """Each lane's rows and rejections of ``request``; lanes with equal plans share one transcode (the rows
    are never changed downstream: each lane selects and slices its own)."""
    done: list[tuple[Any, tuple[Rows, list[RowError]]]] = []
    read = {}
    for lane in lanes:
        got = next((result for key, result in done if key == lane.plan_key), None)
        if got is None:
            got = lane.transcoder.transcode(request, size, raw)
            done.append((lane.plan_key, got))
        read[lane.name] = got
    return read


def without(rows: Rows, rejected: set[int]) -> Rows:
    """``rows`` less those whose caller index is in ``rejected``."""
    if not rejected:
        return rows
    return rows.select([p for p in range(len(rows)) if rows.caller_index(p) not in rejected])


def answer(share: Ticket) -> str:
    """A target's answer for ``upstream[<name>]``."""
    f = share.failure
    return "OK" if f is None else f"{f.code} {f.reason}: {f.message}"


def combine(ticket: Ticket, shares: list[Share], sent: int) -> None:
    """Settle the caller's ticket from its required targets' shares (``sent`` rows went to each)."""
    if ticket.future.done():
        return  # withdrawn (the caller left) or shut down meanwhile
    bad: set[int] = set()
    named = {e.index for e in ticket.errors}
    unnamed = unsettled = 0
    failures: list[Share] = []
    for s in shares:
        mine = {e.index for e in s.errors} | set(s.failed_rows)
        for e in s.errors:
            if e.index not in named:
                named.add(e.index)
                ticket.errors.append(RowError(e.index, e.column, f"target {s.lane}: {e.reason}"))
        bad |= mine
        unnamed = max(unnamed, s.unnamed_rejects)
        # Rows with no outcome at all (a shut-down batch) are not counted as taken.
        unsettled = max(unsettled, sent - s.accepted - len(mine) - s.unnamed_rejects)
        ticket.upstream[s.lane] = answer(s)
        for key, value in s.upstream.items():
            ticket.upstream[f"{s.lane}.{key}"] = value
        if s.failure is not None:
            failures.append(s)
    ticket.accepted = max(0, sent - len(bad) - unnamed - unsettled)
    ticket.unnamed_rejects = unnamed
    if failures:
        pick = min(failures, key=lambda s: bool(s.failure.retryable))  # type: ignore[union-attr]
        f = pick.failure
        assert f is not None
        ticket.failed_rows = sorted({i for s in failures for i in s.failed_rows} - named)
        ticket.fail(replace(f, message=f"target {pick.lane}: {f.message}"))
    else:
        ticket.finish()
