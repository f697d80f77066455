"""Axiom's ingest endpoints (edge ``/v1/ingest/{dataset}`` and legacy ``/v1/datasets/{dataset}/ingest``).

Enforces API tokens (``xaat-``; personal ``xapt-`` tokens are refused on the
edge endpoint), the three content types, gzip/zstd only, at most 10,000
events, and reports a field over 1 MB as a failure in a 200 answer, as Axiom
does. ``rows`` keeps the events as sent; ``stored`` what Axiom would keep
(labels merged, the time field resolved).
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime

import orjson
from aiohttp import web

from bridge.emulators.base import Emulator, decompress

MAX_EVENTS = 10_000
MAX_FIELD = 1_000_000


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class AxiomEmulator(Emulator):
    name = "axiom"

    def __init__(self, datasets: tuple[str, ...] = ("events",), tokens: tuple[str, ...] = ("xaat-demo-token",)) -> None:
        super().__init__()
        self.datasets = set(datasets)
        self.tokens = set(tokens)
        self.stored: list[dict] = []
        self._script: list[tuple[int, object, dict]] = []
        self._failures: list[list[tuple[int, str]]] = []

    def fail_next(self, status: int, body: object, headers: dict | None = None, times: int = 1) -> None:
        self._script += [(status, body, headers or {})] * times

    def failures_next(self, failures: list[tuple[int, str]]) -> None:
        """Answer the next request 200 with these events (by position) failed."""
        self._failures.append(failures)

    def demo_route(self) -> dict:
        return {"dialect": "axiom", "url": self.url, "target": "events", "auth": {"token": "xaat-demo-token"}}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/ingest/{dataset}", self.ingest)
        app.router.add_post("/v1/datasets/{dataset}/ingest", self.ingest)

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"message": message}, status=status)

    def _events(self, request: web.Request, body: bytes) -> list[dict]:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            data = orjson.loads(body)
            if isinstance(data, dict):
                return [data]
            if isinstance(data, list) and all(isinstance(x, dict) for x in data):
                return data
            raise ValueError("expected a JSON object or an array of objects")
        if ctype in ("application/x-ndjson", "application/nd-json"):
            return [orjson.loads(line) for line in body.splitlines() if line.strip()]
        if ctype == "text/csv":
            delim = request.query.get("csv-delimiter", ",")
            fields = request.headers.get("X-Axiom-CSV-Fields")
            reader = csv.reader(io.StringIO(body.decode()), delimiter=delim)
            lines = list(reader)
            names = fields.split(",") if fields else lines.pop(0)
            return [dict(zip(names, line, strict=False)) for line in lines]
        raise LookupError(ctype)

    async def ingest(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.bytes_in += len(raw)
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token not in self.tokens:
            return self._error(401, "invalid authentication credentials")
        edge = request.path.startswith("/v1/ingest/")
        if edge and token.startswith("xapt-"):
            return self._error(403, "personal tokens are not supported on the edge ingest endpoint")
        enc = request.headers.get("Content-Encoding")
        if enc is not None and enc not in ("gzip", "zstd"):
            return self._error(400, f"unsupported content encoding {enc!r}")
        try:
            body = decompress(raw, enc or "")
        except (OSError, ValueError) as e:
            return self._error(400, f"cannot decompress body: {e}")
        from bridge.emulators.base import Captured

        cap = Captured(request.method, request.path, request.raw_path, list(request.query.items()),
                       dict(request.headers), raw, body)
        self.requests.append(cap)
        if self._script:
            status, payload, headers = self._script.pop(0)
            if isinstance(payload, bytes):
                return web.Response(body=payload, status=status, headers=headers)
            return web.json_response(payload, status=status, headers=headers)
        if request.match_info["dataset"] not in self.datasets:
            return self._error(404, "dataset not found")
        try:
            events = self._events(request, body)
        except LookupError as e:
            return self._error(415, f"unsupported content type {e}")
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            return self._error(400, f"invalid request body: {e}")
        if len(events) > MAX_EVENTS:
            return self._error(400, f"too many events in one request: {len(events)} > {MAX_EVENTS}")
        labels = orjson.loads(request.headers.get("X-Axiom-Event-Labels", "{}"))
        time_field = request.query.get("timestamp-field", "_time")
        scripted = dict(self._failures.pop(0)) if self._failures else {}
        failures = []
        for i, event in enumerate(events):
            when = event.get(time_field) or _now()
            big = next((k for k, v in event.items() if isinstance(v, str) and len(v) > MAX_FIELD), None)
            problem = scripted.get(i) or (f"field {big!r} is larger than 1MB" if big else None)
            if problem:
                failures.append({"timestamp": when, "error": problem})
                continue
            cap.rows.append(event)
            self.rows.append(event)
            self.stored.append({**event, **labels, "_time": when})
        return web.json_response({"ingested": len(events) - len(failures), "failed": len(failures),
                                  "failures": failures, "processedBytes": len(body), "blocksCreated": 0,
                                  "walLength": len(events)}, headers={"X-Axiom-Trace-Id": str(time.time_ns())})
