"""Each dialect's conformance case: its route against its emulator, how to read back, and its status table.

tests/test_conformance.py runs the same tests over every case; its docstring is the contract a case states.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from bridge.dev.emulators.axiom import AxiomEmulator
from bridge.dev.emulators.base import Answer, Captured, Emulator
from bridge.dev.emulators.feldera import FelderaEmulator, Pipeline
from bridge.dev.emulators.http_sink import HttpSink
from bridge.dev.emulators.obsrv import Dataset, ObsrvEmulator
from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.proto import pb

TARGET = "t"  # the stream, dataset or table every case writes to


def _map() -> pb.Value:
    v = pb.Value()
    v.map.fields["b"].string = "y"
    v.map.fields["a"].int = 1
    return v


# Every kind of Value, and what a target parsing JSON reads: (column, value sent, value read back).
KINDS: list[tuple[str, pb.Value, Any]] = [
    ("k_unset", pb.Value(), None),
    ("k_null", pb.Value(null=0), None),
    ("k_bool", pb.Value(bool=True), True),
    ("k_int", pb.Value(int=-(2**63)), -(2**63)),
    ("k_uint", pb.Value(uint=2**64 - 1), 2**64 - 1),
    ("k_double", pb.Value(double=-1.5e-7), -1.5e-7),
    ("k_string", pb.Value(string='é "q"\n\\'), 'é "q"\n\\'),
    ("k_bytes", pb.Value(bytes=b"\x00\xff"), base64.b64encode(b"\x00\xff").decode()),
    ("k_timestamp", pb.Value(timestamp=Timestamp(seconds=1_767_225_600, nanos=123_456_789)),
     "2026-01-01T00:00:00.123456789Z"),
    ("k_list", pb.Value(list=pb.ListValue(values=[pb.Value(int=1), pb.Value(string="x"), pb.Value()])),
     [1, "x", None]),
    ("k_map", _map(), {"a": 1, "b": "y"}),
]
COLUMNS = ["id", "name", *(k[0] for k in KINDS)]
OP_NAMES = {pb.OP_INSERT: "insert", pb.OP_DELETE: "delete", pb.OP_UPSERT: "upsert"}


@dataclass(frozen=True)
class Expect:
    """One row of a status table: what the target answers, and what the caller must hear of it."""

    answer: Answer
    code: str  # the gRPC status code's name
    reason: str  # ErrorInfo.reason
    retried: bool  # the bridge tries again (and says RetryInfo)
    said: str  # text of the target's message that reaches the caller
    upstream_code: str = ""  # ErrorInfo.metadata["upstream_code"]
    resource: str = ""  # ResourceInfo.resource_name on NOT_FOUND; "{url}" stands for the route's URL

    @property
    def id(self) -> str:
        return f"{self.answer.status}-{self.upstream_code or self.reason}"


@dataclass(frozen=True)
class Case:
    """What a dialect declares to be checked against its emulator (see tests/test_conformance.py)."""

    id: str
    dialect: str
    make: Callable[[str], Emulator]  # the emulator, taking the route's secret as its credential
    route: Callable[[Emulator, str], dict]  # the route mapping to it (auth holding the secret)
    error: Callable[[int, str], Answer]  # the target's error answer with this status and message
    statuses: list[Expect]
    ops: frozenset[int] = frozenset({pb.OP_INSERT})
    # Rows in the order the target applied them, as (op name, row): default, every stored row as an insert.
    changes: Callable[[Emulator], list[tuple[str, dict]]] | None = None
    # Idempotency: the batch id a request carries, and the ack's upstream key that names it.
    batch_id: Callable[[Captured], str] | None = None
    ack_key: str = ""
    # The forms the secret travels in besides itself (Basic auth's base64).
    wire: Callable[[str], list[str]] = field(default=lambda s: [])

    def applied(self, emulator: Emulator) -> list[tuple[str, dict]]:
        if self.changes is not None:
            return self.changes(emulator)
        return [("insert", r) for r in emulator.rows]


def _basic(user: str) -> Callable[[str], list[str]]:
    return lambda secret: [base64.b64encode(f"{user}:{secret}".encode()).decode()]


# -- the targets' error shapes ----------------------------------------------------------------------------------
def plain(status: int, message: str) -> Answer:
    return Answer(status, {"message": message})


def enterprise(status: int, message: str, code: int = 0) -> Answer:
    return Answer(status, {"code": code, "message": message, "system": "timeplusd"})


def proton(status: int, message: str, code: int = 0, header: bool = True) -> Answer:
    return Answer(status, {"error_msg": message, "code": code, "request_id": "r-1"},
                  {"x-timeplus-exception-code": str(code)} if header else {})


def obsrv(status: int, message: str, code: str = "") -> Answer:
    return Answer(status, {"id": "api.data.in", "params": {"status": "FAILED"}, "error": {"code": code,
                                                                                        "message": message}})


def feldera(status: int, message: str, code: str = "") -> Answer:
    return Answer(status, {"message": message, "error_code": code, "details": {}})


def _e(answer: Answer, code: str, reason: str, retried: bool, upstream: str = "", resource: str = "") -> Expect:
    body = answer.body
    said = body.decode() if isinstance(body, bytes) else (
        body.get("message") or body.get("error_msg") or body.get("error") or "")
    if isinstance(said, dict):
        said = said["message"]
    return Expect(answer, code, reason, retried, said, upstream, resource)


# -- the cases ---------------------------------------------------------------------------------------------------
def _route(dialect: str, url: str, auth: dict, **options: Any) -> dict:
    return {"dialect": dialect, "url": url, "target": TARGET, "auth": auth, "options": options}


HTTP = Case(
    "http", "http", lambda s: HttpSink(),
    lambda e, s: {"dialect": "http", "url": e.url + "/in", "auth": {"bearer": s}},
    plain,
    [_e(plain(400, "bad row"), "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False),
     _e(plain(404, "no such table"), "NOT_FOUND", "TARGET_NOT_FOUND", False, resource="{url}"),
     _e(plain(429, "slow down"), "RESOURCE_EXHAUSTED", "UPSTREAM_RATE_LIMITED", True),
     _e(plain(500, "oops"), "INTERNAL", "UPSTREAM_INTERNAL_ERROR", True),
     _e(plain(503, "busy"), "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", True)],
)

_TP_STREAMS = {TARGET: COLUMNS}
TIMEPLUS_V1BETA2 = Case(
    "timeplus-v1beta2-changelog", "timeplus",
    lambda s: TimeplusEmulator(_TP_STREAMS, changelog=(TARGET,), user="ingest", password=s),
    lambda e, s: _route("timeplus", e.url + "/default", {"username": "ingest", "password": s}, changelog=True),
    enterprise,
    [_e(enterprise(400, "Stream x doesn't exist", 60), "NOT_FOUND", "TARGET_NOT_FOUND", False, "60", TARGET),
     _e(enterprise(400, "Cannot parse input", 117), "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False, "117"),
     _e(enterprise(500, "oops", 1002), "INTERNAL", "UPSTREAM_INTERNAL_ERROR", True, "1002"),
     _e(enterprise(503, "busy"), "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", True, "0")],
    ops=frozenset({pb.OP_INSERT, pb.OP_DELETE}),
    changes=lambda e: [("insert" if d == 1 else "delete", r) for d, r in e.changes],
    wire=_basic("ingest"),
)
TIMEPLUS_V1BETA1 = Case(
    "timeplus-v1beta1", "timeplus", lambda s: TimeplusEmulator(_TP_STREAMS, api_key=s),
    lambda e, s: _route("timeplus", e.url + "/default", {"api_key": s}, api="v1beta1"),
    enterprise,
    [_e(Answer(401, {"code": 401, "message": "unauthorized", "system": "appserver"}), "UNAUTHENTICATED",
        "UPSTREAM_UNAUTHENTICATED", False, "401"),
     _e(enterprise(400, "No such column zzz", 16), "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False, "16"),
     _e(enterprise(503, "busy"), "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", True, "0")],
)
TIMEPLUS_PROTON = Case(
    "timeplus-proton", "timeplus", lambda s: TimeplusEmulator(_TP_STREAMS, proton_users={"ingest": s}),
    lambda e, s: _route("timeplus", e.url, {"username": "ingest", "password": s}, api="proton"),
    proton,
    [_e(proton(500, "Authentication failed", 516), "UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED", False, "516"),
     _e(proton(500, "No such column x", 16), "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False, "16"),
     _e(proton(404, "Stream doesn't exist", 60), "NOT_FOUND", "TARGET_NOT_FOUND", False, "60", TARGET),
     _e(proton(400, "Cannot parse DateTime", 41, header=False), "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False,
        "41"),
     _e(proton(500, "Memory limit", 241), "INTERNAL", "UPSTREAM_INTERNAL_ERROR", True, "241"),
     _e(proton(501, "Unknown compression", 48, header=False), "UNIMPLEMENTED", "UPSTREAM_UNIMPLEMENTED", False,
        "48"),
     _e(proton(503, "timeout", 209), "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", True, "209")],
    batch_id=lambda c: c.headers["x-timeplus-idempotent-id"], ack_key="idempotent_id",
    wire=_basic("ingest"),
)
OBSRV = Case(
    "obsrv", "obsrv", lambda s: ObsrvEmulator([Dataset(TARGET)], token=s),
    lambda e, s: _route("obsrv", e.url, {"bearer": s}),
    obsrv,
    [_e(obsrv(400, "#/required must have required property 'data'", "DATA_INGESTION_INVALID_INPUT"),
        "INVALID_ARGUMENT", "DATA_INGESTION_INVALID_INPUT", False, "DATA_INGESTION_INVALID_INPUT"),
     _e(obsrv(404, "Dataset with id/alias name 't' not found", "DATASET_NOT_FOUND"), "NOT_FOUND",
        "DATASET_NOT_FOUND", False, "DATASET_NOT_FOUND", TARGET),
     _e(obsrv(404, "Entry topic not found", "TOPIC_NOT_FOUND"), "FAILED_PRECONDITION", "TOPIC_NOT_FOUND", False,
        "TOPIC_NOT_FOUND"),
     _e(obsrv(401, "No token provided", "UNAUTHORIZED ACCESS"), "UNAUTHENTICATED", "UNAUTHORIZED_ACCESS", False,
        "UNAUTHORIZED ACCESS"),
     _e(obsrv(403, "Access denied for the user", "FORBIDDEN ACCESS"), "PERMISSION_DENIED", "FORBIDDEN_ACCESS",
        False, "FORBIDDEN ACCESS"),
     _e(obsrv(500, "kafka down", "INTERNAL_SERVER_ERROR"), "INTERNAL", "INTERNAL_SERVER_ERROR", True,
        "INTERNAL_SERVER_ERROR")],
    batch_id=lambda c: orjson.loads(c.body)["params"]["msgid"], ack_key="msgid",
)


def _fel(status: int, code: str, grpc_code: str, reason: str, retried: bool, resource: str = "") -> Expect:
    return _e(feldera(status, f"{code} happened", code), grpc_code, reason, retried, code, resource)


FELDERA = Case(
    "feldera", "feldera", lambda s: FelderaEmulator({"p": Pipeline({TARGET: COLUMNS})}, api_key=s),
    lambda e, s: _route("feldera", e.url, {"api_key": s}, pipeline="p"),
    feldera,
    [_fel(404, "UnknownPipelineName", "NOT_FOUND", "PIPELINE_NOT_FOUND", False, "p"),
     _fel(404, "ConfigError.UnknownInputStream", "NOT_FOUND", "TABLE_NOT_FOUND", False, TARGET),
     _fel(429, "ApiConnectionLimit", "RESOURCE_EXHAUSTED", "API_CONNECTION_LIMIT", True),
     _fel(410, "Terminating", "UNAVAILABLE", "PIPELINE_TERMINATING", True),
     *(_fel(503, code, "UNAVAILABLE", "PIPELINE_UNAVAILABLE", True)
       for code in ("PipelineInteractionNotDeployed", "PipelineInteractionUnreachable", "Initializing",
                    "AwaitingApproval", "BootstrapInProgress", "RestoreInProgress", "Suspended")),
     _fel(401, "AuthenticationFailed", "UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED", False),
     _fel(403, "InsufficientPermissions", "PERMISSION_DENIED", "UPSTREAM_PERMISSION_DENIED", False),
     *(_fel(400, code, "INVALID_ARGUMENT", "CONFIG_ERROR", False)
       for code in ("ConfigError.ParserConfigParseError", "ConfigError.UnknownInputFormat",
                    "ConfigError.InputFormatNotSupported")),
     _fel(500, "SomethingUnexpected", "INTERNAL", "UPSTREAM_INTERNAL_ERROR", True)],
    ops=frozenset({pb.OP_INSERT, pb.OP_DELETE, pb.OP_UPSERT}),
    changes=lambda e: [("upsert" if k == "update" else k, r) for k, r in e.changes],
)
AXIOM = Case(
    "axiom", "axiom", lambda s: AxiomEmulator(datasets=(TARGET,), tokens=(s,)),
    lambda e, s: _route("axiom", e.url, {"token": s}),
    plain,
    [_e(plain(401, "invalid token"), "UNAUTHENTICATED", "UPSTREAM_UNAUTHENTICATED", False),
     _e(Answer(403, {"code": 403, "message": "Forbidden"}), "PERMISSION_DENIED", "UPSTREAM_PERMISSION_DENIED",
        False, "403"),
     _e(Answer(403, {"error": "forbidden by policy"}), "PERMISSION_DENIED", "UPSTREAM_PERMISSION_DENIED", False),
     _e(Answer(400, b"not json at all"), "INVALID_ARGUMENT", "UPSTREAM_BAD_REQUEST", False),
     _e(plain(404, "dataset not found"), "NOT_FOUND", "TARGET_NOT_FOUND", False, resource=TARGET),
     _e(plain(415, "unsupported content type"), "INVALID_ARGUMENT", "UPSTREAM_REJECTED", False),
     _e(plain(500, "internal"), "INTERNAL", "UPSTREAM_INTERNAL_ERROR", True),
     _e(plain(503, "unavailable"), "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", True)],
)

CASES = [HTTP, TIMEPLUS_V1BETA2, TIMEPLUS_V1BETA1, TIMEPLUS_PROTON, OBSRV, FELDERA, AXIOM]
