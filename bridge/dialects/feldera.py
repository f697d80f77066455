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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import orjson

from bridge.dialects.base import (
    COMMON_OPTIONS,
    Dialect,
    HttpRequest,
    HttpResponse,
    Option,
    bearer,
    error_message,
    join_url,
    segment,
)
from bridge.dialects.schema import feldera_columns
from bridge.model.outcome import Outcome
from bridge.model.rows import Op, RowError, RowForm, Rows
from bridge.send import answer
from bridge.send.transport import TransportError
from bridge.transcode import formats

if TYPE_CHECKING:
    from bridge.model.config import ColumnSpec
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
# (update_format, op) -> the bytes around a row's JSON object: rows passed through as JSON are never re-encoded.
_WRAP: dict[tuple[str, int], tuple[bytes, bytes]] = {
    ("raw", Op.INSERT): (b"", b""),
    ("insert_delete", Op.INSERT): (b'{"insert":', b"}"),
    ("insert_delete", Op.DELETE): (b'{"delete":', b"}"),
    ("insert_delete", Op.UPSERT): (b'{"update":', b"}"),
    ("debezium", Op.INSERT): (b'{"payload":{"op":"c","after":', b"}}"),
    ("debezium", Op.DELETE): (b'{"payload":{"op":"d","before":', b"}}"),
}


def _wrap_dict(fmt: str, op: int, row: dict) -> Any:
    """The same record as ``_WRAP`` builds, as a value (typed rows: one orjson call per batch)."""
    if fmt == "raw":
        return row
    if fmt == "insert_delete":
        return {("insert", "delete", "update")[op]: row}
    return {"payload": {"op": "d", "before": row}} if op == Op.DELETE else {"payload": {"op": "c", "after": row}}


def _inner(record: Any) -> Any:
    """The row inside an insert_delete or debezium record."""
    if not isinstance(record, dict):
        return record
    payload = record.get("payload")
    if isinstance(payload, dict):
        return payload.get("after") if payload.get("after") is not None else payload.get("before")
    return next(iter(record.values()), None)


def _key(value: Any) -> bytes:
    """A canonical form of a JSON value: the same record however its keys and numbers were written."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _bool(value: bool) -> str:
    return "true" if value else "false"


_NULL_WORDS = ("NULL", "null")


def _csv_values(rows: Rows, names: dict[str, str]) -> Iterator[list[tuple[str, str]]]:
    """Per row, the string values of the columns in ``names`` (JSON rows: read from their JSON text; CSV lines:
    only those that may hold one of the words, quoted, are read)."""
    if rows.form is not None:
        suspects = [b'"' + w.encode() + b'"' for w in (*_NULL_WORDS, "")]
        for pos, line in enumerate(rows.data):
            if any(s in line for s in suspects):
                yield from _csv_values(formats.plain(rows.select([pos])), names)
            else:
                yield []
        return
    if rows.columns is not None:
        at = [(i, c) for i, c in enumerate(rows.columns) if c in names]
        for values in rows.data:
            yield [(c, values[i]) for i, c in at if type(values[i]) is str]
        return
    for raw in rows.data:
        yield [(k, orjson.loads(v)) for k, v in formats.split(raw).items()
               if k in names and v[:1] == b'"' and len(v) <= 64]  # longer strings cannot be one of the words


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
        o = route.options
        problems = []
        if not o["pipeline"]:
            problems.append(f"options.pipeline: is required (the pipeline holding table {route.target!r})")
        if o["format"] == "csv" and not route.columns:
            problems.append("columns: CSV to Feldera has no header row: declare the table's columns in order")
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
        self.auth = bearer(route.auth["api_key"]) if "api_key" in route.auth else {}
        self.headers = {"Content-Type": "application/json" if o["format"] == "json" else "text/csv", **self.auth}

    @classmethod
    def discover_problem(cls, route) -> str | None:
        return None

    def schema_request(self) -> HttpRequest:
        """``GET {url}/v0/pipelines/{pipeline}``: its ``program_info.schema`` lists the tables and their fields."""
        return HttpRequest("GET", join_url(self.base, f"/v0/pipelines/{segment(self.pipeline)}"), self.auth, b"")

    def schema_columns(self, body: Any) -> tuple[ColumnSpec, ...]:
        return feldera_columns(body, self.route.target)

    def sends_rows_as_objects(self) -> bool:
        # JSON records wrap each row's object as written; CSV lines are a table in the declared column order.
        return self.opts["format"] == "json"

    def supported_ops(self) -> frozenset[Op]:
        return OPS["raw"] if self.opts["format"] == "csv" else OPS[self.opts["update_format"]]

    def row_form(self) -> RowForm | None:
        if self.opts["format"] != "csv":
            return None
        return RowForm("csv", ",", "NULL", tuple(c.name for c in self.route.columns or ()))

    def _records(self, rows: Rows) -> list[bytes]:
        """Each row as its JSON record (the error path and NDJSON)."""
        rows = formats.plain(rows)
        fmt, ops = self.opts["update_format"], rows.ops
        if rows.columns is not None:
            make = formats.row_to_dict(rows.columns)
            dumps = orjson.dumps
            if ops is None:
                return [dumps(_wrap_dict(fmt, 0, make(v))) for v in rows.data]
            return [dumps(_wrap_dict(fmt, op, make(v))) for v, op in zip(rows.data, ops, strict=True)]
        if ops is None:
            pre, post = _WRAP[fmt, Op.INSERT]
            return [pre + obj + post for obj in rows.data] if pre else list(rows.data)
        return [_WRAP[fmt, op][0] + obj + _WRAP[fmt, op][1] for obj, op in zip(rows.data, ops, strict=True)]

    def _json_array(self, rows: Rows) -> bytes:
        """One JSON array per request: one orjson call, or one bytes join for rows passed through as JSON."""
        rows = formats.plain(rows)
        fmt, ops = self.opts["update_format"], rows.ops
        if rows.columns is not None:
            make = formats.row_to_dict(rows.columns)
            if ops is None:
                return orjson.dumps([_wrap_dict(fmt, 0, make(v)) for v in rows.data])
            return orjson.dumps([_wrap_dict(fmt, op, make(v)) for v, op in zip(rows.data, ops, strict=True)])
        if ops is None:
            pre, post = _WRAP[fmt, Op.INSERT]
            return b"[" + pre + (post + b"," + pre).join(rows.data) + post + b"]"
        return b"[" + b",".join(self._records(rows)) + b"]"

    def _csv(self, rows: Rows) -> bytes:
        # Over HTTP Feldera reads CSV without a header, in the table's column order; NULL is its null token.
        return formats.csv_body(rows, header=False, columns=[c.name for c in self.route.columns or ()],
                                null="NULL")

    def check_rows(self, rows: Rows) -> list[RowError]:
        """CSV values Feldera would read as NULL, by row: it has no way to quote them (it unquotes first)."""
        if self.opts["format"] != "csv":
            return []
        nullable = {c.name: c.type for c in self.route.columns or () if c.nullable}
        errors = []
        for pos, values in enumerate(_csv_values(rows, nullable)):
            for name, v in values:
                # Feldera: a nullable column reads `NULL` and `null` as NULL, and an empty field as NULL
                # unless the column is a string.
                if v in _NULL_WORDS or (v == "" and nullable[name] != "string"):
                    errors.append(RowError(rows.caller_index(pos), name,
                                           f"Feldera's CSV reads {v!r} in nullable column {name!r} as NULL; "
                                           "send this row with format: json"))
                    break
        return errors

    def reads_success_body(self) -> bool:
        return bool(self.opts["wait_for_completion"])  # the completion token is in it

    def build(self, rows: Rows) -> HttpRequest:
        rows = formats.as_form(rows, self.row_form())
        if self.opts["format"] == "csv":
            body = self._csv(rows)
        elif self.opts["array"]:
            body = self._json_array(rows)
        else:
            body = b"\n".join(self._records(rows)) + b"\n"
        return HttpRequest("POST", self.url, dict(self.headers), body)

    def _candidates(self, rows: Rows) -> tuple[list[bytes], dict[bytes, list[int]]]:
        """Each row's record as sent, and the canonical keys (record, and the row inside it) to positions."""
        if self.opts["format"] == "csv":
            sent = [line.encode() for line in self._csv(rows).decode().split("\n")[: len(rows)]]
            index: dict[bytes, list[int]] = {}
            for pos, line in enumerate(sent):
                index.setdefault(line.strip(), []).append(pos)
            return sent, index
        sent = self._records(rows)
        index = {}
        for pos, text in enumerate(sent):
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue  # a number past a double (1E400): matched by its text below, as a prefix
            inner = record if self.opts["update_format"] == "raw" else _inner(record)
            for key in {_key(record), _key(inner)}:
                index.setdefault(key, []).append(pos)
        return sent, index

    def _match(self, errors: list[dict], rows: Rows) -> list[RowError]:
        """Parse errors to rows by their ``invalid_text`` (never by ``event_number``: it counts across requests)."""
        sent, index = self._candidates(rows)
        csv = self.opts["format"] == "csv"
        found: dict[int, RowError] = {}
        for err in errors:
            text = str(err.get("invalid_text") or "").strip()
            if not text:
                continue
            try:
                positions = index.get(text.encode() if csv else _key(orjson.loads(text)), [])
            except orjson.JSONDecodeError:
                # Feldera cuts long records at 4096 bytes: match the cut text as a prefix of what was sent. A
                # record a double cannot hold (1E400) is matched by its whole text.
                positions = [p for p, rec in enumerate(sent) if rec.decode().strip() == text
                             or (len(text) >= 64 and rec.decode().startswith(text))]
            pos = next((p for p in positions if p not in found), None)
            if pos is not None:
                reason = err.get("description") or err.get("suggestion") or "parse error"
                found[pos] = RowError(pos, str(err.get("field") or ""), f"Feldera: {reason}")
        return sorted(found.values(), key=lambda e: e.index)

    def classify(self, response: HttpResponse, rows: Rows) -> Outcome:
        body = response.json()
        if 200 <= response.status < 300:
            out = Outcome(code="OK", http_status=response.status)
            if isinstance(body, dict) and isinstance(body.get("token"), str):
                out.upstream["token"] = body["token"]
            return out
        body = body if isinstance(body, dict) else {}
        code = str(body.get("error_code") or "")
        message = error_message(body, response.body, "message")
        outcome = answer.from_http(response.status, message, code)
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
            # An array is atomic: Feldera dropped all of it, so every row of the batch fails with this status.
            outcome.message += (f" (Feldera dropped the whole array of {len(rows)} rows: none was ingested; "
                                f"{len(named)} named as invalid)")
        if code == "UnknownPipelineName":
            outcome.resource = self.pipeline
        return outcome

    async def confirm(self, transport: Transport, outcome: Outcome, deadline: float) -> Outcome:
        """With ``wait_for_completion``: poll the token until Feldera says the rows went through the circuit."""
        token = outcome.upstream.get("token")
        if not self.opts["wait_for_completion"]:
            return outcome
        if not token:
            return Outcome(code="FAILED_PRECONDITION", reason="COMPLETION_UNKNOWN", http_status=outcome.http_status,
                           upstream=outcome.upstream,
                           message="Feldera accepted the rows but its answer holds no completion token (or could "
                                   "not be read whole): whether they were processed cannot be checked")
        url = (join_url(self.base, f"/v0/pipelines/{segment(self.pipeline)}/completion_status")
               + "?token=" + quote(token, safe=""))  # base64 holds + / =
        end = min(deadline, time.monotonic() + self.opts["completion_timeout"])
        delay = 0.05
        while (remaining := end - time.monotonic()) > 0:
            try:
                answer = await transport.get(url, self.auth, min(remaining, 10.0))
            except TransportError:  # the rows are in; a lost poll is simply polled again
                answer = None
            if answer is not None:
                done = self._completion(answer, outcome)
                if done is not None:
                    return done
            await asyncio.sleep(min(delay, max(0.0, end - time.monotonic())))
            delay = min(delay * 1.5, 1.0)
        return Outcome(code="DEADLINE_EXCEEDED", reason="COMPLETION_TIMEOUT", upstream=outcome.upstream,
                       message="Feldera accepted the rows but did not finish processing them within "
                               f"{self.opts['completion_timeout']:g}s (or the batch deadline); the completion "
                               "token is in the ack's upstream map")

    def _completion(self, answer: HttpResponse, outcome: Outcome) -> Outcome | None:
        """One completion_status answer: the final outcome, or None to poll again."""
        body = answer.json()
        body = body if isinstance(body, dict) else {}
        if answer.status in (200, 202):  # the spec says 202 for inprogress, the server 200: read the field
            if body.get("status") == "complete":
                outcome.upstream["completion"] = "complete"
                return outcome
            return None
        code = str(body.get("error_code") or "")
        said = error_message(body, answer.body, "message")
        if answer.status == 410:
            # The data was accepted, then the pipeline restarted: whether it was processed depends on the
            # checkpoint. Not retried here (a resend may duplicate); ABORTED tells the caller to decide.
            return Outcome(code="ABORTED", reason="COMPLETION_TOKEN_STALE", http_status=410, upstream_code=code,
                           upstream=outcome.upstream,
                           message=f"Feldera accepted the rows, then the pipeline restarted before they were "
                                   f"confirmed processed; resending may duplicate them: {said}")
        if answer.status in (400, 404):
            return Outcome(code="FAILED_PRECONDITION", reason="COMPLETION_UNKNOWN", http_status=answer.status,
                           upstream_code=code, upstream=outcome.upstream,
                           message=f"Feldera accepted the rows but cannot tell whether they were processed: {said}")
        return None  # 401/403/5xx while polling: transient or a read-role problem; poll until the deadline
