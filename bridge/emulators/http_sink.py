"""The generic HTTP target: takes NDJSON, a JSON array or CSV at any path and keeps the rows."""

from __future__ import annotations

import csv
import io

import orjson
from aiohttp import web

from bridge.emulators.base import Emulator


def parse_rows(body: bytes, content_type: str) -> list:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "text/csv":
        reader = csv.DictReader(io.StringIO(body.decode()))
        return list(reader)
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
