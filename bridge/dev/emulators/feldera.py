"""A Feldera pipeline manager's ingress and completion endpoints.

Pipelines hold tables (unquoted names match case-insensitively); a pipeline
is running, paused (a request without ``force`` is held, then 503 as
Feldera's 30 s proxy timeout would answer) or stopped. JSON records are
checked per ``update_format``; a bad record is a ``ParseErrors`` entry with
its ``invalid_text`` and an ``event_number`` that keeps counting across
requests. With ``array=true`` an array with a bad record is dropped whole;
without it the good records are kept and the answer is still 400.
Completion tokens answer ``inprogress`` for ``inprogress_polls`` polls,
then ``complete``; after ``restart()`` they are stale (410). CSV fields are
read as Feldera documents: quotes removed first, then in a nullable column
``NULL`` and ``null`` are NULL, and so is an empty field unless the column is
a string (``Pipeline.csv_types``).

``GET /v0/pipelines/{name}`` answers the pipeline as the API reference's
``PipelineSelectedInfo`` does, with ``program_info.schema``: its tables as
``inputs`` of ``{name, case_sensitive, fields}``, each field with its
``columntype`` (``{type, nullable, precision, scale}``). Field types come
from ``Pipeline.sql_types`` (table -> column -> SQL type, ``NOT NULL``
appended for a non-nullable one); an unlisted column is a nullable VARCHAR.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from bridge.dev import sample
from bridge.dev.emulators import csvread
from bridge.dev.emulators.base import Emulator


@dataclass
class Pipeline:
    tables: dict[str, list[str]]
    state: str = "running"  # running | paused | stopped
    # For CSV: table -> column -> "string", "string?", "other" or "other?" (? nullable); unlisted: "string?".
    csv_types: dict[str, dict[str, str]] = field(default_factory=dict)
    # For the program schema: table -> column -> SQL type ("BIGINT NOT NULL", "DECIMAL(20, 0)", ...).
    sql_types: dict[str, dict[str, str]] = field(default_factory=dict)


SAMPLE_SQL_TYPES = {"id": "BIGINT NOT NULL", "user": "VARCHAR NOT NULL", "price": "DOUBLE", "ok": "BOOLEAN",
                    "ts": "TIMESTAMP", "category": "VARCHAR", "count": "INTEGER", "message": "VARCHAR"}
_SQL_TYPE = re.compile(r"^\s*(\w+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*(NOT\s+NULL)?\s*$", re.IGNORECASE)


def column_type(sql: str) -> dict:
    """A SQL type as the compiler's JSON ``ColumnType`` (VARCHAR's precision is -1, TIMESTAMP's 0)."""
    m = _SQL_TYPE.match(sql)
    if m is None:
        raise ValueError(f"not a SQL type: {sql!r}")
    name = m.group(1).upper()
    precision = int(m.group(2)) if m.group(2) else {"VARCHAR": -1, "TIMESTAMP": 0, "TIME": 0}.get(name)
    out: dict = {"type": name, "nullable": m.group(4) is None}
    if precision is not None:
        out["precision"] = precision
    if m.group(3) is not None:
        out["scale"] = int(m.group(3))
    return out


def _csv_value(text: str, kind: str) -> str | None:
    """A CSV field as Feldera reads it (quotes already removed): in a nullable column NULL and null are NULL,
    and so is an empty field unless the column is a string."""
    if kind.endswith("?") and (text in ("NULL", "null") or (text == "" and kind != "string?")):
        return None
    return text


@dataclass
class _Endpoint:
    events: int = 0  # event numbers continue across requests, like Feldera's cached parser
    tokens: dict[str, int] = field(default_factory=dict)


def _error(status: int, code: str, message: str, details: dict | None = None) -> web.Response:
    body = {"message": message, "error_code": code}
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=status)


def _not_deployed(name: str) -> web.Response:
    return _error(503, "PipelineInteractionNotDeployed",
                  f"Unable to interact with pipeline because the deployment status (stopped) indicates it is not "
                  f"(yet) fully provisioned pipeline-id=N/A pipeline-name=\"{name}\"",
                  {"pipeline_name": name, "status": "Stopped", "desired_status": "Provisioned"})


class FelderaEmulator(Emulator):
    name = "feldera"
    checks_credentials = True
    row_logs = ("changes",)

    def __init__(self, pipelines: dict[str, Pipeline] | None = None, api_key: str | None = None,
                 inprogress_polls: int = 1, paused_hold: float = 0.2) -> None:
        super().__init__()
        self.pipelines = pipelines or {"shop": Pipeline({"clicks": list(sample.COLUMNS)},
                                                        sql_types={"clicks": dict(SAMPLE_SQL_TYPES)})}
        self.api_key = api_key
        self.inprogress_polls = inprogress_polls
        self.paused_hold = paused_hold
        self.changes: list[tuple[str, dict]] = []  # (insert|delete|update, row)
        self.endpoints: dict[tuple[str, str], _Endpoint] = {}
        self.generation = 0
        self.polls = 0
        self.delay = 0.0  # seconds every ingress request takes (to observe requests in flight)
        self.in_flight = 0
        self.max_in_flight = 0

    def restart(self) -> None:
        """The pipeline restarted: older completion tokens are stale."""
        self.generation += 1

    def demo_route(self) -> dict:
        return {"dialect": "feldera", "url": self.url, "target": "clicks", "options": {"pipeline": "shop"}}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v0/pipelines/{pipeline}/ingress/{table}", self.ingress)
        app.router.add_get("/v0/pipelines/{pipeline}/completion_status", self.completion)
        app.router.add_get("/v0/config", self.config)
        app.router.add_get("/v0/pipelines/{pipeline}", self.pipeline_info)

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def config(self, request: web.Request) -> web.Response:
        # The SDK's FelderaClient reads this first (version, edition) and fails if it cannot.
        return web.json_response({"posthog": "", "conceptualhq": "", "product_fruits": "", "edition": "Open source",
                                  "version": "0.369.0", "revision": "emulator", "runtime_revision": "emulator",
                                  "changelog_url": "", "build_info": {}, "build_source": "source",
                                  "update_info": None, "license_validity": None, "unstable_features": None})

    async def pipeline_info(self, request: web.Request) -> web.Response:
        """``GET /v0/pipelines/{name}``: the pipeline, its compiled program's schema included."""
        await self.capture(request)
        if not self._authorized(request):
            return _error(401, "AuthenticationFailed", "Unauthorized")
        name = request.match_info["pipeline"]
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            return _error(404, "UnknownPipelineName", f"Unknown pipeline name '{name}'", {"pipeline_name": name})
        inputs = []
        for table, cols in pipeline.tables.items():
            types = pipeline.sql_types.get(table, {})
            fields = [{"name": c, "case_sensitive": False, "columntype": column_type(types.get(c, "VARCHAR")),
                       "unused": False} for c in cols]
            inputs.append({"name": table, "case_sensitive": False, "fields": fields, "materialized": False,
                           "properties": {}})
        status = {"running": "Running", "paused": "Paused", "stopped": "Stopped"}[pipeline.state]
        return web.json_response({
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "name": name, "description": "", "version": 1,
            "platform_version": "0.369.0", "program_version": 1, "program_status": "Success",
            "deployment_status": status, "deployment_desired_status": status,
            "program_info": {"schema": {"inputs": inputs, "outputs": []}, "input_connectors": {},
                             "output_connectors": {}},
        })

    def _table(self, pipeline: Pipeline, name: str) -> tuple[str, list[str]] | None:
        if name.startswith('"') and name.endswith('"'):
            exact = name[1:-1]
            return (exact, pipeline.tables[exact]) if exact in pipeline.tables else None
        for table, cols in pipeline.tables.items():
            if table.lower() == name.lower():
                return table, cols
        return None

    @staticmethod
    def _check_row(row: object, cols: list[str]) -> str | None:
        if not isinstance(row, dict):
            return "expected a JSON object"
        lower = {c.lower() for c in cols}
        unknown = [k for k in row if k.lower() not in lower]
        return f"unknown field `{unknown[0]}`" if unknown else None

    def _parse_record(self, record: object, fmt: str, cols: list[str]) -> tuple[list[tuple[str, dict]], str | None]:
        if fmt == "raw":
            problem = self._check_row(record, cols)
            return ([("insert", record)] if problem is None else []), problem  # type: ignore[list-item]
        if fmt == "insert_delete":
            if not isinstance(record, dict) or not record or set(record) - {"insert", "delete", "update", "table"}:
                return [], "expected an object with insert, delete or update"
            out = []
            for kind in ("delete", "insert", "update"):
                if kind in record:
                    problem = self._check_row(record[kind], cols)
                    if problem:
                        return [], problem
                    out.append((kind, record[kind]))
            return out, None
        payload = record.get("payload") if isinstance(record, dict) else None
        if not isinstance(payload, dict) or payload.get("op") not in ("c", "r", "u", "d"):
            return [], "expected a Debezium payload"
        out = []
        for key, kind in (("before", "delete"), ("after", "insert")):
            if payload.get(key) is not None:
                problem = self._check_row(payload[key], cols)
                if problem:
                    return [], problem
                out.append((kind, payload[key]))
        return out, None

    def _apply(self, changes: list[tuple[str, dict]], cap) -> None:
        for kind, row in changes:
            self.changes.append((kind, row))
            if kind == "insert":
                self.rows.append(row)
                cap.rows.append(row)

    async def ingress(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self._ingress(request)
        finally:
            self.in_flight -= 1

    async def _ingress(self, request: web.Request) -> web.Response:
        cap = await self.capture(request)
        if not self._authorized(request):
            return _error(401, "AuthenticationFailed", "Unauthorized API key")
        if (scripted := self.scripted(request)) is not None:
            return scripted
        name = request.match_info["pipeline"]
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            return _error(404, "UnknownPipelineName", f"Unknown pipeline name '{name}'", {"pipeline_name": name})
        if pipeline.state == "stopped":
            return _not_deployed(name)
        q = request.query
        if pipeline.state == "paused" and q.get("force") != "true":
            await asyncio.sleep(self.paused_hold)  # held until the manager's 30 s proxy timeout gives up
            error = "timeout (30s) was reached: this means the pipeline took too long to respond"
            return _error(503, "PipelineInteractionUnreachable",
                          f"Error sending HTTP request to pipeline: {error} Failed request: /ingress/"
                          f"{request.match_info['table']} pipeline-id=N/A pipeline-name=\"{name}\"",
                          {"pipeline_name": name, "request": f"/ingress/{request.match_info['table']}",
                           "error": error})
        found = self._table(pipeline, request.match_info["table"])
        if found is None:
            t = request.match_info["table"]
            return _error(404, "ConfigError.UnknownInputStream",
                          f"Input endpoint '{t}.api-ingress-{t}' specifies unknown table '{t}'", {})
        table, cols = found
        fmt = q.get("format", "csv")
        if fmt not in ("json", "csv"):
            return _error(400, "ConfigError.UnknownInputFormat", f"unknown input format '{fmt}'", {})
        if any(q.get(k) not in (None, "true", "false") for k in ("force", "array")):
            return _error(400, "ConfigError.ParserConfigParseError", "booleans must be true or false", {})
        endpoint = self.endpoints.setdefault((name, table), _Endpoint())
        errors: list[dict] = []

        def fail(text: str, description: str) -> None:
            errors.append({"description": description, "event_number": endpoint.events, "field": None,
                           "invalid_bytes": None, "invalid_text": text, "suggestion": None, "tag": None})

        try:
            text = cap.body.decode()
        except UnicodeDecodeError:
            return _error(400, "ParseErrors", "Errors parsing input data (1 errors)", {"num_errors": 1, "errors": []})
        if fmt == "csv":
            types = pipeline.csv_types.get(table, {})
            for record in csvread.records(text):
                endpoint.events += 1
                if len(record.fields) != len(cols):
                    fail(record.raw, f"expected {len(cols)} fields")
                    continue
                row = {c: _csv_value(f.text, types.get(c, "string?")) for c, f in zip(cols, record.fields, strict=True)}
                self._apply([("insert", row)], cap)
        else:
            update = q.get("update_format", "insert_delete")
            array = q.get("array") == "true"
            try:
                docs = [orjson.loads(text)] if array else [orjson.loads(x) for x in text.splitlines() if x.strip()]
            except orjson.JSONDecodeError as e:
                fail(text[:4096], f"invalid JSON: {e}")
                docs = []
            for doc in docs:
                records = doc if array and isinstance(doc, list) else [doc]
                pending, bad = [], False
                for record in records:
                    endpoint.events += 1
                    changes, problem = self._parse_record(record, update, cols)
                    if problem:
                        fail(orjson.dumps(record).decode(), problem)
                        bad = True
                    pending += changes
                    if not array and not problem:
                        self._apply(changes, cap)
                if array and not bad:
                    self._apply(pending, cap)  # an array is all or nothing
        if errors:
            return _error(400, "ParseErrors", f"Errors parsing input data ({len(errors)} errors): "
                                              f"{errors[0]['description']}", {"num_errors": len(errors),
                                                                              "errors": errors})
        token = base64.b64encode(orjson.dumps({"u": str(uuid.uuid4()), "e": table, "c": endpoint.events,
                                               "g": self.generation})).decode()
        endpoint.tokens[token] = 0
        return web.json_response({"token": token})

    async def completion(self, request: web.Request) -> web.Response:
        self.polls += 1
        if not self._authorized(request):
            return _error(401, "AuthenticationFailed", "Unauthorized API key")
        name = request.match_info["pipeline"]
        if name not in self.pipelines:
            return _error(404, "UnknownPipelineName", f"Unknown pipeline name '{name}'", {"pipeline_name": name})
        if self.pipelines[name].state == "stopped":
            return _not_deployed(name)
        token = request.query.get("token", "")
        try:
            info = orjson.loads(base64.b64decode(token, validate=True))
        except (ValueError, orjson.JSONDecodeError):
            return _error(400, "InvalidParam", "invalid completion token", {})
        if info.get("g") != self.generation:
            return _error(410, "PipelineRestarted", "Completion token was created by a previous incarnation of the "
                                                    "pipeline and is not valid for the current incarnation", {})
        for endpoint in self.endpoints.values():
            if token in endpoint.tokens:
                endpoint.tokens[token] += 1
                done = endpoint.tokens[token] > self.inprogress_polls
                return web.json_response({"status": "complete" if done else "inprogress",
                                          "step": 1 if done else None}, status=200 if done else 202)
        return _error(400, "InvalidParam", "unknown completion token", {})
