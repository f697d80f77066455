"""Timeplus ingest: Enterprise (``/{ws}/api/v1beta2/...``), Cloud v1beta1 and Proton (``/proton/v1/ingest/...``).

One server answers all three. Enforced: each API's credentials, the compact
body (``columns`` and ``data`` present, rows as long as ``columns``), NDJSON
rows holding every stream column (Enterprise and Cloud only), known streams
and columns, ``Content-Encoding: identity`` refused by Proton (501), and
Proton's idempotent ids (the last 1000 per stream: a repeat answers 200 and
is not stored again). Errors use each surface's body: Proton
``{"error_msg","code","request_id"}`` with ``x-timeplus-exception-code``,
Enterprise ``{"code","message","system"}``.

The streams API (``GET .../api/v1beta2/streams/{name}``) answers a stream as
the Enterprise REST reference describes it: ``name``, ``engine``, ``mode``
and ``columns`` of ``{name, type, nullable, default, codec}``, ``_tp_time``
first with its default (the time of ingestion). Column types come from
``types`` (stream -> column -> type); a column not listed there is a string.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import deque

import orjson
from aiohttp import web

from bridge.dev import sample
from bridge.dev.emulators.base import Emulator

SAMPLE_TYPES = {"id": "int64", "user": "string", "price": "float64", "ok": "bool", "ts": "datetime64(3, 'UTC')",
                "category": "string", "count": "int32", "message": "nullable(string)"}


class _Refused(Exception):
    """A body Timeplus refuses: its exception code, message, and Proton's HTTP status for it."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class TimeplusEmulator(Emulator):
    name = "timeplus"
    checks_credentials = True
    row_logs = ("changes",)

    def __init__(self, streams: dict[str, list[str]] | None = None, changelog: tuple[str, ...] = (),
                 api_key: str = "demo-api-key", user: str = "ingest", password: str = "secret",
                 proton_users: dict[str, str] | None = None, types: dict[str, dict[str, str]] | None = None) -> None:
        super().__init__()
        self.streams = streams or {"clicks": list(sample.COLUMNS)}
        self.types = types if types is not None else {"clicks": dict(SAMPLE_TYPES)}
        self.changelog = set(changelog)
        self.api_key, self.user, self.password = api_key, user, password
        self.proton_users = {"default": ""} if proton_users is None else proton_users
        self.idempotent: dict[str, deque[str]] = {}
        self.changes: list[tuple[int, dict]] = []

    def demo_route(self) -> dict:
        return {"dialect": "timeplus", "url": self.url + "/default", "target": "clicks",
                "auth": {"username": self.user, "password": self.password}}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{ws}/api/{version:v1beta[12]}/streams/{stream}/ingest", self.enterprise)
        app.router.add_post("/api/{version:v1beta[12]}/streams/{stream}/ingest", self.enterprise)
        app.router.add_get("/{ws}/api/{version:v1beta[12]}/streams/{stream}", self.stream_info)
        app.router.add_get("/api/{version:v1beta[12]}/streams/{stream}", self.stream_info)
        app.router.add_post("/proton/v1/ingest/streams/{stream}", self.proton)
        app.router.add_post("/timeplusd/v1/ingest/streams/{stream}", self.proton)

    # -- answers ------------------------------------------------------------------------------
    @staticmethod
    def _proton_error(status: int, code: int, message: str) -> web.Response:
        return web.json_response({"error_msg": message, "code": code, "request_id": str(uuid.uuid4())},
                                 status=status, headers={"x-timeplus-exception-code": str(code)},
                                 content_type="application/json")

    @staticmethod
    def _enterprise_error(status: int, code: int, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message, "system": "timeplusd"}, status=status)

    def _basic_ok(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (self.user, self.password)

    # -- parsing ------------------------------------------------------------------------------
    def _parse(self, request: web.Request, body: bytes, stream: str, ndjson_ok: bool) -> list[dict]:
        """The rows of a body; _Refused with Timeplus' code when it would refuse them."""
        try:
            return self._rows(request, body, stream, ndjson_ok)
        except (ValueError, UnicodeDecodeError) as e:  # not JSON at all
            raise _Refused(117, f"Cannot parse input: {e}") from None

    def _rows(self, request: web.Request, body: bytes, stream: str, ndjson_ok: bool) -> list[dict]:
        fmt = request.query.get("format")
        ctype = request.headers.get("Content-Type", "")
        if fmt is None:
            fmt = "streaming" if ("x-ndjson" in ctype or "format=streaming" in ctype) else "compact"
        allowed = set(self.streams[stream]) | {"_tp_time"} | ({"_tp_delta"} if stream in self.changelog else set())
        if fmt == "compact":
            doc = orjson.loads(body)
            if not isinstance(doc, dict) or not isinstance(doc.get("columns"), list) or not doc["columns"]:
                raise _Refused(117, "Invalid Request, 'columns' field is missing")
            if not isinstance(doc.get("data"), list):
                raise _Refused(117, "Invalid Request, missing 'data' field")
            cols = doc["columns"]
            for c in cols:
                if c not in allowed:
                    raise _Refused(16, f"No such column {c} in stream default.{stream}", status=500)
            rows = []
            for r in doc["data"]:
                if not isinstance(r, list) or len(r) != len(cols):
                    raise _Refused(117, "Cannot parse input: row length differs from columns")
                rows.append(dict(zip(cols, r, strict=True)))
            return rows
        if fmt != "streaming" or not ndjson_ok:
            raise _Refused(408, f"unsupported format {fmt}")
        rows = []
        text, pos = body.decode(), 0
        decoder = json.JSONDecoder()
        # Objects may span lines or sit back to back.
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if pos >= len(text):
                break
            obj, pos = decoder.raw_decode(text, pos)
            rows.append(obj)
        for r in rows:
            missing = [c for c in self.streams[stream] if c not in r]
            if missing:
                raise _Refused(117, f"column {missing[0]} is missing")
        return rows

    def _store(self, rows: list[dict]) -> None:
        for r in rows:
            if "_tp_delta" in r:
                r = dict(r)
                delta = r.pop("_tp_delta")
                self.changes.append((delta, r))
            self.rows.append(r)

    # -- handlers -------------------------------------------------------------------------------
    def _enterprise_auth(self, request: web.Request) -> bool:
        v1 = request.match_info["version"] == "v1beta1"
        key = request.headers.get("X-Api-Key") or (
            request.headers.get("Authorization", "")[7:] if request.headers.get("Authorization", "").startswith(
                "ApiKey ") else None)
        return key == self.api_key or (not v1 and self._basic_ok(request.headers.get("Authorization", "")))

    async def stream_info(self, request: web.Request) -> web.Response:
        """``GET /api/v1beta2/streams/{name}``: the stream and its columns (the Enterprise REST ``Stream``)."""
        await self.capture(request)
        if not self._enterprise_auth(request):
            return web.json_response({"code": 401, "message": "unauthorized", "system": "appserver"}, status=401)
        stream = request.match_info["stream"]
        if stream not in self.streams:
            return web.Response(status=404, text="404 page not found")
        types = self.types.get(stream, {})
        cols = [{"name": "_tp_time", "type": "datetime64(3, 'UTC')", "nullable": False,
                 "default": "now64(3, 'UTC')", "codec": "CODEC(DoubleDelta, LZ4)"}]
        for c in self.streams[stream]:
            t = types.get(c, "string")
            cols.append({"name": c, "type": t, "nullable": t.startswith("nullable("), "default": "", "codec": ""})
        if stream in self.changelog:
            cols.append({"name": "_tp_delta", "type": "int8", "nullable": False, "default": "1", "codec": ""})
        return web.json_response({"name": stream, "engine": "Stream", "mode": "append", "description": "",
                                  "columns": cols, "ttl_expression": "", "logstore_retention_bytes": -1,
                                  "logstore_retention_ms": -1, "is_external": False})

    async def enterprise(self, request: web.Request) -> web.Response:
        cap = await self.capture(request)
        if not self._enterprise_auth(request):
            return web.json_response({"code": 401, "message": "unauthorized", "system": "appserver"}, status=401)
        if (scripted := self.scripted(request)) is not None:
            return scripted
        stream = request.match_info["stream"]
        if stream not in self.streams:
            return self._enterprise_error(400, 60, f"Stream default.{stream} doesn't exist")
        try:
            rows = self._parse(request, cap.body, stream, ndjson_ok=True)
        except _Refused as e:
            return self._enterprise_error(400, e.code, e.message)  # the app server answers 400 for all of them
        cap.rows = rows
        self._store(rows)
        return web.Response(status=200)

    async def proton(self, request: web.Request) -> web.Response:
        enc = request.headers.get("Content-Encoding")
        if enc is not None and enc.lower() not in ("gzip", "gz", "zstd", "zst", "none", ""):
            await request.read()
            return self._proton_error(501, 48, f"Unknown compression method {enc}")
        cap = await self.capture(request)
        h = request.headers
        if "x-timeplus-user" in h:
            user, key = h["x-timeplus-user"], h.get("x-timeplus-key", "")
        elif h.get("Authorization", "").startswith("Basic "):
            user, _, key = base64.b64decode(h["Authorization"][6:]).decode().partition(":")
        elif "Authorization" in h:
            return self._proton_error(500, 516, "default: Authentication failed: unsupported authorization scheme")
        else:
            user, key = "default", ""
        if self.proton_users.get(user) != key:
            return self._proton_error(
                500, 516, f"{user}: Authentication failed: password is incorrect or there is no user with such name")
        if (scripted := self.scripted(request)) is not None:
            return scripted
        stream = request.match_info["stream"]
        if stream not in self.streams:
            return self._proton_error(404, 60, f"Stream default.{stream} doesn't exist")
        try:
            rows = self._parse(request, cap.body, stream, ndjson_ok=False)
        except _Refused as e:
            return self._proton_error(e.status, e.code, e.message)
        request_id = str(uuid.uuid4())
        ident = h.get("x-timeplus-idempotent-id")
        seen = self.idempotent.setdefault(stream, deque(maxlen=1000))
        if ident is None or ident not in seen:
            if ident is not None:
                seen.append(ident)
            cap.rows = rows
            self._store(rows)
        return web.json_response({"request_id": request_id})
