"""Axiom dataset ingest: ``POST {url}/v1/ingest/{dataset}`` (edge) or ``/v1/datasets/{dataset}/ingest`` (legacy).

A 200 can carry failures, and a failure names no row: the ack gets
``ingested``/``failed`` and every failure's text; a row is named only where
the failure's timestamp matches exactly one row of the batch.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, ClassVar

import orjson

from bridge import formats, status
from bridge.dialects.base import (
    COMMON_OPTIONS,
    Dialect,
    HttpRequest,
    HttpResponse,
    Option,
    error_message,
    join_url,
    segment,
)
from bridge.outcome import Outcome
from bridge.rows import RowError, Rows

MAX_EVENTS = 10_000
CONTENT_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson", "csv": "text/csv"}


def _reset_in(headers: dict[str, str], name: str) -> float | None:
    """Seconds until an epoch-seconds reset header, if it is there."""
    try:
        return max(0.0, float(headers[name]) - time.time())
    except (KeyError, ValueError):
        return None


def _instant(value: Any) -> datetime | str | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return None


class AxiomDialect(Dialect):
    name = "axiom"
    options: ClassVar[dict[str, Option]] = {
        **COMMON_OPTIONS,
        "format": Option("choice", "json", ("json", "ndjson", "csv"), doc="body: JSON array, NDJSON or CSV"),
        "timestamp_field": Option("str", "", doc="query timestamp-field (Axiom's default: _time)"),
        "timestamp_format": Option("str", "", doc="query timestamp-format, a Go time layout"),
        "csv_delimiter": Option("str", "", doc="query csv-delimiter, one character"),
        "labels": Option("map", {}, doc="X-Axiom-Event-Labels, merged into every event"),
        # zstd level 1 costs little CPU and Axiom takes it; rows are JSON text that shrinks about 4x.
        "compression": Option("choice", "zstd", ("none", "gzip", "zstd"), doc="request body encoding"),
        "legacy": Option("bool", False, doc="use /v1/datasets/{dataset}/ingest"),
        "org_id": Option("str", "", doc="X-Axiom-Org-Id, for personal tokens on the legacy endpoint"),
    }
    auth_forms = (frozenset({"token"}),)
    resource_type = "dataset"
    batch_defaults: ClassVar[dict] = {"max_rows": MAX_EVENTS}
    max_rows_limit = MAX_EVENTS

    @classmethod
    def check_config(cls, route) -> list[str]:
        d = route.options.get("csv_delimiter", "")
        if d and len(d) != 1:
            return [f"routes.{route.name}.options.csv_delimiter: must be one character, got {d!r}"]
        return []

    def __init__(self, route) -> None:
        super().__init__(route)
        o = self.opts
        path = f"/v1/datasets/{segment(route.target)}/ingest" if o["legacy"] else f"/v1/ingest/{segment(route.target)}"
        query = [(k, o[opt]) for k, opt in (("timestamp-field", "timestamp_field"),
                                            ("timestamp-format", "timestamp_format"),
                                            ("csv-delimiter", "csv_delimiter")) if o[opt]]
        self.url = join_url(route.url, path, query)
        self.headers = {"Content-Type": CONTENT_TYPES[o["format"]],
                        "Authorization": "Bearer " + route.auth["token"].value}
        if o["labels"]:
            self.headers["X-Axiom-Event-Labels"] = orjson.dumps(o["labels"]).decode()
        if o["org_id"]:
            self.headers["X-Axiom-Org-Id"] = o["org_id"]
        self.compression = None if o["compression"] == "none" else o["compression"]
        self.time_field = o["timestamp_field"] or "_time"

    def build(self, rows: Rows) -> HttpRequest:
        fmt = self.opts["format"]
        if fmt == "json":
            body = formats.json_array(rows)
        elif fmt == "ndjson":
            body = formats.ndjson(rows)
        else:
            body = formats.csv_body(rows, True, self.opts["csv_delimiter"] or ",")
        return HttpRequest("POST", self.url, dict(self.headers), body, self.compression)

    def _name_rows(self, failures: list[dict], rows: Rows) -> list[RowError]:
        """Failures whose timestamp matches exactly one row; the others stay unnamed."""
        stamps: dict[Any, list[int]] = {}
        for pos, obj in enumerate(formats.dicts(rows)):
            key = _instant(obj.get(self.time_field))
            if key is not None:
                stamps.setdefault(key, []).append(pos)
        errors = []
        for f in failures:
            match = stamps.get(_instant(f.get("timestamp")), [])
            if len(match) == 1:
                errors.append(RowError(match[0], self.time_field, f"Axiom: {f.get('error', '')}"))
        return errors

    def classify(self, response: HttpResponse, rows: Rows) -> Outcome:
        body = response.json()
        if 200 <= response.status < 300:
            out = Outcome(code="OK", http_status=response.status)
            if isinstance(body, dict):
                ingested, failed = body.get("ingested"), body.get("failed")
                failures = [f for f in body.get("failures") or [] if isinstance(f, dict)]
                if isinstance(ingested, int):
                    out.upstream["ingested"] = str(ingested)
                    out.accepted = min(ingested, len(rows))
                if isinstance(failed, int):
                    out.upstream["failed"] = str(failed)
                if failures:
                    out.upstream["failures"] = orjson.dumps([str(f.get("error", "")) for f in failures]).decode()
                    out.row_errors = self._name_rows(failures, rows)
                    if out.accepted is not None:
                        out.accepted = min(out.accepted, len(rows) - len(out.row_errors))
            return out
        message = error_message(body, response.body, "message", "error")
        outcome = status.from_http(response.status, message)
        if response.status == 429:
            outcome.retry_after = _reset_in(response.headers, "x-ratelimit-reset")
        elif response.status == 430:
            # The monthly ingest quota: retrying now cannot help, the caller is told when.
            outcome.code, outcome.reason, outcome.retryable = "RESOURCE_EXHAUSTED", "INGEST_QUOTA_EXCEEDED", False
            outcome.retry_after = _reset_in(response.headers, "x-ingestlimit-reset")
        if outcome.code == "NOT_FOUND":
            outcome.resource = self.route.target
        return outcome
