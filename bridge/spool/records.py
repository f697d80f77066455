"""Spool records and back: a record is one caller request, as rows or in its neutral form.

Kinds (the payload's first byte): ``T`` table rows, ``J`` JSON rows and ``E``
table rows pre-encoded in their route's body form (``Rows.form``: compact
arrays, CSV lines) — a request's accepted rows, transcoded for the route's one
target, in the form encoders take; ``N`` neutral — the caller's ``IngestRequest`` wire bytes and the
caller's row indices rejected at accept, for a route with several targets
(each target transcodes it with its own plan when it delivers it). Every kind
ever written is read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import orjson

from bridge.model.rows import RowError, RowForm, Rows
from bridge.transcode.formats import plain

_TABLE, _JSON, _NEUTRAL, _ENCODED = b"T", b"J", b"N", b"E"


@dataclass(frozen=True, slots=True)
class Neutral:
    """A caller's request as it came: each target makes its own rows of it (``Downstream.rows_of``)."""

    request: bytes  # the IngestRequest's wire bytes
    skip: list[int]  # caller row indices rejected when it was accepted: delivered to no target


def dump_neutral(request: bytes, skip: Collection[int] = ()) -> bytes:
    return _NEUTRAL + orjson.dumps(sorted(skip)) + b"\n" + request


def leave_out(rows: Rows, errors: list[RowError], skip: Collection[int]) -> tuple[Rows, list[RowError]]:
    """``rows`` and ``errors`` without the caller indices in ``skip`` (for a downstream's ``rows_of``)."""
    if not skip:
        return rows, errors
    gone = set(skip)
    keep = [p for p in range(len(rows)) if rows.caller_index(p) not in gone]
    return (rows if len(keep) == len(rows) else rows.select(keep)), [e for e in errors if e.index not in gone]


def dump(rows: Rows) -> bytes:
    if rows.form is not None:
        # Each row's bytes, one after the other, and their lengths (a CSV line may hold a newline).
        f = rows.form
        head = {"c": rows.columns, "o": rows.ops, "f": [f.kind, f.delimiter, f.null, f.order],
                "n": [len(r) for r in rows.data]}
        return _ENCODED + orjson.dumps(head) + b"\n" + b"".join(rows.data)
    if rows.columns is None:
        # JSON rows are the caller's object bytes, one per line (decode made sure they hold no newline).
        return _JSON + orjson.dumps(rows.ops) + b"\n" + b"\n".join(rows.data)
    return _TABLE + orjson.dumps({"c": rows.columns, "d": rows.data, "o": rows.ops})


def load(payload: bytes) -> Rows | Neutral:
    kind, body = payload[:1], payload[1:]
    if kind == _NEUTRAL:
        head, _, request = body.partition(b"\n")
        return Neutral(request, orjson.loads(head))
    if kind == _JSON:
        head, _, lines = body.partition(b"\n")
        return Rows(None, lines.split(b"\n") if lines else [], orjson.loads(head))
    if kind == _ENCODED:
        head, _, body = body.partition(b"\n")
        doc = orjson.loads(head)
        kind, delimiter, null, order = doc["f"]
        data, at = [], 0
        for n in doc["n"]:
            data.append(body[at:at + n])
            at += n
        if at != len(body):
            raise ValueError(f"an encoded record's rows hold {at} bytes, its body {len(body)}")
        form = RowForm(kind, delimiter, null, None if order is None else tuple(order))
        return Rows(tuple(doc["c"]), data, doc["o"], None, form)
    if kind == _TABLE:
        doc = orjson.loads(body)
        return Rows(tuple(doc["c"]), [tuple(r) for r in doc["d"]], doc["o"])
    raise ValueError(f"not a spool record (kind {kind!r})")


def as_objects(rows: Rows) -> list:
    """The rows as JSON values for the dead-letter file (JSON rows kept byte for byte)."""
    rows = plain(rows)
    if rows.columns is None:
        return [orjson.Fragment(raw) for raw in rows.data]
    cols = rows.columns
    return [dict(zip(cols, r, strict=False)) for r in rows.data]
