"""What every dialect is: the same small shape for each target.

A dialect turns a batch of ``Rows`` into the exact HTTP request its target
documents (``build``) and the target's answer into an ``Outcome``
(``classify``). Queueing, retries, compression, 413 splits and acks live in
the pipeline around it, so a new target is one module of this shape, an
emulator and its conformance tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

from bridge.model.outcome import Outcome
from bridge.model.rows import Op, RowError, RowForm, Rows
from bridge.send import answer
from bridge.send.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from bridge.model.config import ColumnSpec, RouteConfig
    from bridge.send.transport import Transport


@dataclass(frozen=True)
class Option:
    """One documented route option: its kind, default and allowed values.

    kind: "bool", "int", "str", "choice", "map" (string to string),
    "duration" (seconds), "list" (of strings).
    """

    kind: str
    default: Any = None
    choices: tuple[str, ...] = ()
    required: bool = False
    doc: str = ""


# Options every dialect takes.
COMMON_OPTIONS: dict[str, Option] = {
    "timestamps": Option(
        "choice", "rfc3339", ("rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"),
        doc="how Value.timestamp and timestamp columns are written",
    ),
    "descriptor_set": Option(
        "str", "", doc="FileDescriptorSet (protoc --include_imports) holding the MessageBatch types",
    ),
}


def segment(name: str) -> str:
    """A name as exactly one escaped path segment: it can never reach another path."""
    if name in (".", ".."):
        return name.replace(".", "%2E")  # a dot segment would be resolved away: keep it a name
    return quote(name, safe="")


def join_url(base: str, path: str, query: list[tuple[str, str]] | None = None) -> str:
    url = base.rstrip("/") + path
    if query:
        url += "?" + urlencode(query)
    return url


def error_message(body: Any, raw: bytes, *keys: str) -> str:
    """The first of ``keys`` that holds a string in a JSON error body, else a short text."""
    if isinstance(body, dict):
        for key in keys:
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    text = raw[:300].decode("utf-8", "replace").strip()
    return text


INSERT_ONLY = frozenset({Op.INSERT})


class Dialect:
    """Base class; subclasses set the class attributes and override build/classify."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    # Each allowed form of the route's ``auth`` mapping, as its set of keys.
    auth_forms: ClassVar[tuple[frozenset[str], ...]] = (frozenset(),)
    target_required: ClassVar[bool] = True
    # Defaults for the route's ``batch`` and ``delivery`` keys, and a hard cap on rows per request.
    batch_defaults: ClassVar[dict[str, Any]] = {}
    delivery_defaults: ClassVar[dict[str, Any]] = {}
    max_rows_limit: ClassVar[int | None] = None
    # What the target name names, for ResourceInfo on NOT_FOUND.
    resource_type: ClassVar[str] = "target"
    # Whether a refusal (400 and the like) means the target took none of the request's rows, so that a
    # refused batch of several callers' requests may be split and sent again to find the one refused.
    atomic_refusal: ClassVar[bool] = True

    def __init__(self, route: RouteConfig) -> None:
        self.route = route
        self.opts = route.options
        # The Content-Encoding asked of the sender, for dialects that declare the ``compression`` option.
        chosen = self.opts.get("compression", "none")
        self.compression: str | None = None if chosen == "none" else chosen

    @classmethod
    def check_config(cls, route: RouteConfig) -> list[str]:
        """Cross-option problems, each as ``key: what is wrong`` with the key under the route
        (``options.format``, ``auth``, ``columns``); the config parser adds ``routes.<name>.``.
        Single keys are checked already."""
        return []

    @classmethod
    def discover_problem(cls, route: RouteConfig) -> str | None:
        """Why ``columns: discover`` cannot work on this route (None: it can)."""
        return f"the {cls.name} dialect cannot read its target's schema: declare the columns"

    def schema_request(self) -> HttpRequest:
        """The request that reads the target's schema (``columns: discover``)."""
        raise NotImplementedError

    def schema_columns(self, body: Any) -> tuple[ColumnSpec, ...]:
        """The target's columns from the schema answer's JSON body (SchemaError when it holds none)."""
        raise NotImplementedError

    def parses_json_rows(self) -> bool:
        """Whether ``prepare`` must split JSON rows for this dialect (encoders split them themselves)."""
        return False

    def sends_rows_as_objects(self) -> bool:
        """Whether this route's requests are the same whether its rows come as JSON objects or as a table: every
        body holds each row's object as it is (NDJSON, a JSON array, an envelope or wrapper around each), and
        whatever reads their values (``check_rows``, ``classify``) reads both alike. Then rows may reach
        ``build`` as JSON objects, whatever shape they came in (the native transcoder writes them so)."""
        return False

    def row_form(self) -> RowForm | None:
        """The form of this route's table bodies when each row is a run of bytes of its own (compact arrays,
        CSV lines): ``build`` then joins rows pre-encoded in it (``Rows.form``). None: no such form."""
        return None

    def reserved_columns(self) -> frozenset[str]:
        """Column names ``check_rows`` refuses in a table-shaped batch, the whole batch (JSON rows: by row)."""
        return frozenset()

    def rfc3339_columns(self) -> frozenset[str]:
        """Timestamp columns the target reads only as RFC 3339 strings, whatever the ``timestamps`` option."""
        return frozenset()

    def rows_per_request(self) -> int | None:
        """The most rows one request may carry for this route (None: batch.max_rows decides)."""
        return self.max_rows_limit

    def supported_ops(self) -> frozenset[Op]:
        """The row ops the target can express with this route's options (the one place ops are declared)."""
        return INSERT_ONLY

    def reject_ops(self, rows: Rows) -> list[RowError]:
        """Rows whose op the target cannot express, by caller index; never sent as something else."""
        if rows.ops is None:
            return []
        allowed = self.supported_ops()
        errors = []
        known = {int(o) for o in Op}
        for pos, op in enumerate(rows.ops):
            if op not in allowed:
                # Op is an open enum on the wire: a number from a newer caller is named, not trusted.
                name = Op(op).name if op in known else f"{op} (unknown)"
                errors.append(
                    RowError(
                        rows.caller_index(pos),
                        "",
                        f"op {name} is not supported by route {self.route.name!r} "
                        f"({self.name}); it takes {', '.join(o.name for o in sorted(allowed))}",
                    )
                )
        return errors

    def check_rows(self, rows: Rows) -> list[RowError]:
        """Dialect limits per row (event size, ...), by caller index; BatchRejected for the whole batch."""
        return []

    def build(self, rows: Rows) -> HttpRequest:
        raise NotImplementedError

    def reads_success_body(self) -> bool:
        """Whether a 2xx answer's body says what the target took (then it must be read whole)."""
        return False

    def answer(self, response: HttpResponse, rows: Rows) -> Outcome:
        """The outcome of an answer: ``classify``, unless a success body that matters was too large to read.

        A NOT_FOUND names the missing resource (ResourceInfo): the route's target unless ``classify`` named
        another (Feldera's pipeline).
        """
        if response.oversize and 200 <= response.status < 300 and self.reads_success_body():
            return unreadable(response, "UPSTREAM_ANSWER_TOO_LARGE",
                              f"its body is larger than the {len(response.body)} bytes the bridge reads")
        outcome = self.classify(response, rows)
        if outcome.code == "NOT_FOUND" and not outcome.resource:
            outcome.resource = self.route.target or self.route.url
        return outcome

    def classify(self, response: HttpResponse, rows: Rows) -> Outcome:
        """Default: the status table, with the body's message."""
        body = response.json()
        return answer.from_http(response.status, error_message(body, response.body, "message", "error"))

    async def confirm(self, transport: Transport, outcome: Outcome, deadline: float) -> Outcome:
        """After a 2xx: wait for anything the route asks (Feldera completion). Default: nothing."""
        return outcome


def unreadable(response: HttpResponse, reason: str, why: str) -> Outcome:
    """A success answer the bridge cannot read: what the target took is unknown, so it is never a success.

    Not retried by the bridge: a resend may duplicate rows the target did take. The caller decides.
    """
    return Outcome(code="UNKNOWN", reason=reason, http_status=response.status,
                   message=f"the target answered HTTP {response.status}, but {why}: whether it took the rows "
                           "is unknown, and resending them may duplicate some")


def bearer(secret: Any) -> dict[str, str]:
    """``Authorization: Bearer <secret>``, the header most targets document."""
    return {"Authorization": "Bearer " + str(getattr(secret, "value", secret))}


def compression_option(default: str = "none") -> Option:
    """The ``compression`` option: the request body's Content-Encoding, none, gzip or zstd."""
    return Option("choice", default, ("none", "gzip", "zstd"), doc="request body Content-Encoding")


def auth_headers_from_map(headers: dict[str, Any]) -> dict[str, str]:
    return {k: str(getattr(v, "value", v)) for k, v in headers.items()}
