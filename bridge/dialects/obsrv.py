"""Obsrv dataset ingest: ``POST {url}/v2/data/in/{dataset_id}`` with the ``api.data.in`` envelope.

A batch is ``data`` as a JSON array; ``params.msgid`` is the batch's dedup
key for 7 days at Obsrv (a repeated msgid silently drops the batch), so
each distinct batch gets a fresh UUID, made once in ``build`` and therefore
the same on every retry of that batch, and never derived from caller data.
"""

from __future__ import annotations

import time
import uuid
from typing import ClassVar

import orjson

from bridge.dialects.base import COMMON_OPTIONS, Dialect, Option, bearer, join_url, segment
from bridge.model.outcome import Outcome
from bridge.model.rows import RowError, Rows
from bridge.send import answer
from bridge.send.http import HttpRequest, HttpResponse
from bridge.transcode import formats

MAX_EVENT_BYTES = 1_048_576  # larger events fail later in the pipeline, where the caller never hears of it

# error.code -> (gRPC code, retried)
ERROR_CODES = {
    "DATASET_NOT_FOUND": ("NOT_FOUND", False),
    "TOPIC_NOT_FOUND": ("FAILED_PRECONDITION", False),
    "DATA_INGESTION_INVALID_INPUT": ("INVALID_ARGUMENT", False),
    "INTERNAL_SERVER_ERROR": ("INTERNAL", True),
    "UNAUTHORIZED ACCESS": ("UNAUTHENTICATED", False),
    "FORBIDDEN ACCESS": ("PERMISSION_DENIED", False),
}


class ObsrvDialect(Dialect):
    name = "obsrv"
    options: ClassVar[dict[str, Option]] = {
        **COMMON_OPTIONS,
        "batch_mode": Option("bool", True, doc="data as an array (true) or one request per event (false)"),
    }
    auth_forms = (frozenset(), frozenset({"bearer"}))
    resource_type = "dataset"
    batch_defaults: ClassVar[dict] = {"max_bytes": 4_000_000}  # Obsrv's Kafka takes about 5 MB per message

    def __init__(self, route) -> None:
        super().__init__(route)
        self.url = join_url(route.url, f"/v2/data/in/{segment(route.target)}")
        self.headers = {"Content-Type": "application/json"}
        if "bearer" in route.auth:
            self.headers.update(bearer(route.auth["bearer"]))

    def sends_rows_as_objects(self) -> bool:
        return True  # data holds each row's object; check_rows measures the same objects

    def rows_per_request(self) -> int | None:
        return None if self.opts["batch_mode"] else 1

    def check_rows(self, rows: Rows) -> list[RowError]:
        if rows.columns is not None:
            # One compact dump bounds every row (an object adds only its keys): skip encoding rows one by one
            # unless the whole batch is near the limit.
            keys = sum(len(c) + 4 for c in rows.columns)
            if len(orjson.dumps(rows.data)) + keys <= MAX_EVENT_BYTES:
                return []
        errors = []
        for pos, obj in enumerate(formats.object_bytes(rows)):
            if len(obj) > MAX_EVENT_BYTES:
                errors.append(RowError(rows.caller_index(pos), "",
                                       f"event is {len(obj)} bytes encoded; Obsrv takes at most {MAX_EVENT_BYTES}"))
        return errors

    def build(self, rows: Rows) -> HttpRequest:
        msgid = str(uuid.uuid4())
        objects = formats.object_bytes(rows)
        data = objects[0] if not self.opts["batch_mode"] else b"[" + b",".join(objects) + b"]"
        head = (b'{"id":"api.data.in","ver":"v2","ts":"' + str(int(time.time() * 1000)).encode()
                + b'","params":{"msgid":"' + msgid.encode() + b'"},"data":')
        return HttpRequest("POST", self.url, dict(self.headers), head + data + b"}", upstream={"msgid": msgid})

    def classify(self, response: HttpResponse, rows: Rows) -> Outcome:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        code = err.get("code", "") if isinstance(err, dict) else ""
        message = err.get("message", "") if isinstance(err, dict) else ""
        if 200 <= response.status < 300:
            params = body.get("params", {}) if isinstance(body, dict) else {}
            out = Outcome(code="OK", http_status=response.status)
            if isinstance(params, dict) and params.get("resmsgid"):
                out.upstream["resmsgid"] = str(params["resmsgid"])
            return out
        outcome = answer.from_http(response.status, message or response.body[:200].decode("utf-8", "replace"), code)
        if code in ERROR_CODES:
            outcome.code, outcome.retryable = ERROR_CODES[code]
            outcome.reason = code.replace(" ", "_")
        return outcome
