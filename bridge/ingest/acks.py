"""Tickets and rejections to BatchAcks and google.rpc.Status: what the caller reads."""

from __future__ import annotations

from bridge.ingest import status
from bridge.ingest.peeked import Peeked
from bridge.model.errors import BatchRejected
from bridge.model.rows import RowError
from bridge.model.tickets import SHUTTING_DOWN, Ticket
from bridge.proto import pb

_OK = status.rich_status("OK", "", "")


def _row_errors(errors: list[RowError]) -> list[pb.RowError]:
    return [pb.RowError(index=e.index, column=e.column, reason=e.reason) for e in errors]


def ticket_ack(t: Ticket, resource_type: str = "target") -> pb.BatchAck:
    if t.failure is None and not t.errors and not t.upstream and not t.unnamed_rejects:
        # Every row taken, nothing to name: the common ack, built without the general path's lists and dicts.
        return pb.BatchAck(sequence=t.sequence, route=t.route, accepted=t.accepted, rejected=t.total - t.accepted,
                           status=_OK)
    errors = sorted(t.errors, key=lambda e: e.index)
    if t.failure is not None and t.accepted > 0:
        # Part of the request went through: name the rows that did not, so they alone can be resent.
        errors += [RowError(i, "", t.failure.message) for i in t.failed_rows]
        errors.sort(key=lambda e: e.index)
    st = (
        status.outcome_status(t.failure, t.route, t.sequence, resource_type, row_errors=errors)
        if t.failure is not None
        else status.rich_status("OK", "", "")
    )
    upstream = dict(t.upstream)
    if t.unnamed_rejects:
        upstream.setdefault("unnamed_rejected", str(t.unnamed_rejects))
    # Rows the bridge shut down before delivering were not refused by anyone: only its own row errors count.
    shut = t.failure is not None and t.failure.reason == SHUTTING_DOWN.reason
    return pb.BatchAck(
        sequence=t.sequence,
        route=t.route,
        accepted=t.accepted,
        rejected=len(t.errors) if shut else t.total - t.accepted,
        errors=_row_errors(errors),
        status=st,
        upstream=upstream,
    )


def rejected_status(e: BatchRejected, route: str, sequence: int | None):
    return status.rich_status(
        e.code, e.reason, e.message, route=route, sequence=sequence, metadata=e.metadata,
        retry_after=e.retry_after, retryable=e.retry_after is not None, row_errors=e.row_errors,
    )


def rejected_ack(e: BatchRejected, route: str, sequence: int, total: int) -> pb.BatchAck:
    return pb.BatchAck(
        sequence=sequence, route=route, accepted=0, rejected=total,
        errors=_row_errors(e.row_errors), status=rejected_status(e, route, sequence),
    )


def request_rows(request: pb.IngestRequest) -> int:
    """How many rows a request holds, whatever its shape (0 when it cannot tell)."""
    if isinstance(request, Peeked):
        return request.row_count
    kind = request.WhichOneof("payload")
    if kind == "rows":
        return len(request.rows.rows)
    if kind == "messages":
        return len(request.messages.messages)
    if kind == "json":
        return len(request.json.objects)
    if kind == "columns":
        for c in request.columns.columns:
            if c.WhichOneof("data"):
                return len(getattr(c, c.WhichOneof("data")).values)
        # Every column is all null: the null rows say how many rows there are.
        return max((max(c.null_rows, default=-1) + 1 for c in request.columns.columns), default=0)
    return 0


def ranges(seqs: list[int]) -> str:
    """'0-41,43' for the delivered sequences."""
    out = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in out)
