"""What one request carries: rows, and whose they are.

A ``Load`` is a run of pieces, each a range of rows of one owner (a caller's
part of a batch). The sender keeps a load's owners in view for as long as it
works on it: before every attempt it drops the rows of owners that no longer
want them (the caller left, or its deadline passed), and a refusal that
belongs to one caller can be split off by owner. Results come back per load,
so each row's outcome reaches its owner however the batch was cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.model.rows import Rows


class Owner(Protocol):
    """Whose rows these are (the pipeline's ``Part``)."""

    rows: Rows

    def wanted(self, now: float) -> bool:
        """Whether anyone still waits for these rows."""
        ...

    @property
    def deadline(self) -> float | None: ...

    @property
    def key(self) -> object:
        """Owners with the same key belong to one caller's request (a refusal splits between keys)."""
        ...

    @property
    def trace(self) -> str | None:
        """The caller's W3C traceparent, if it sent one."""
        ...


@dataclass(slots=True)
class Piece:
    owner: Owner
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


class Load:
    __slots__ = ("_rows", "pieces")

    def __init__(self, pieces: list[Piece]) -> None:
        self.pieces = pieces
        self._rows: Rows | None = None

    @classmethod
    def of(cls, owners: list[Owner]) -> Load:
        return cls([Piece(o, 0, len(o.rows)) for o in owners])

    def __len__(self) -> int:
        return sum(len(p) for p in self.pieces)

    def traces(self) -> list[str]:
        """The callers' traceparents, each once, in the order their rows stand in the load."""
        return list(dict.fromkeys(t for p in self.pieces if (t := p.owner.trace)))

    @property
    def rows(self) -> Rows:
        if self._rows is None:
            parts = []
            for p in self.pieces:
                rows = p.owner.rows
                parts.append(rows if (p.start, p.stop) == (0, len(rows)) else rows.slice(p.start, p.stop))
            self._rows = Rows.concat(parts)
        return self._rows

    def deadline(self) -> float | None:
        """The latest deadline of its owners (None: one of them has none)."""
        latest = 0.0
        for p in self.pieces:
            d = p.owner.deadline
            if d is None:
                return None
            latest = max(latest, d)
        return latest

    def keys(self) -> int:
        return len({id(p.owner.key) for p in self.pieces})

    def alive(self, now: float) -> Load:
        """This load without the rows nobody waits for any more (itself when all are wanted)."""
        keep = [p for p in self.pieces if p.owner.wanted(now)]
        return self if len(keep) == len(self.pieces) else Load(keep)

    def split(self, at: int) -> tuple[Load, Load]:
        """Rows [0, at) and [at, n)."""
        left: list[Piece] = []
        right: list[Piece] = []
        offset = 0
        for p in self.pieces:
            n = len(p)
            if offset + n <= at:
                left.append(p)
            elif offset >= at:
                right.append(p)
            else:
                cut = p.start + (at - offset)
                left.append(Piece(p.owner, p.start, cut))
                right.append(Piece(p.owner, cut, p.stop))
            offset += n
        return Load(left), Load(right)

    def split_by_key(self) -> tuple[Load, Load]:
        """Two loads with no caller's request in both, cut at the key boundary nearest the middle."""
        bounds = []
        offset = 0
        for i, p in enumerate(self.pieces):
            if i and p.owner.key is not self.pieces[i - 1].owner.key:
                bounds.append(offset)
            offset += len(p)
        half = offset / 2
        return self.split(min(bounds, key=lambda b: abs(b - half)))
