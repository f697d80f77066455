"""The generic HTTP target: NDJSON, a JSON array or CSV, POSTed to a URL.

ClickHouse's HTTP interface is one such target:
``url: http://127.0.0.1:8123/``, ``options: {query: {query: "INSERT INTO t FORMAT JSONEachRow"}}``.
Its errors carry an exception code (``X-ClickHouse-Exception-Code``, or ``Code: N`` opening the body), which
classifies them where the HTTP status cannot: ClickHouse answers a row it cannot parse with HTTP 500.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from yarl import URL

from bridge.dialects import exception_codes
from bridge.dialects.base import COMMON_OPTIONS, Dialect, Option, auth_headers_from_map, bearer, compression_option
from bridge.dialects.schema import clickhouse_columns, clickhouse_table
from bridge.model.config import ColumnSpec
from bridge.model.outcome import Outcome
from bridge.model.rows import RowForm
from bridge.send.http import HttpRequest, HttpResponse
from bridge.transcode import formats

CONTENT_TYPES = {"ndjson": "application/x-ndjson", "json": "application/json", "csv": "text/csv"}
CSV_NULL = "\\N"


class HttpDialect(Dialect):
    name = "http"
    options: ClassVar[dict[str, Option]] = {
        **COMMON_OPTIONS,
        "format": Option("choice", "ndjson", ("ndjson", "json", "csv"), doc="body format"),
        "path": Option("str", "", doc="appended to url"),
        "query": Option("map", {}, doc="query parameters"),
        "headers": Option("map", {}, doc="extra request headers"),
        "content_type": Option("str", "", doc="overrides the format's content type"),
        "csv_header": Option("bool", True, doc="CSV: first line holds the column names"),
        "csv_delimiter": Option("str", ",", doc="CSV: one-character delimiter"),
        "compression": compression_option(),
    }
    auth_forms = (frozenset(), frozenset({"bearer"}), frozenset({"headers"}))
    target_required = False

    @classmethod
    def check_config(cls, route) -> list[str]:
        delim = route.options.get("csv_delimiter", ",")
        if len(delim) != 1:
            return [f"options.csv_delimiter: must be one character, got {delim!r}"]
        return []

    def __init__(self, route) -> None:
        super().__init__(route)
        o = self.opts
        self.format = o["format"]
        self.url = route.url
        if o["path"]:
            base = URL(route.url, encoded=True)
            # The path goes after the base URL's path, before any query it holds.
            self.url = str(base.with_path(base.path.rstrip("/") + o["path"]).with_query(base.query))
        if o["query"]:
            sep = "&" if "?" in self.url else "?"
            self.url += sep + urlencode(list(o["query"].items()))
        headers = {"Content-Type": o["content_type"] or CONTENT_TYPES[self.format]}
        headers.update(o["headers"])
        auth = route.auth
        if "bearer" in auth:
            headers.update(bearer(auth["bearer"]))
        if "headers" in auth:
            headers.update(auth_headers_from_map(auth["headers"]))
        self.headers = headers

    @classmethod
    def discover_problem(cls, route) -> str | None:
        if clickhouse_table(route.url, route.options) is None:
            return ("columns: discover on an http route reads ClickHouse's schema: its query must name "
                    "`INSERT INTO table`")
        return None

    def schema_request(self) -> HttpRequest:
        """ClickHouse's HTTP interface: the route's URL and settings with ``query=DESCRIBE TABLE t FORMAT JSON``
        (a GET: read-only)."""
        table = clickhouse_table(self.route.url, self.opts)
        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "query"]
        query.append(("query", f"DESCRIBE TABLE {table} FORMAT JSON"))
        url = parts._replace(query=urlencode(query)).geturl()
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-type"}
        return HttpRequest("GET", url, headers, b"")

    def schema_columns(self, body: Any) -> tuple[ColumnSpec, ...]:
        return clickhouse_columns(body)

    def sends_rows_as_objects(self) -> bool:
        return self.format in ("ndjson", "json")

    def row_form(self) -> RowForm | None:
        return RowForm("csv", self.opts["csv_delimiter"], CSV_NULL) if self.format == "csv" else None

    def build(self, rows) -> HttpRequest:
        rows = formats.as_form(rows, self.row_form())
        if self.format == "ndjson":
            body = formats.ndjson(rows)
        elif self.format == "json":
            body = formats.json_array(rows)
        else:
            # \N: ClickHouse's NULL in CSV (strings are always quoted, so "\N" stays a string).
            body = formats.csv_body(rows, self.opts["csv_header"], self.opts["csv_delimiter"], null=CSV_NULL)
        return HttpRequest("POST", self.url, dict(self.headers), body, self.compression)

    def classify(self, response: HttpResponse, rows) -> Outcome:
        outcome = super().classify(response, rows)
        if outcome.ok:
            return outcome
        number = exception_codes.code_of(response.headers.get("x-clickhouse-exception-code"), response.body)
        if number is None:
            return outcome
        outcome.upstream_code = str(number)
        return exception_codes.refine(outcome, number)
