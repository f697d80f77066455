"""Timeplus stream ingest: Enterprise (v1beta2), the Cloud API of the seed docs (v1beta1), and Proton.

Bodies are the compact ``{"columns": [...], "data": [[...]]}`` or NDJSON
(``streaming``), always with an explicit ``?format=``: it overrides the
content type, and the published spec misspells the vendor types. Errors are
classified on Timeplus' numeric exception code, not only the HTTP status
(Proton answers a failed login 516 with status 500).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, ClassVar

from bridge.dialects import exception_codes
from bridge.dialects.base import COMMON_OPTIONS, Dialect, Option, compression_option, join_url, segment
from bridge.dialects.schema import timeplus_columns
from bridge.model.config import ColumnSpec
from bridge.model.errors import BatchRejected
from bridge.model.outcome import Outcome
from bridge.model.rows import Op, RowError, RowForm, Rows
from bridge.send import answer
from bridge.send.http import HttpRequest, HttpResponse
from bridge.transcode import formats

PATHS = {
    "v1beta2": "/api/v1beta2/streams/{}/ingest",
    "v1beta1": "/api/v1beta1/streams/{}/ingest",
    "proton": "/proton/v1/ingest/streams/{}",
}
QUERY_FORMAT = {"compact": "compact", "ndjson": "streaming"}
STANDARD_TYPES = {"compact": "application/json", "ndjson": "application/x-ndjson"}

DELTA = "_tp_delta"
_DELTA_BYTES = DELTA.encode()
TIME_COLUMNS = frozenset({"_tp_time"})


def _with_delta(raw: bytes, delta: int) -> bytes:
    """An NDJSON line: the object as written with ``"_tp_delta": delta`` added as its last key."""
    body = raw.strip()[:-1].rstrip()  # without the closing brace
    sep = b"" if body == b"{" else b","
    return body + sep + b'"_tp_delta":' + str(delta).encode() + b"}\n"


class TimeplusDialect(Dialect):
    name = "timeplus"
    options: ClassVar[dict[str, Option]] = {
        **COMMON_OPTIONS,
        "api": Option("choice", "v1beta2", ("v1beta2", "v1beta1", "proton"), doc="which ingest surface"),
        "format": Option("choice", "compact", ("compact", "ndjson"), doc="compact columns+data, or NDJSON"),
        "content_type": Option("choice", "standard", ("standard", "vendor"), doc="application/json or vnd.timeplus"),
        "auth_header": Option("choice", "auto", ("auto", "x-api-key", "authorization", "basic"),
                              doc="how credentials travel; auto: X-Api-Key for keys, Basic or Proton headers"),
        "changelog": Option("bool", False, doc="row ops become the _tp_delta column (1 insert, -1 delete)"),
        "compression": compression_option(),
    }
    auth_forms = (frozenset(), frozenset({"api_key"}), frozenset({"username"}), frozenset({"username", "password"}))
    resource_type = "stream"
    batch_defaults: ClassVar[dict] = {"max_rows": 10_000}  # well under Proton's 65,409-row insert blocks

    @classmethod
    def check_config(cls, route) -> list[str]:
        o, auth = route.options, route.auth
        problems = []
        if o["api"] == "proton":
            if o["format"] != "compact":
                problems.append("options.format: Proton ingests the compact format only")
            if "api_key" in auth:
                problems.append("auth: Proton takes username/password (or nothing), not an api_key")
        elif o["api"] == "v1beta1" and "api_key" not in auth:
            problems.append("auth: the v1beta1 (Cloud) API needs {api_key: ...}")
        elif o["api"] == "v1beta2" and not auth:
            problems.append("auth: Timeplus Enterprise needs {username, password} or {api_key}")
        if o["auth_header"] in ("x-api-key", "authorization") and "api_key" not in auth:
            problems.append(f"options.auth_header: {o['auth_header']} carries an api_key; auth has none")
        if o["auth_header"] == "basic" and "username" not in auth:
            problems.append("options.auth_header: basic needs auth.username")
        return problems

    def __init__(self, route) -> None:
        super().__init__(route)
        o = self.opts
        self.api, self.format = o["api"], o["format"]
        self.url = join_url(route.url, PATHS[self.api].format(segment(route.target)),
                            [("format", QUERY_FORMAT[self.format])])
        ctype = (STANDARD_TYPES[self.format] if o["content_type"] == "standard"
                 else f"application/vnd.timeplus+json;format={QUERY_FORMAT[self.format]}")
        self.headers = {"Content-Type": ctype, **self._auth_headers()}

    @classmethod
    def discover_problem(cls, route) -> str | None:
        if route.options["api"] == "proton":
            return "Proton's ingest port serves no streams API: declare the columns (or use api v1beta2)"
        return None

    def schema_request(self) -> HttpRequest:
        """``GET {url}/api/{api}/streams/{stream}``: the stream with its columns (Timeplus' streams API)."""
        url = join_url(self.route.url, f"/api/{self.api}/streams/{segment(self.route.target)}")
        return HttpRequest("GET", url, self._auth_headers(), b"")

    def schema_columns(self, body: Any) -> tuple[ColumnSpec, ...]:
        return timeplus_columns(body)

    def _auth_headers(self) -> dict[str, str]:
        auth, mode = self.route.auth, self.opts["auth_header"]
        if "api_key" in auth:
            key = auth["api_key"].value
            return {"Authorization": f"ApiKey {key}"} if mode == "authorization" else {"X-Api-Key": key}
        if "username" in auth:
            user, password = auth["username"].value, auth["password"].value if "password" in auth else ""
            if self.api == "proton" and mode != "basic":
                return {"x-timeplus-user": user, "x-timeplus-key": password}
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def supported_ops(self) -> frozenset[Op]:
        return frozenset({Op.INSERT, Op.DELETE}) if self.opts["changelog"] else frozenset({Op.INSERT})

    def sends_rows_as_objects(self) -> bool:
        # NDJSON lines are the objects (the changelog's _tp_delta appended alike); compact is a table: a batch
        # of JSON rows would join requests of different columns into one table, with nulls for the gaps.
        return self.format == "ndjson"

    def row_form(self) -> RowForm | None:
        return formats.COMPACT if self.format == "compact" else None

    def reserved_columns(self) -> frozenset[str]:
        return frozenset({DELTA}) if self.opts["changelog"] else frozenset()

    def rfc3339_columns(self) -> frozenset[str]:
        return TIME_COLUMNS  # Timeplus documents _tp_time as a string: never an epoch number

    def check_rows(self, rows: Rows) -> list[RowError]:
        """On a changelog route the bridge writes _tp_delta from the ops: a caller's own _tp_delta is refused."""
        if not self.opts["changelog"]:
            return []
        if rows.columns is not None:
            if DELTA in rows.columns:
                raise BatchRejected(
                    "INVALID_ARGUMENT", "RESERVED_COLUMN",
                    f"column {DELTA!r} is written by route {self.route.name!r} from each row's op (changelog); "
                    "send deletes as ops, not as a column", {"column": DELTA})
            return []
        errors = []
        for pos, raw in enumerate(rows.data):
            # The key can only be spelled with these bytes, or with \u escapes.
            if (_DELTA_BYTES in raw or b"\\u" in raw) and DELTA in formats.split(raw):
                errors.append(RowError(rows.caller_index(pos), DELTA,
                                       f"key {DELTA!r} is written by the route from the row's op (changelog); "
                                       "send a delete as an op"))
        return errors

    def _body(self, rows: Rows) -> bytes:
        rows = formats.as_form(rows, self.row_form())
        if self.opts["changelog"]:
            deltas = [-1 if op == Op.DELETE else 1 for op in rows.ops or [0] * len(rows)]
            if rows.form is not None:
                # Compact arrays: the delta goes in as the last value of each.
                sep = b"," if rows.columns else b""
                data = [r[:-1] + sep + str(d).encode() + b"]" for r, d in zip(rows.data, deltas, strict=True)]
                return formats.compact(Rows((*rows.columns, DELTA), data, form=rows.form))
            if rows.columns is None and self.format == "ndjson":
                # Each object as written, the delta appended: numbers and keys stay the caller's.
                return b"".join(_with_delta(raw, d) for raw, d in zip(rows.data, deltas, strict=True))
            if rows.columns is None:
                cols, cells = formats.json_table(rows)
                return formats.raw_compact([*cols, DELTA], [[*r, d] for r, d in zip(cells, deltas, strict=True)])
            rows = Rows((*rows.columns, DELTA), [(*r, d) for r, d in zip(rows.data, deltas, strict=True)])
        return formats.compact(rows) if self.format == "compact" else formats.ndjson(rows)

    def build(self, rows: Rows) -> HttpRequest:
        headers = dict(self.headers)
        upstream = {}
        if self.api == "proton":
            # One id per batch, the same on every retry of it: Proton skips a block it has seen.
            upstream["idempotent_id"] = headers["x-timeplus-idempotent-id"] = str(uuid.uuid4())
        return HttpRequest("POST", self.url, headers, self._body(rows), self.compression, upstream)

    def classify(self, response: HttpResponse, rows: Rows) -> Outcome:
        body = response.json()
        if 200 <= response.status < 300:
            out = Outcome(code="OK", http_status=response.status)
            if isinstance(body, dict):
                out.upstream.update({k: str(body[k]) for k in ("request_id", "poll_id", "channel") if k in body})
            return out
        code = response.headers.get("x-timeplus-exception-code")
        if code is None and isinstance(body, dict):
            code = body.get("code")
        try:
            number = int(code) if code is not None else None
        except (TypeError, ValueError):
            number = None
        message = ""
        if isinstance(body, dict):
            message = str(body.get("error_msg") or body.get("message") or "")
        if not message:
            message = response.body[:300].decode("utf-8", "replace").strip()
        return exception_codes.refine(
            answer.from_http(response.status, message, "" if number is None else str(number)), number)
