"""Axiom's ingest endpoints: edge ``/v1/ingest/{dataset}`` and legacy ``/v1/datasets/{dataset}/ingest``.

What it enforces, as Axiom documents it: ``Authorization: Bearer`` with an API
token (``xaat-``; personal ``xapt-`` tokens are refused on the edge endpoint and
need ``X-Axiom-Org-Id`` on the legacy one), datasets that exist, the content
types (a JSON array/object or NDJSON, NDJSON, CSV with a header line or
``X-Axiom-CSV-Fields``), ``Content-Encoding`` gzip or zstd or none (anything
else, such as axiom-py's ``1`` for identity, is refused with 415 as a strict
server does), the query options, at most 10,000 events a request (400), a
field over 1 MB or a field name over 200 bytes as an entry in ``failures`` of
a 200, a request rate limit (429 with ``X-RateLimit-*``) and an ingest quota
(430 with ``X-IngestLimit-*``).

``rows`` keeps each accepted event exactly as it arrived (so the demo can
compare it); ``stored`` keeps what Axiom would store: labels merged (the
event's own fields win), ``_time`` resolved from the time field or the
receive time. ``time_fields`` records, per accepted request, the field used.
"""

from __future__ import annotations

import calendar
import csv
import io
import math
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from bridge.dev.emulators.base import Captured, Emulator, decompress

MAX_EVENTS = 10_000
MAX_FIELD_BYTES = 1_000_000
MAX_NAME_BYTES = 200
ENCODINGS = ("", "gzip", "zstd")
EDGE_TYPES = ("application/json", "application/x-ndjson", "application/nd-json", "text/csv")
LEGACY_TYPES = ("application/json", "application/x-ndjson", "text/csv")
# Go layout tokens → strptime, longest first (enough for the layouts people use with Axiom).
_GO_TOKENS = [("2006", "%Y"), ("January", "%B"), ("Monday", "%A"), ("Jan", "%b"), ("Mon", "%a"),
              ("MST", "%Z"), ("Z07:00", "%z"), ("-07:00", "%z"), ("-0700", "%z"), ("01", "%m"),
              ("02", "%d"), ("15", "%H"), ("03", "%I"), ("04", "%M"), ("05", "%S"), ("PM", "%p"),
              (".000000000", ".%f"), (".000000", ".%f"), (".000", ".%f"), ("06", "%y")]


def go_layout(layout: str) -> str:
    """A Go time layout as a strptime format (the common tokens)."""
    out, i = [], 0
    while i < len(layout):
        for token, directive in _GO_TOKENS:
            if layout.startswith(token, i):
                out.append(directive)
                i += len(token)
                break
        else:
            out.append(layout[i].replace("%", "%%"))
            i += 1
    return "".join(out)


def rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano, as Axiom writes timestamps: trailing zeros of the fraction dropped."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return base + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"


def parse_time(value: Any, layout: str | None) -> int | None:
    """An event's time value in UTC nanoseconds: Go layout if given, else RFC 3339 or an epoch number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        # Auto-detect the epoch unit by magnitude, as Axiom does for numbers.
        scale = next(s for limit, s in ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3), (math.inf, 1))
                     if abs(value) < limit)
        return round(value * scale)
    if not isinstance(value, str):
        return None
    when = _go_parse(value, go_layout(layout)) if layout else _iso_parse(value)
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return calendar.timegm(when.utctimetuple()) * 1_000_000_000 + when.microsecond * 1000


def _iso_parse(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _go_parse(value: str, fmt: str) -> datetime | None:
    """strptime; like Go, a fraction after the seconds is taken even where the layout has none."""
    for candidate in (fmt, fmt.replace("%S", "%S.%f", 1)):
        try:
            return datetime.strptime(value, candidate)  # %z takes "Z" as well
        except ValueError:
            continue
    return None


def _too_big(event: dict) -> str | None:
    """Axiom's per-field limits, as the text of a failure."""
    for key, value in event.items():
        if len(key.encode()) > MAX_NAME_BYTES:
            return f"field name {key[:40]!r}... is longer than {MAX_NAME_BYTES} bytes"
        if isinstance(value, str) and len(value.encode()) > MAX_FIELD_BYTES:
            return f"field {key!r} is larger than 1MB"
        if isinstance(value, dict) and (problem := _too_big(value)):
            return problem
    return None


def _month_end(now: float) -> int:
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AxiomEmulator(Emulator):
    name = "axiom"
    checks_credentials = True
    row_logs = ("stored", "time_fields")

    def __init__(self, datasets: tuple[str, ...] = ("events",), tokens: tuple[str, ...] = ("xaat-demo-token",),
                 org_ids: tuple[str, ...] = ("demo-org",), rate_limit: int | None = None,
                 rate_window: float = 60.0, ingest_limit: int | None = None) -> None:
        super().__init__()
        self.datasets = set(datasets)
        self.tokens = set(tokens)
        self.org_ids = set(org_ids)
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.ingest_limit = ingest_limit  # bytes a month
        self.ingested_bytes = 0
        self.stored: list[dict] = []
        self.time_fields: list[str | None] = []
        self._window: tuple[float, int] = (0.0, 0)
        self._failures: list[dict[int, str]] = []

    # -- what tests use ------------------------------------------------------------------------

    def failures_next(self, failures: list[tuple[int, str]]) -> None:
        """Answer the next valid request 200, with these events (by position in the body) failed."""
        self._failures.append(dict(failures))

    def demo_route(self) -> dict:
        return {"dialect": "axiom", "url": self.url, "target": "events", "auth": {"token": "xaat-demo-token"}}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/ingest/{dataset}", self.ingest)
        app.router.add_post("/v1/datasets/{dataset}/ingest", self.ingest)

    # -- the endpoint --------------------------------------------------------------------------

    def _limit_headers(self, now: float) -> dict[str, str]:
        headers = {}
        if self.rate_limit is not None:
            start, count = self._window
            headers.update({"X-RateLimit-Scope": "organization", "X-RateLimit-Limit": str(self.rate_limit),
                            "X-RateLimit-Remaining": str(max(0, self.rate_limit - count)),
                            "X-RateLimit-Reset": str(math.ceil(start + self.rate_window))})
        if self.ingest_limit is not None:
            headers.update({"X-IngestLimit-Limit": str(self.ingest_limit),
                            "X-IngestLimit-Remaining": str(max(0, self.ingest_limit - self.ingested_bytes)),
                            "X-IngestLimit-Reset": str(_month_end(now))})
        return headers

    def _rate_limited(self, now: float) -> bool:
        if self.rate_limit is None:
            return False
        start, count = self._window
        if now >= start + self.rate_window:
            start, count = now, 0
        self._window = (start, count + 1)
        return count >= self.rate_limit

    def _check_auth(self, request: web.Request, edge: bool) -> None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise BadRequest(401, "invalid authentication credentials")
        if token.startswith("xapt-"):
            if edge:
                raise BadRequest(403, "personal tokens are not supported on the edge ingest endpoint, "
                                      "use an API token")
            if request.headers.get("X-Axiom-Org-Id") not in self.org_ids:
                raise BadRequest(403, "a personal token needs a valid X-Axiom-Org-Id header")

    def _events(self, request: web.Request, body: bytes, edge: bool) -> list[dict]:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in (EDGE_TYPES if edge else LEGACY_TYPES):
            raise BadRequest(415, f"unsupported content type {ctype!r}")
        try:
            if ctype == "text/csv":
                return self._csv(request, body.decode())
            if ctype == "application/json":
                try:
                    data = orjson.loads(body)
                except orjson.JSONDecodeError:
                    data = [orjson.loads(line) for line in body.splitlines() if line.strip()]  # NDJSON is JSON too
                data = [data] if isinstance(data, dict) else data
            else:
                data = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            raise BadRequest(400, f"invalid request body: {e}") from e
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise BadRequest(400, "invalid request body: expected JSON objects")
        return data

    @staticmethod
    def _csv(request: web.Request, text: str) -> list[dict]:
        delimiter = request.query.get("csv-delimiter", ",")
        if len(delimiter) != 1:
            raise BadRequest(400, f"invalid csv-delimiter {delimiter!r}")
        lines = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        fields = request.headers.get("X-Axiom-CSV-Fields")
        names = [f.strip() for f in fields.split(",")] if fields else (lines.pop(0) if lines else [])
        return [dict(zip(names, line, strict=False)) for line in lines]

    @staticmethod
    def _labels(request: web.Request) -> dict:
        try:
            labels = orjson.loads(request.headers.get("X-Axiom-Event-Labels", "{}"))
        except orjson.JSONDecodeError as e:
            raise BadRequest(400, f"invalid X-Axiom-Event-Labels: {e}") from e
        if not isinstance(labels, dict):
            raise BadRequest(400, "X-Axiom-Event-Labels must be a JSON object")
        return labels

    async def ingest(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.bytes_in += len(raw)
        cap = Captured(request.method, request.path, request.raw_path, list(request.query.items()),
                       dict(request.headers), raw, b"")
        self.requests.append(cap)
        now = time.time()
        edge = request.path.startswith("/v1/ingest/")
        try:
            self._check_auth(request, edge)
            scripted = self.scripted(request)
            return scripted if scripted is not None else self._ingest(request, cap, now, edge)
        except BadRequest as e:
            return web.json_response({"message": str(e)}, status=e.status, headers=self._limit_headers(now))

    def _decoded(self, request: web.Request, cap: Captured) -> bytes:
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ENCODINGS:
            raise BadRequest(415, f"unsupported content encoding {encoding!r}")
        try:
            cap.body = decompress(cap.raw, encoding)
        except (OSError, ValueError, EOFError) as e:
            raise BadRequest(400, f"cannot decompress the body: {e}") from e
        return cap.body

    def _ingest(self, request: web.Request, cap: Captured, now: float, edge: bool) -> web.Response:
        if request.match_info["dataset"] not in self.datasets:
            raise BadRequest(404, "dataset not found")
        if self._rate_limited(now):
            return web.json_response({"message": "rate limit exceeded"}, status=429,
                                     headers=self._limit_headers(now))
        body = self._decoded(request, cap)
        if self.ingest_limit is not None and self.ingested_bytes + len(body) > self.ingest_limit:
            return web.json_response({"message": "ingest limit exceeded"}, status=430,
                                     headers=self._limit_headers(now))
        events = self._events(request, body, edge)
        if len(events) > MAX_EVENTS:
            raise BadRequest(400, f"too many events in one request: {len(events)} > {MAX_EVENTS}")
        failures = self._store(request, cap, events, now)
        self.ingested_bytes += len(body)
        headers = {"X-Axiom-Trace-Id": f"{time.time_ns():x}", **self._limit_headers(now)}
        return web.json_response({"ingested": len(events) - len(failures), "failed": len(failures),
                                  "failures": failures, "processedBytes": len(body), "blocksCreated": 0,
                                  "walLength": len(events)}, headers=headers)

    def _store(self, request: web.Request, cap: Captured, events: list[dict], now: float) -> list[dict]:
        labels = self._labels(request)
        field = request.query.get("timestamp-field", "_time")
        layout = request.query.get("timestamp-format")
        scripted = self._failures.pop(0) if self._failures else {}
        received = int(now * 1e9)
        failures = []
        for i, event in enumerate(events):
            ns = parse_time(event.get(field), layout)
            when = rfc3339_nano(received if ns is None else ns)
            problem = scripted.get(i) or _too_big(event)
            if problem:
                failures.append({"timestamp": when, "error": problem})
                continue
            cap.rows.append(event)
            self.rows.append(event)
            self.stored.append({**labels, **event, "_time": when})
        self.time_fields.append(field)
        return failures
