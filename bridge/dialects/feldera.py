"""Feldera table ingress: ``POST {url}/v0/pipelines/{pipeline}/ingress/{table}``.

JSON records in Feldera's change formats (``insert_delete``, ``raw``,
``debezium``) or headerless CSV in table column order. ``array=true``
(the default) makes a batch atomic: one array per request, and a parse error
drops the whole array. Without arrays the good records are ingested even
when the answer is 400 ``ParseErrors``, so that answer counts the named rows
as rejected and the rest as accepted: resending would duplicate them.
Parse errors are matched to rows by ``invalid_text``; ``event_number``
counts from the endpoint's creation, not from this request.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import orjson

from bridge import formats, status
from bridge.dialects.base import COMMON_OPTIONS, Dialect, HttpRequest, HttpResponse, Option, join_url, segment
from bridge.outcome import Outcome
from bridge.rows import Op, RowError, Rows

if TYPE_CHECKING:
    from bridge.send.transport import Transport

RETRYABLE_503 = {"PipelineInteractionNotDeployed", "PipelineInteractionUnreachable", "Initializing",
                 "AwaitingApproval", "BootstrapInProgress", "RestoreInProgress", "Suspended"}
# error_code -> (gRPC code, reason, retried)
ERROR_CODES = {
    "UnknownPipelineName": ("NOT_FOUND", "PIPELINE_NOT_FOUND", False),
    "ConfigError.UnknownInputStream": ("NOT_FOUND", "TABLE_NOT_FOUND", False),
    "ParseErrors": ("INVALID_ARGUMENT", "PARSE_ERRORS", False),
    "ApiConnectionLimit": ("RESOURCE_EXHAUSTED", "API_CONNECTION_LIMIT", True),
    "Terminating": ("UNAVAILABLE", "PIPELINE_TERMINATING", True),
    "AuthenticationFailed": ("UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED", False),
    "InsufficientPermissions": ("PERMISSION_DENIED", "UPSTREAM_PERMISSION_DENIED", False),
    **{c: ("UNAVAILABLE", "PIPELINE_UNAVAILABLE", True) for c in RETRYABLE_503},
}
OPS = {
    "insert_delete": frozenset({Op.INSERT, Op.DELETE, Op.UPSERT}),
    "raw": frozenset({Op.INSERT}),
    "debezium": frozenset({Op.INSERT, Op.DELETE}),
}
_KEYS = {Op.INSERT: b'{"insert":', Op.DELETE: b'{"delete":', Op.UPSERT: b'{"update":'}


def _bool(value: bool) -> str:
    return "true" if value else "false"


class FelderaDialect(Dialect):
    name = "feldera"
    options: ClassVar[dict[str, Option]] = {
        **COMMON_OPTIONS,
        "pipeline": Option("str", "", required=True, doc="the pipeline holding the table"),
        "format": Option("choice", "json", ("json", "csv"), doc="body format (always sent: Feldera's default is csv)"),
        "array": Option("bool", True, doc="one JSON array per request: an atomic batch"),
        "update_format": Option("choice", "insert_delete", ("insert_delete", "raw", "debezium"),
                                doc="how JSON records say insert, delete or update"),
        "force": Option("bool", False, doc="push even while the pipeline is paused"),
        "wait_for_completion": Option("bool", False, doc="acknowledge only once the rows are processed"),
        "completion_timeout": Option("duration", 60.0, doc="how long to wait for completion"),
    }
    auth_forms = (frozenset(), frozenset({"api_key"}))
    resource_type = "table"
    # Feldera's proxy gives up on a request after 30 s: stay well under it, and bound requests per table.
    delivery_defaults: ClassVar[dict] = {"timeout": 20.0, "concurrency": 2}

    @classmethod
    def check_config(cls, route) -> list[str]:
        o, p = route.options, f"routes.{route.name}"
        problems = []
        if not o["pipeline"]:
            problems.append(f"{p}.options.pipeline: is required (the pipeline holding table {route.target!r})")
        if o["format"] == "csv" and not route.columns:
            problems.append(f"{p}.columns: CSV to Feldera has no header row: declare the table's columns in order")
        return problems

    def __init__(self, route) -> None:
        super().__init__(route)
        o = self.opts
        self.base = route.url
        self.pipeline = o["pipeline"]
        query = [("force", _bool(o["force"])), ("format", o["format"])]
        if o["format"] == "json":
            query += [("array", _bool(o["array"])), ("update_format", o["update_format"])]
        self.url = join_url(route.url, f"/v0/pipelines/{segment(self.pipeline)}/ingress/{segment(route.target)}",
                            query)
        self.auth = {"Authorization": "Bearer " + route.auth["api_key"].value} if "api_key" in route.auth else {}
        self.headers = {"Content-Type": "application/json" if o["format"] == "json" else "text/csv", **self.auth}

    def supported_ops(self) -> frozenset[Op]:
        return OPS["raw"] if self.opts["format"] == "csv" else OPS[self.opts["update_format"]]

    def _records(self, rows: Rows) -> list[bytes]:
        objects = formats.object_bytes(rows)
        fmt = self.opts["update_format"]
        if fmt == "raw":
            return objects
        ops = rows.ops or [0] * len(objects)
        if fmt == "insert_delete":
            return [_KEYS[Op(op)] + obj + b"}" for obj, op in zip(objects, ops, strict=True)]
        return [(b'{"payload":{"op":"d","before":' if op == Op.DELETE else b'{"payload":{"op":"c","after":')
                + obj + b"}}" for obj, op in zip(objects, ops, strict=True)]

    def build(self, rows: Rows) -> HttpRequest:
        if self.opts["format"] == "csv":
            body = formats.csv_body(rows, header=False, columns=[c.name for c in self.route.columns or ()])
        else:
            records = self._records(rows)
            body = b"[" + b",".join(records) + b"]" if self.opts["array"] else b"\n".join(records) + b"\n"
        return HttpRequest("POST", self.url, dict(self.headers), body)

    def _match(self, errors: list[dict], rows: Rows) -> list[RowError]:
        """Parse errors to rows by their invalid text: a whole record, or the row inside it."""
        csv = self.opts["format"] == "csv"
        if csv:
            columns = [c.name for c in self.route.columns or ()]
            candidates = [(line.strip(),) for line in formats.csv_body(rows, False, columns=columns).decode()
                          .splitlines()]
        else:
            records = [orjson.loads(r) for r in self._records(rows)]
            objects = [orjson.loads(o) for o in formats.object_bytes(rows)]
            candidates = list(zip(records, objects, strict=True))
        found: list[RowError] = []
        used: set[int] = set()
        for err in errors:
            text = str(err.get("invalid_text") or "").strip()
            try:
                value: Any = text if csv else orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            for pos, options in enumerate(candidates):
                if pos not in used and value in options:
                    used.add(pos)
                    reason = err.get("description") or err.get("suggestion") or "parse error"
                    found.append(RowError(pos, str(err.get("field") or ""), f"Feldera: {reason}"))
                    break
        return found

    def classify(self, response: HttpResponse, rows: Rows) -> Outcome:
        body = response.json()
        if 200 <= response.status < 300:
            out = Outcome(code="OK", http_status=response.status)
            if isinstance(body, dict) and isinstance(body.get("token"), str):
                out.upstream["token"] = body["token"]
            return out
        body = body if isinstance(body, dict) else {}
        code = str(body.get("error_code") or "")
        message = str(body.get("message") or response.body[:300].decode("utf-8", "replace"))
        outcome = status.from_http(response.status, message, code)
        if code in ERROR_CODES:
            outcome.code, outcome.reason, outcome.retryable = ERROR_CODES[code]
        elif code.startswith("ConfigError."):
            outcome.code, outcome.reason, outcome.retryable = "INVALID_ARGUMENT", "CONFIG_ERROR", False
        if code == "ParseErrors":
            details = body.get("details") if isinstance(body.get("details"), dict) else {}
            errors = [e for e in details.get("errors", []) if isinstance(e, dict)]
            named = self._match(errors, rows)
            if not self.opts["array"]:
                # Without arrays Feldera kept every good record: this answer is a partial success.
                total = int(details.get("num_errors", len(errors)) or 0)
                return Outcome(code="OK", http_status=response.status, upstream_code=code, row_errors=named,
                               accepted=max(0, len(rows) - max(total, len(named))))
            outcome.row_errors = named
        if outcome.code == "NOT_FOUND":
            outcome.resource = self.pipeline if code == "UnknownPipelineName" else self.route.target
        return outcome

    async def confirm(self, transport: Transport, outcome: Outcome, deadline: float) -> Outcome:
        token = outcome.upstream.get("token")
        if not self.opts["wait_for_completion"] or not token:
            return outcome
        url = (join_url(self.base, f"/v0/pipelines/{segment(self.pipeline)}/completion_status")
               + "?token=" + quote(token, safe=""))
        end = min(deadline, time.monotonic() + self.opts["completion_timeout"])
        delay = 0.05
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return Outcome(code="DEADLINE_EXCEEDED", reason="COMPLETION_TIMEOUT", upstream=outcome.upstream,
                               message="Feldera accepted the rows but did not finish processing them in time; "
                                       "they are not lost: the completion token is in the ack")
            try:
                answer = await transport.get(url, self.auth, min(remaining, 10.0))
            except Exception:  # a transient failure while polling: poll again
                answer = None
            if answer is not None:
                state = (answer.json() or {}).get("status") if answer.status in (200, 202) else None
                if state == "complete":
                    outcome.upstream["completion"] = "complete"
                    return outcome
                if answer.status == 410:
                    return Outcome(code="ABORTED", reason="COMPLETION_TOKEN_STALE", http_status=410,
                                   upstream=outcome.upstream,
                                   message="the pipeline restarted after accepting the rows; whether they were "
                                           "processed is unknown (checkpoint-dependent)")
                if answer.status in (400, 404):
                    return Outcome(code="FAILED_PRECONDITION", reason="COMPLETION_UNKNOWN", upstream=outcome.upstream,
                                   http_status=answer.status, message="cannot read the completion status")
            await asyncio.sleep(min(delay, max(0.0, end - time.monotonic())))
            delay = min(delay * 1.5, 1.0)
