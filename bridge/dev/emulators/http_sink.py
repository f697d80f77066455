"""The generic HTTP target: takes NDJSON, a JSON array or CSV at any path and keeps the rows.

CSV is read as ClickHouse reads it: a header line, an unquoted ``\\N`` is NULL, anything else (quoted or not,
empty included) is text.
"""

from __future__ import annotations

import csv

import orjson
from aiohttp import web

from bridge.dev.emulators import csvread
from bridge.dev.emulators.base import Emulator


def parse_csv(body: bytes, delimiter: str = ",") -> list[dict]:
    records = csvread.records(body.decode(), delimiter)
    if not records:
        return []
    names = [f.text for f in records[0].fields]
    return [{n: None if (f.text == "\\N" and not f.quoted) else f.text for n, f in zip(names, r.fields, strict=False)}
            for r in records[1:]]


def parse_rows(body: bytes, content_type: str) -> list:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "text/csv":
        return parse_csv(body)
    if ctype == "application/json":
        data = orjson.loads(body)
        return data if isinstance(data, list) else [data]
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


class HttpSink(Emulator):
    name = "http"

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.status = status

    def routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/{tail:.*}", self.ingest)

    def demo_route(self) -> dict:
        return {"dialect": "http", "url": self.url + "/ingest", "options": {"format": "ndjson"}}

    async def ingest(self, request: web.Request) -> web.Response:
        try:
            cap = await self.capture(request)
            rows = parse_rows(cap.body, request.headers.get("Content-Type", "application/x-ndjson"))
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            return web.json_response({"message": f"cannot parse body: {e}"}, status=400)
        cap.rows = rows
        if self.status >= 300:
            return web.json_response({"message": f"emulated failure {self.status}"}, status=self.status)
        self.rows.extend(rows)
        return web.json_response({"ingested": len(rows)})
