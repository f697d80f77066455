"""Value properties the fuzz run checks on every body it builds (see tests/test_fuzz.py, properties 4-5).

4. JSON rows: every top-level number of an accepted row appears in the bodies with the text the caller wrote.
5. Typed rows: every map (MapValue, a protobuf map field) is written with its keys in sorted order.
6. Timestamps: RFC 3339 within 0001..9999, epoch_s the exact decimal (fraction digits as in RFC 3339), other
   epochs the floor of the nanosecond count while it fits an int64; any other timestamp rejects its row.

Bodies are read the way their target reads them (JSON or CSV) with every number kept as its text.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from bridge.dev.emulators import csvread
from bridge.proto import pb

_NUMBER_START = tuple("-0123456789")


def body_numbers(kind: str, body: bytes) -> Counter[str]:
    """The text of every number in a body (CSV: every unquoted field that is a number)."""
    nums: Counter[str] = Counter()
    if kind.startswith("csv"):
        for rec in csvread.records(body.decode()):
            nums.update(f.text for f in rec.fields if not f.quoted and f.text.startswith(_NUMBER_START))
        return nums

    def keep(text: str) -> int:
        nums[text] += 1
        return 0

    for doc in body.splitlines() if kind == "ndjson" else [body]:
        json.loads(doc, parse_int=keep, parse_float=keep)
    return nums


def row_numbers(raw_rows: list[bytes]) -> Counter[str]:
    """The text of every top-level number of JSON rows, as written (a repeated key: its last value)."""
    nums: Counter[str] = Counter()
    for raw in raw_rows:
        top = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
        nums.update(bytes(v).decode() for v in top.values() if bytes(v)[:1] in b"-0123456789")
    return nums


def check_numbers_as_written(kind: str, raw_rows: list[bytes], bodies: list[bytes]) -> None:
    sent: Counter[str] = Counter()
    for body in bodies:
        sent += body_numbers(kind, body)
    missing = row_numbers(raw_rows) - sent
    assert not missing, f"numbers not sent as written: {dict(missing)}"


def body_records(kind: str, route: dict, body: bytes) -> list[dict] | None:
    """The row objects of a JSON body (None for CSV), unwrapped from Feldera's change records."""
    if kind.startswith("csv"):
        return None
    if kind == "ndjson":
        recs = [json.loads(line) for line in body.splitlines()]
    elif kind == "compact":
        doc = json.loads(body)
        recs = [dict(zip(doc["columns"], r, strict=True)) for r in doc["data"]]
    else:
        doc = json.loads(body)
        recs = doc["data"] if kind == "obsrv" else doc
    if route["dialect"] == "feldera":
        update = route["options"].get("update_format", "insert_delete")
        if update == "insert_delete":
            recs = [next(iter(r.values())) for r in recs]
        elif update == "debezium":
            recs = [r["payload"].get("after") or r["payload"].get("before") for r in recs]
    return recs


def _sorted_maps(v: Any) -> bool:
    if isinstance(v, dict):
        return list(v) == sorted(v) and all(_sorted_maps(x) for x in v.values())
    if isinstance(v, list):
        return all(_sorted_maps(x) for x in v)
    return True


def check_maps_sorted(kind: str, route: dict, bodies: list[bytes], columns: tuple[str, ...] | None) -> None:
    """Every nested object of the given columns (all columns: None) has its keys in sorted order."""
    for body in bodies:
        for rec in body_records(kind, route, body) or ():
            for name, value in rec.items():
                if columns is None or name in columns:
                    assert _sorted_maps(value), f"column {name!r}: keys not in sorted order: {value!r}"


def _fraction_ok(frac: str, nanos: int) -> bool:
    """0, 3, 6 or 9 digits, the fewest of these that hold ``nanos`` exactly, and equal to it."""
    fewest = next(d for d in (0, 3, 6, 9) if nanos % 10 ** (9 - d) == 0)
    return len(frac) == fewest and int(frac.ljust(9, "0") or "0") == nanos


def check_timestamp(pipeline: Any, route: dict, kind: str, stamp: Any) -> None:
    """Property 6 for one timestamp, as the only value of a one-row RowBatch."""
    mode = route["options"].get("timestamps", "rfc3339")
    s, n = stamp.seconds, stamp.nanos
    total = s * 10**9 + n
    per = {"epoch_ms": 10**6, "epoch_us": 10**3, "epoch_ns": 1}.get(mode)
    valid = 0 <= n < 10**9 and (
        -62135596800 <= s <= 253402300799 if mode == "rfc3339" else per is None or -(2**63) <= total // per < 2**63)
    row = pb.Row(values=[pb.Value(timestamp=stamp)])
    req = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=["t"], rows=[row]))
    rows, errors = pipeline.prepare(pb.IngestRequest.FromString(req.SerializeToString()))
    assert (len(rows), len(errors)) == ((1, 0) if valid else (0, 1)), (mode, s, n, errors)
    if not valid:
        return
    doc = json.loads(pipeline.dialect.build(rows).body.splitlines()[0], parse_int=str, parse_float=str)
    text = dict(zip(doc["columns"], doc["data"][0], strict=True))["t"] if kind == "compact" else doc["t"]
    if mode == "rfc3339":
        base, _, frac = text[:-1].partition(".")
        assert text.endswith("Z") and _fraction_ok(frac, n), text
        assert base == (datetime(1970, 1, 1) + timedelta(seconds=s)).isoformat(), text
    elif mode == "epoch_s":
        assert Decimal(text) == Decimal(total).scaleb(-9), text
        assert _fraction_ok(text.partition(".")[2], abs(total) % 10**9), text
    else:
        assert int(text) == total // per, text
