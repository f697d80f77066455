"""Axiom dataset ingest: ``POST {url}/v1/ingest/{dataset}`` (edge) or ``/v1/datasets/{dataset}/ingest`` (legacy).

A 200 can carry failures, and a failure names no row, only the event's
timestamp and an error text. The ack gets ``ingested``/``failed`` and every
failure; a row is named only where the failure's timestamp matches exactly
one row of the batch, and ``Outcome.accepted = ingested`` lets the pipeline
count the rejections it cannot name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from bridge.dialects.base import (
    COMMON_OPTIONS,
    Dialect,
    HttpRequest,
    HttpResponse,
    Option,
    bearer,
    compression_option,
    error_message,
    join_url,
    segment,
    unreadable,
)
from bridge.model.outcome import Outcome
from bridge.model.rows import RowError, RowForm, Rows
from bridge.send import answer
from bridge.send.retry import parse_retry_after
from bridge.transcode import formats

if TYPE_CHECKING:
    from bridge.model.config import RouteConfig

MAX_EVENTS = 10_000
DEFAULT_TIME_FIELD = "_time"
CONTENT_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson", "csv": "text/csv"}
# Epoch numbers in the time field, per the route's ``timestamps`` option, in nanoseconds.
EPOCH_SCALE = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000, "epoch_us": 1_000, "epoch_ns": 1}
_FRACTION = re.compile(r"\.(\d+)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC) - _EPOCH


def reset_in(headers: dict[str, str], name: str, now: float | None = None) -> float | None:
    """Seconds until an epoch-seconds reset header (X-RateLimit-Reset, X-IngestLimit-Reset), if present."""
    try:
        reset = float(headers[name])
    except (KeyError, ValueError):
        return None
    return max(0.0, reset - (time.time() if now is None else now))


def instant_ns(value: Any, epoch_scale: int | None = None) -> int | None:
    """An RFC 3339 string (or an epoch number, given its unit) as UTC nanoseconds; None if it is neither.

    Axiom answers with RFC 3339 nano timestamps, rows may carry milliseconds or
    no fraction: comparing instants, not text, lets them meet.
    """
    if isinstance(value, str):
        m = _FRACTION.search(value)
        nanos = int(m.group(1)[:9].ljust(9, "0")) if m else 0
        text = value[: m.start()] + value[m.end():] if m else value
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # Axiom reads zone-less times as UTC
        return (when - _EPOCH) // _ONE_SECOND * 1_000_000_000 + nanos
    if not epoch_scale or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * epoch_scale
    if isinstance(value, (float, orjson.Fragment)):  # a Fragment: an exact number (epoch_s, a JSON row's text)
        try:
            return int((Decimal(orjson.dumps(value).decode()) * epoch_scale).to_integral_value())
        except (ArithmeticError, ValueError):
            return None
    return None


def _json_value(raw: bytes | None) -> Any:
    """A JSON row's value as instant_ns reads it: strings decoded, numbers kept exact as a Fragment."""
    if raw is None:
        return None
    if raw[:1] == b'"':
        return orjson.loads(raw)
    if raw[:1] in b"-0123456789":
        return orjson.Fragment(raw)
    return None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def personal_token(token: str) -> bool:
    return token.startswith("xapt-")


class AxiomDialect(Dialect):
    name = "axiom"
    options: ClassVar[dict[str, Option]] = {
        **COMMON_OPTIONS,
        "format": Option("choice", "json", ("json", "ndjson", "csv"), doc="body: JSON array, NDJSON or CSV"),
        "timestamp_field": Option("str", "", doc="query timestamp-field (Axiom: _time, else the receive time)"),
        "timestamp_format": Option("str", "", doc="query timestamp-format, a Go time layout"),
        "csv_delimiter": Option("str", "", doc="query csv-delimiter, one character (Axiom: ,)"),
        "labels": Option("map", {}, doc="X-Axiom-Event-Labels JSON object, merged into every event"),
        # zstd: Axiom takes it, axiom-go sends it, it compresses JSON about as well as gzip at a
        # fraction of the CPU; a 10,000-event batch is large, and Axiom bills ingest by volume.
        "compression": compression_option("zstd"),
        "legacy": Option("bool", False, doc="POST /v1/datasets/{dataset}/ingest instead of the edge path"),
        "org_id": Option("str", "", doc="X-Axiom-Org-Id, needed with a personal (xapt-) token on the legacy path"),
    }
    auth_forms = (frozenset({"token"}),)
    resource_type = "dataset"
    batch_defaults: ClassVar[dict] = {"max_rows": MAX_EVENTS}
    max_rows_limit = MAX_EVENTS

    @classmethod
    def check_config(cls, route: RouteConfig) -> list[str]:
        o = route.options
        problems = []
        delimiter = o.get("csv_delimiter", "")
        if delimiter and len(delimiter) != 1:
            problems.append(f"options.csv_delimiter: must be one character, got {delimiter!r}")
        token = route.auth["token"].value
        if personal_token(token) and not o.get("legacy"):
            problems.append("auth.token: a personal token (xapt-) is refused by the edge endpoint; "
                            "use an API token (xaat-), or options.legacy: true with options.org_id")
        elif personal_token(token) and not o.get("org_id"):
            problems.append("options.org_id: a personal token (xapt-) needs the organisation ID")
        return problems

    def __init__(self, route: RouteConfig) -> None:
        super().__init__(route)
        o = self.opts
        name = segment(route.target)
        path = f"/v1/datasets/{name}/ingest" if o["legacy"] else f"/v1/ingest/{name}"
        query = [(param, o[opt]) for param, opt in (("timestamp-field", "timestamp_field"),
                                                    ("timestamp-format", "timestamp_format"),
                                                    ("csv-delimiter", "csv_delimiter")) if o[opt]]
        self.url = join_url(route.url, path, query)
        self.headers = {"Content-Type": CONTENT_TYPES[o["format"]], **bearer(route.auth["token"])}
        if o["labels"]:
            self.headers["X-Axiom-Event-Labels"] = orjson.dumps(o["labels"]).decode()
        if o["org_id"]:
            self.headers["X-Axiom-Org-Id"] = o["org_id"]
        # None: the sender then sends no Content-Encoding at all (never "identity", never axiom-py's "1").
        self.time_field = o["timestamp_field"] or DEFAULT_TIME_FIELD
        self.epoch_scale = EPOCH_SCALE.get(o["timestamps"])

    def sends_rows_as_objects(self) -> bool:
        # The time field reads alike from both (instant_ns); CSV is a table: JSON rows of different requests
        # would share one header.
        return self.opts["format"] in ("json", "ndjson")

    def row_form(self) -> RowForm | None:
        # Axiom documents no NULL token for CSV: null is an empty field (and "" a quoted one).
        return RowForm("csv", self.opts["csv_delimiter"] or ",") if self.opts["format"] == "csv" else None

    def build(self, rows: Rows) -> HttpRequest:
        rows = formats.as_form(rows, self.row_form())
        fmt = self.opts["format"]
        if fmt == "json":
            body = formats.json_array(rows)
        elif fmt == "ndjson":
            body = formats.ndjson(rows)
        else:
            # Axiom documents no NULL token for CSV: null is an empty field (and "" a quoted one).
            body = formats.csv_body(rows, True, self.opts["csv_delimiter"] or ",")
        return HttpRequest("POST", self.url, dict(self.headers), body, self.compression)

    # -- the answer -------------------------------------------------------------------------------

    def _times(self, rows: Rows) -> Iterable[Any]:
        """Each row's time-field value (a column read straight from the tuples when it is one)."""
        if rows.columns is not None:
            if self.time_field not in rows.columns:
                return ()
            rows = formats.plain(rows)  # CSV lines: their values again
            i = rows.columns.index(self.time_field)
            return (values[i] for values in rows.data)
        field = self.time_field
        return (_json_value(formats.split(raw).get(field)) for raw in rows.data)

    def name_rows(self, failures: list[dict], rows: Rows) -> list[RowError]:
        """Failures whose timestamp matches exactly one row of the batch; the others stay unnamed."""
        positions: dict[int, list[int]] = {}
        for pos, value in enumerate(self._times(rows)):
            key = instant_ns(value, self.epoch_scale)
            if key is not None:
                positions.setdefault(key, []).append(pos)
        errors: dict[int, RowError] = {}
        for f in failures:
            match = positions.get(instant_ns(f.get("timestamp")), ())
            if len(match) == 1 and match[0] not in errors:
                errors[match[0]] = RowError(match[0], self.time_field, f"Axiom: {f.get('error', '')}")
        return sorted(errors.values(), key=lambda e: e.index)

    def reads_success_body(self) -> bool:
        return True  # a 200 can carry failures: its counts are the answer

    def _ingest_status(self, response: HttpResponse, rows: Rows) -> Outcome:
        body = response.json()
        ingested, failed = (body.get("ingested"), body.get("failed")) if isinstance(body, dict) else (None, None)
        if not (_count(ingested) and _count(failed)):
            return unreadable(response, "UPSTREAM_ANSWER_UNREADABLE",
                              "its body does not hold the ingested and failed counts Axiom answers with")
        out = Outcome(code="OK", http_status=response.status)
        failures = [{"timestamp": str(f.get("timestamp", "")), "error": str(f.get("error", ""))}
                    for f in body.get("failures") or () if isinstance(f, dict)]
        out.upstream["ingested"] = str(ingested)
        # Rows past `ingested` were refused even where no failure names them.
        out.accepted = max(0, min(ingested, len(rows)))
        out.upstream["failed"] = str(failed)
        if isinstance(body.get("processedBytes"), int):
            out.upstream["processed_bytes"] = str(body["processedBytes"])
        if failures:
            # Every failure as Axiom gave it: the timestamp is the only way back to the event.
            out.upstream["failures"] = orjson.dumps(failures).decode()
            out.row_errors = self.name_rows(failures, rows)
            if out.accepted is not None:
                out.accepted = min(out.accepted, len(rows) - len(out.row_errors))
        return out

    def classify(self, response: HttpResponse, rows: Rows) -> Outcome:
        if 200 <= response.status < 300:
            return self._ingest_status(response, rows)
        body = response.json()
        # Axiom errors are {"message"}, sometimes {"error"} or {"code", "message"}, or not JSON at all.
        message = error_message(body, response.body, "message", "error")
        code = body.get("code") if isinstance(body, dict) else None
        outcome = answer.from_http(response.status, message, "" if code is None else str(code))
        headers = response.headers
        if response.status == 429:
            # Axiom says when the window resets; the sender falls back to Retry-After without it.
            outcome.retry_after = reset_in(headers, "x-ratelimit-reset")
        elif response.status == 430:
            # The ingest quota (bytes per month) is used up: retrying now cannot help; say when it resets.
            outcome.code, outcome.reason, outcome.retryable = "RESOURCE_EXHAUSTED", "INGEST_QUOTA_EXCEEDED", False
            outcome.retry_after = reset_in(headers, "x-ingestlimit-reset")
            if outcome.retry_after is None:
                outcome.retry_after = parse_retry_after(headers.get("retry-after"))
        return outcome

