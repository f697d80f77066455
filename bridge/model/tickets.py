"""A caller's request on its way through a route, and the parts its rows travel in.

A ``Ticket`` is one request; its future resolves when every row has an
outcome. Its rows travel in ``Part``s (at most a batch each), which the
sender sees as owners of rows: a part is wanted only while its ticket is, so
rows leave a batch as soon as their caller stops waiting for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.model.outcome import Outcome
from bridge.model.rows import RowError, Rows

SHUTTING_DOWN = Outcome(
    code="UNAVAILABLE", reason="BRIDGE_SHUTTING_DOWN", message="the bridge shut down before the batch was delivered",
    retryable=True,
)


class Ticket:
    """One caller request on its way; ``future`` resolves to the ticket itself when every row is settled."""

    __slots__ = ("accepted", "deadline", "durable", "errors", "failed_rows", "failure", "future", "gone", "pending",
                 "route", "sequence", "shares", "total", "trace", "unnamed_rejects", "upstream")

    def __init__(self, route: str, sequence: int, total: int, errors: list[RowError], deadline: float | None,
                 durable: bool = False, trace: str | None = None) -> None:
        self.route = route
        self.sequence = sequence
        self.total = total
        self.errors = list(errors)
        self.deadline = deadline
        # Rows already safe on disk (a spool record): nobody waits, and nothing may drop them.
        self.durable = durable
        # The caller's W3C traceparent (validated), forwarded on the HTTP requests its rows go out in.
        self.trace = trace
        self.future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self.pending = 0  # parts not yet settled
        self.accepted = 0
        self.unnamed_rejects = 0
        self.failed_rows: list[int] = []
        self.failure: Outcome | None = None
        self.upstream: dict[str, str] = {}
        # Why nobody waits for the rows any more (the caller left, its call ended or its deadline passed);
        # None while someone does. Rows of a gone ticket are never sent again.
        self.gone: str | None = None
        # On a route with several targets: (lane, share) for each required target's share of the rows.
        self.shares: list | None = None

    def finish(self) -> None:
        if not self.future.done():
            self.future.set_result(self)

    def fail(self, outcome: Outcome) -> None:
        if self.failure is None:
            self.failure = outcome
        self.finish()

    def wanted(self, now: float) -> bool:
        if self.gone is not None:
            return False
        if self.deadline is not None and now >= self.deadline:
            self.withdraw("DEADLINE_EXCEEDED", "the call's deadline passed before its rows were delivered")
            return False
        return True

    def withdraw(self, reason: str, message: str) -> None:
        """Nobody waits for these rows any more: the ones not yet sent never will be."""
        if self.gone is None:
            self.gone = reason
            self.fail(Outcome(code="DEADLINE_EXCEEDED" if reason == "DEADLINE_EXCEEDED" else "CANCELLED",
                              reason=reason, message=message))


class Share(Ticket):
    """One target's share of a request on a route with several targets: its rows travel in its own parts and
    settle here; ``on_done`` runs once all of them have. A required target's share belongs to the caller's
    ticket (``owner``): it is wanted only while that is. An optional target's share has no owner."""

    __slots__ = ("lane", "on_done", "owner")

    def __init__(self, owner: Ticket | None, lane: str, route: str, sequence: int, total: int,
                 deadline: float | None, trace: str | None, on_done: Callable[[Share], None]) -> None:
        super().__init__(route, sequence, total, [], deadline, trace=trace)
        self.owner = owner
        self.lane = lane
        self.on_done = on_done

    def finish(self) -> None:
        if not self.future.done():
            self.future.set_result(self)
            self.on_done(self)

    def wanted(self, now: float) -> bool:
        if self.gone is not None:
            return False
        owner = self.owner
        if owner is not None and not owner.wanted(now):
            self.withdraw(owner.gone or "CANCELLED", "the caller's call ended before its rows were delivered")
            return False
        return True


@dataclass(slots=True, eq=False)
class Part:
    """Some of a ticket's rows, batched together; the sender's owner of those rows."""

    ticket: Ticket
    rows: Rows
    nbytes: int  # its share of the budget charge, released on delivery
    since: float
    body_bytes: int = 0  # an estimate of its encoded size, for batch.max_bytes
    settled: int = field(default=0)  # rows with an outcome so far

    def wanted(self, now: float) -> bool:
        return self.ticket.wanted(now)

    @property
    def deadline(self) -> float | None:
        return self.ticket.deadline

    @property
    def key(self) -> Ticket:
        return self.ticket

    @property
    def trace(self) -> str | None:
        return self.ticket.trace


def merge_upstream(into: dict[str, str], more: dict[str, str]) -> None:
    """A caller's request sent in several requests: counts add up, JSON lists join, other values
    (ids such as Obsrv's msgid or Proton's idempotent id) list each distinct value once, comma-separated."""
    for key, value in more.items():
        old = into.get(key)
        if old is None:
            into[key] = value
        elif old.isdigit() and value.isdigit():
            into[key] = str(int(old) + int(value))
        elif old.startswith("[") and value.startswith("["):
            into[key] = old[:-1] + ("," if len(old) > 2 and len(value) > 2 else "") + value[1:]
        elif value not in old.split(","):
            into[key] = f"{old},{value}"
