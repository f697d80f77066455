"""An Obsrv API service's data-in endpoint: the ajv schema of the envelope, datasets and aliases,
RBAC bearer tokens, the error envelopes, and msgid dedup (a repeated msgid answers 200 and drops the batch).

Error shapes follow obsrv-api (404 for a missing dataset or topic); ``sunbird=True`` answers them with 400
like the older Sunbird build and the published examples.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson
from aiohttp import web

from bridge.dev.emulators.base import Emulator


@dataclass
class Dataset:
    id: str
    alias: str = ""
    live: bool = True
    entry_topic: bool = True


class ObsrvEmulator(Emulator):
    name = "obsrv"
    checks_credentials = True

    def __init__(self, datasets: list[Dataset] | None = None, token: str | None = None, sunbird: bool = False) -> None:
        super().__init__()
        self.datasets = {d.id: d for d in (datasets or [Dataset("clicks", alias="clicks-alias")])}
        self.token = token
        self.sunbird = sunbird
        self.msgids: dict[str, set[str]] = {}
        self.dropped_batches = 0

    def demo_route(self) -> dict:
        return {"dialect": "obsrv", "url": self.url, "target": "clicks"}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/data/in/{dataset_id}", self.ingest)

    def _envelope(self, status: int, code: str, message: str, msgid: str = "") -> web.Response:
        body = {"id": "api.data.in", "ver": "v2", "ts": time.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                "params": {"status": "FAILED", "msgid": msgid, "resmsgid": str(uuid.uuid4())},
                "responseCode": {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                                 500: "INTERNAL_SERVER_ERROR"}[status],
                "error": {"code": code, "message": message, "trace": ""}}
        return web.json_response(body, status=status)

    def _find(self, key: str) -> Dataset | None:
        d = self.datasets.get(key)
        if d is None:
            d = next((x for x in self.datasets.values() if x.alias and x.alias == key), None)
        return d if d is not None and d.live else None

    @staticmethod
    def _schema_problem(body: object) -> str | None:
        """The checks of obsrv-api's validationSchema.json (ajv), with its message style."""
        if not isinstance(body, dict):
            return "#/type must be object"
        for key in ("id", "ver", "ts", "params", "data"):
            if key not in body:
                return f"#/required must have required property '{key}'"
        if body["id"] != "api.data.in":
            return "#/properties/id/const must be equal to constant"
        for key in ("ver", "ts"):
            if not isinstance(body[key], str):
                return f"#/properties/{key}/type must be string"
        params = body["params"]
        if not isinstance(params, dict):
            return "#/properties/params/type must be object"
        if "msgid" not in params:
            return "#/properties/params/required must have required property 'msgid'"
        if not isinstance(params["msgid"], str):
            return "#/properties/params/properties/msgid/type must be string"
        extra = [k for k in params if k != "msgid"]
        if extra:
            return "#/properties/params/additionalProperties must NOT have additional properties"
        data = body["data"]
        if not (isinstance(data, dict) or (isinstance(data, list) and all(isinstance(x, dict) for x in data))):
            return "#/properties/data/oneOf must match exactly one schema in oneOf"
        return None

    async def ingest(self, request: web.Request) -> web.Response:
        cap = await self.capture(request)
        if self.token is not None:
            auth = request.headers.get("Authorization", "")
            parts = auth.split(" ")
            if len(parts) < 2:
                return self._envelope(401, "UNAUTHORIZED ACCESS", "No token provided")
            if parts[1] != self.token:
                return self._envelope(403, "FORBIDDEN ACCESS", "Access denied for the user")
        if (scripted := self.scripted(request)) is not None:
            return scripted
        try:
            body = orjson.loads(cap.body)
        except orjson.JSONDecodeError as e:
            # body-parser errors reach Obsrv's error handler, which answers 500.
            return self._envelope(500, "INTERNAL_SERVER_ERROR", f"Unexpected token in JSON: {e}")
        problem = self._schema_problem(body)
        msgid = body.get("params", {}).get("msgid", "") if isinstance(body, dict) else ""
        if problem:
            return self._envelope(400, "DATA_INGESTION_INVALID_INPUT", problem, msgid)
        key = request.match_info["dataset_id"]
        dataset = self._find(key)
        missing = 400 if self.sunbird else 404
        if dataset is None:
            text = "Dataset with id not found" if self.sunbird else f"Dataset with id/alias name '{key}' not found"
            return self._envelope(missing, "DATASET_NOT_FOUND", text, msgid)
        if not dataset.entry_topic:
            text = "Entry topic is not defined" if self.sunbird else "Entry topic not found"
            return self._envelope(missing, "TOPIC_NOT_FOUND", text, msgid)
        events = body["data"] if isinstance(body["data"], list) else [body["data"]]
        seen = self.msgids.setdefault(dataset.id, set())
        if isinstance(body["data"], list) and msgid in seen:
            self.dropped_batches += 1  # the pipeline drops a duplicate batch after the API said SUCCESS
        else:
            seen.add(msgid)
            cap.rows = events
            self.rows.extend(events)
        return web.json_response({
            "id": "api.data.in", "ver": "v2", "ts": time.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "params": {"status": "SUCCESS", "msgid": msgid, "resmsgid": str(uuid.uuid4())},
            "responseCode": "OK", "result": {"message": "Data ingested successfully"},
        })
