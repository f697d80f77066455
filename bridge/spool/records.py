"""Rows to spool records and back: a record is one caller request's accepted rows, in the form encoders take."""

from __future__ import annotations

import orjson

from bridge.model.rows import Rows

_TABLE, _JSON = b"T", b"J"


def dump(rows: Rows) -> bytes:
    if rows.columns is None:
        # JSON rows are the caller's object bytes, one per line (decode made sure they hold no newline).
        return _JSON + orjson.dumps(rows.ops) + b"\n" + b"\n".join(rows.data)
    return _TABLE + orjson.dumps({"c": rows.columns, "d": rows.data, "o": rows.ops})


def load(payload: bytes) -> Rows:
    kind, body = payload[:1], payload[1:]
    if kind == _JSON:
        head, _, lines = body.partition(b"\n")
        return Rows(None, lines.split(b"\n") if lines else [], orjson.loads(head))
    if kind == _TABLE:
        doc = orjson.loads(body)
        return Rows(tuple(doc["c"]), [tuple(r) for r in doc["d"]], doc["o"])
    raise ValueError(f"not a spool record (kind {kind!r})")


def as_objects(rows: Rows) -> list:
    """The rows as JSON values for the dead-letter file (JSON rows kept byte for byte)."""
    if rows.columns is None:
        return [orjson.Fragment(raw) for raw in rows.data]
    cols = rows.columns
    return [dict(zip(cols, r, strict=False)) for r in rows.data]
