"""A target as the spool sees it (a ``Downstream``) that remembers what it was handed; for the spool's tests."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from bridge.model.outcome import Outcome
from bridge.model.rows import RowError, Rows
from bridge.model.tickets import Ticket
from bridge.proto import pb

AWAY = Outcome(code="UNAVAILABLE", reason="TARGET_UNAVAILABLE", message="away", retryable=True)
REFUSED = Outcome(code="INVALID_ARGUMENT", reason="BAD_ROWS", message="no such column", http_status=400)


class Recording:
    """Takes what it is handed (``mode="ok"``), answers UNAVAILABLE (``"down"``), or waits until ``open``
    is set (``"blocked"``). A record holding an id in ``refuse`` is refused for good; ``rows_of`` rejects the
    rows whose id is in ``reject``. ``got`` lists (record seq, row, op) in the order delivered."""

    def __init__(self, name: str = "", mode: str = "ok", on_row: Any = None) -> None:
        self.name = name
        self.mode = mode
        self.refuse: set[int] = set()
        self.reject: set[int] = set()
        self.got: list[tuple[int, dict, int | None]] = []
        self.tries = 0
        self.open = asyncio.Event()
        self.on_row = on_row  # called with (seq, row) as each row is taken

    @property
    def ids(self) -> list[int]:
        return [row["id"] for _, row, _ in self.got]

    @property
    def seqs(self) -> list[int]:
        return list(dict.fromkeys(seq for seq, _, _ in self.got))

    async def reserve(self, nbytes: int) -> None:
        return None

    async def enqueue_rows(self, ticket: Ticket, rows: Rows, nbytes: int, wire_bytes: int = 0) -> None:
        self.tries += 1
        objects = [orjson.loads(r) if rows.columns is None else dict(zip(rows.columns, r, strict=True))
                   for r in rows.data]
        if self.mode == "blocked":
            await self.open.wait()
        if self.mode == "down":
            ticket.fail(AWAY)
            return
        if any(o.get("id") in self.refuse for o in objects):
            ticket.failed_rows.extend(range(len(rows)))
            ticket.fail(REFUSED)
            return
        for i, o in enumerate(objects):
            self.got.append((ticket.sequence, o, None if rows.ops is None else rows.ops[i]))
            if self.on_row is not None:
                self.on_row(ticket.sequence, o)
        ticket.accepted = len(rows)
        ticket.finish()

    def rows_of(self, request: bytes, skip: list[int]) -> tuple[Rows, list[RowError]]:
        req = pb.IngestRequest.FromString(request)
        data, index, errors = [], [], []
        for i, raw in enumerate(req.json.objects):
            if i in skip:
                continue
            if orjson.loads(raw)["id"] in self.reject:
                errors.append(RowError(i, "id", f"not for target {self.name}"))
                continue
            data.append(raw)
            index.append(i)
        return Rows(None, data, None, index), errors


def request(seq: int, ids: range) -> tuple[pb.IngestRequest, Rows]:
    """A caller's JSON request and the rows a route accepts of it."""
    req = pb.IngestRequest(route="r", sequence=seq)
    req.json.objects.extend(orjson.dumps({"id": i}) for i in ids)
    return req, Rows(None, list(req.json.objects))


async def accept(spool: Any, seq: int, ids: range, skip: list[int] | None = None) -> int:
    """Spool one request in the neutral form; the record's seq."""
    req, rows = request(seq, ids)
    ticket = Ticket("r", seq, len(ids), [], None)
    await spool.accept(ticket, rows, request=req.SerializeToString(), skip=skip)
    return int(ticket.upstream["spool_seq"])
