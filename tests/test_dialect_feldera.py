"""Feldera: query options, change formats, atomic arrays, parse errors by invalid_text, completion tokens, errors."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import grpc
import orjson
import pytest

from bridge.dev import sample
from bridge.dev.emulators.feldera import FelderaEmulator, Pipeline
from bridge.dialects.feldera import FelderaDialect
from bridge.model.outcome import Outcome
from bridge.model.rows import Op, Rows
from bridge.proto import pb
from bridge.send.http import HttpResponse
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "feldera-openapi.json"
KEY = "apikey:" + "a" * 128


@pytest.fixture
async def fel():
    e = FelderaEmulator({"shop": Pipeline({"clicks": list(sample.COLUMNS), "kv": ["k", "v"], "T1": ["k", "v"]}),
                         "paused": Pipeline({"kv": ["k", "v"]}, state="paused"),
                         "stopped": Pipeline({"kv": ["k", "v"]}, state="stopped")},
                        api_key=KEY, inprogress_polls=2, paused_hold=0.05)
    await e.start()
    yield e
    await e.stop()


def route(e, target="kv", pipeline="shop", **options) -> dict:
    return {"dialect": "feldera", "url": e.url, "target": target, "auth": {"api_key": KEY},
            "options": {"pipeline": pipeline, **options}, "batch": {"linger": "0s"},
            "delivery": fast_delivery(max_elapsed="400ms")}


def kv_request(*rows, ops=None) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r")
    req.rows.columns.extend(["k", "v"])
    for i, (k, v) in enumerate(rows):
        req.rows.rows.add(op=(ops or [0] * len(rows))[i]).values.extend([pb.Value(string=k), pb.Value(int=v)])
    return req


async def batch(bridge_factory, channel_factory, r, req):
    b = await bridge_factory({"r": r})
    return await channel_factory(b).IngestBatch(req)


async def test_default_insert_delete_array_with_explicit_format(fel, bridge_factory, channel_factory):
    req = kv_request(("a", 1), ("b", 2), ("a", 3), ops=[pb.OP_INSERT, pb.OP_DELETE, pb.OP_UPSERT])
    ack = await batch(bridge_factory, channel_factory, route(fel), req)
    assert ack.accepted == 3 and ack.upstream["token"]
    (cap,) = fel.requests
    assert cap.path == "/v0/pipelines/shop/ingress/kv"
    assert cap.query == [("force", "false"), ("format", "json"), ("array", "true"),
                         ("update_format", "insert_delete")]
    assert cap.headers["Authorization"] == f"Bearer {KEY}" and cap.headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in cap.headers
    assert orjson.loads(cap.body) == [{"insert": {"k": "a", "v": 1}}, {"delete": {"k": "b", "v": 2}},
                                      {"update": {"k": "a", "v": 3}}]
    assert fel.changes == [("insert", {"k": "a", "v": 1}), ("delete", {"k": "b", "v": 2}),
                           ("update", {"k": "a", "v": 3})]


async def test_raw_ndjson_and_force(fel, bridge_factory, channel_factory):
    r = route(fel, array=False, update_format="raw", force=True)
    req = kv_request(("a", 1), ("b", 2), ops=[pb.OP_INSERT, pb.OP_DELETE])
    ack = await batch(bridge_factory, channel_factory, r, req)
    assert (ack.accepted, [e.index for e in ack.errors]) == (1, [1])
    assert "op DELETE is not supported" in ack.errors[0].reason
    (cap,) = fel.requests
    assert parse_qs(urlsplit(cap.raw_path).query) == {"force": ["true"], "format": ["json"], "array": ["false"],
                                                      "update_format": ["raw"]}
    assert cap.body == b'{"k":"a","v":1}\n'


async def test_debezium_payloads(fel, bridge_factory, channel_factory):
    req = kv_request(("a", 1), ("b", 2), ops=[pb.OP_INSERT, pb.OP_DELETE])
    await batch(bridge_factory, channel_factory, route(fel, update_format="debezium"), req)
    assert orjson.loads(fel.requests[0].body) == [{"payload": {"op": "c", "after": {"k": "a", "v": 1}}},
                                                  {"payload": {"op": "d", "before": {"k": "b", "v": 2}}}]


async def test_json_objects_are_wrapped_without_re_encoding(fel, bridge_factory, channel_factory):
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"k": "x", "v": 1.50}'])
    await batch(bridge_factory, channel_factory, route(fel), req)
    assert fel.requests[0].body == b'[{"insert":{"k": "x", "v": 1.50}}]'


async def test_csv_is_headerless_in_table_column_order(fel, bridge_factory, channel_factory):
    r = route(fel, format="csv")
    r["columns"] = {"k": "string", "v": "int"}
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"v": 1, "k": "a,b"}', b'{"k": "c", "v": 2}'])
    ack = await batch(bridge_factory, channel_factory, r, req)
    assert ack.accepted == 2
    (cap,) = fel.requests
    assert cap.query == [("force", "false"), ("format", "csv")]
    assert cap.headers["Content-Type"] == "text/csv"
    assert cap.body == b'"a,b",1\n"c",2\n'


def test_csv_without_declared_columns_is_a_config_error():
    from bridge.config import parse_config
    from bridge.model.errors import ConfigError

    with pytest.raises(ConfigError, match="declare the table's columns in order"):
        parse_config(json.dumps({"routes": {"r": {"dialect": "feldera", "url": "http://127.0.0.1:1", "target": "t",
                                                  "options": {"pipeline": "p", "format": "csv"}}}}), env={})
    with pytest.raises(ConfigError, match="pipeline: is required"):
        parse_config(json.dumps({"routes": {"r": {"dialect": "feldera", "url": "http://127.0.0.1:1",
                                                  "target": "t"}}}), env={})


async def test_unquoted_table_names_match_case_insensitively_and_names_are_escaped(
        fel, bridge_factory, channel_factory):
    ack = await batch(bridge_factory, channel_factory, route(fel, "t1"), kv_request(("a", 1)))
    assert ack.accepted == 1
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await batch(bridge_factory, channel_factory, route(fel, "no/such"), kv_request(("a", 1)))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert fel.requests[-1].raw_path.startswith("/v0/pipelines/shop/ingress/no%2Fsuch?")
    assert details(status_of(ei.value))["ResourceInfo"][0].resource_name == "no/such"


async def test_a_parse_error_in_an_array_drops_the_batch_and_names_the_row(fel, bridge_factory, channel_factory):
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"k": "a", "v": 1}', b'{"k": "b", "zzz": 2}', b'{"k": "c", "v": 3}'])
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await batch(bridge_factory, channel_factory, route(fel), req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    st = status_of(ei.value)
    assert error_info(st).reason == "PARSE_ERRORS" and error_info(st).metadata["upstream_code"] == "ParseErrors"
    (br,) = details(st)["BadRequest"]
    assert [v.field for v in br.field_violations] == ["rows[1]"]
    (ack,) = details(st)["BatchAck"]
    assert (ack.accepted, ack.rejected) == (0, 3)
    assert fel.rows == [] and len(fel.requests) == 1, "atomic: nothing kept, nothing resent"


async def test_without_arrays_good_records_stay_and_only_bad_rows_are_rejected(fel, bridge_factory, channel_factory):
    await batch(bridge_factory, channel_factory, route(fel, array=False), kv_request(("warm", 0)))
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"k": "a", "v": 1}', b'{"k": "b", "zzz": 2}', b'{"k": "c", "v": 3}'])
    b = await bridge_factory({"r": route(fel, array=False)})
    ack = await channel_factory(b).IngestBatch(req)
    assert ack.status.code == 0, "the good rows are in: a resend would duplicate them"
    assert (ack.accepted, ack.rejected, [e.index for e in ack.errors]) == (2, 1, [1])
    assert "unknown field" in ack.errors[0].reason
    assert [r["k"] for r in fel.rows] == ["warm", "a", "c"] and len(fel.requests) == 2


async def test_wait_for_completion_polls_until_complete(fel, bridge_factory, channel_factory):
    ack = await batch(bridge_factory, channel_factory, route(fel, wait_for_completion=True), kv_request(("a", 1)))
    assert ack.accepted == 1 and ack.upstream["completion"] == "complete"
    assert fel.polls == 3, "two inprogress (202) answers, then complete"
    token = ack.upstream["token"]
    assert "+" in token or "/" in token or "=" in token  # base64: the poll must percent-encode it


async def test_a_stale_token_after_a_restart_is_aborted(fel, bridge_factory, channel_factory):
    fel.inprogress_polls = 1000
    b = await bridge_factory({"r": route(fel, wait_for_completion=True, completion_timeout="5s")})

    async def restart_soon():
        await wait_until(lambda: fel.polls >= 2, what="two completion polls")
        fel.restart()

    task = asyncio.create_task(restart_soon())
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await channel_factory(b).IngestBatch(kv_request(("a", 1)))
    await task
    assert ei.value.code() == grpc.StatusCode.ABORTED
    assert error_info(status_of(ei.value)).reason == "COMPLETION_TOKEN_STALE"
    assert len(fel.requests) == 1, "the rows were accepted once; they are not resent"


async def test_completion_waits_no_longer_than_its_timeout(fel, bridge_factory, channel_factory):
    fel.inprogress_polls = 10_000
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await batch(bridge_factory, channel_factory, route(fel, wait_for_completion=True, completion_timeout="300ms"),
                    kv_request(("a", 1)))
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (ack,) = details(status_of(ei.value))["BatchAck"]
    assert ack.upstream["token"], "the caller can still check the token itself"


@pytest.mark.parametrize(("pipeline", "code", "reason", "retried"), [
    ("nope", "NOT_FOUND", {"PIPELINE_NOT_FOUND"}, False),
    ("stopped", "UNAVAILABLE", {"PIPELINE_UNAVAILABLE"}, True),
    # A held request may also outlast the last attempt's share of the budget: still UNAVAILABLE.
    ("paused", "UNAVAILABLE", {"PIPELINE_UNAVAILABLE", "UPSTREAM_TIMEOUT"}, True),
])
async def test_pipeline_states(fel, bridge_factory, channel_factory, pipeline, code, reason, retried):
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await batch(bridge_factory, channel_factory, route(fel, pipeline=pipeline), kv_request(("a", 1)))
    assert ei.value.code() == getattr(grpc.StatusCode, code)
    assert error_info(status_of(ei.value)).reason in reason
    assert (len(fel.requests) > 1) == retried


async def test_a_paused_pipeline_takes_rows_with_force(fel, bridge_factory, channel_factory):
    ack = await batch(bridge_factory, channel_factory, route(fel, pipeline="paused", force=True), kv_request(("a", 1)))
    assert ack.accepted == 1


async def test_pipeline_and_table_names_are_one_escaped_segment_each(fel, bridge_factory, channel_factory):
    # The error table itself is in tests/test_conformance.py (the Feldera case).
    fel.fail_next(404, {"message": "no", "error_code": "UnknownPipelineName", "details": {}})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await batch(bridge_factory, channel_factory, route(fel, "t/1", pipeline="p q"), kv_request(("a", 1)))
    assert details(status_of(ei.value))["ResourceInfo"][0].resource_name == "p q"
    assert fel.requests[0].raw_path.startswith("/v0/pipelines/p%20q/ingress/t%2F1?")


async def test_not_found_names_the_pipeline_or_the_table(fel, bridge_factory, channel_factory):
    for pipeline, table, resource, reason in (("nope", "kv", "nope", "PIPELINE_NOT_FOUND"),
                                              ("shop", "zz", "zz", "TABLE_NOT_FOUND")):
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await batch(bridge_factory, channel_factory, route(fel, table, pipeline=pipeline), kv_request(("a", 1)))
        st = status_of(ei.value)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND and error_info(st).reason == reason
        assert details(st)["ResourceInfo"][0].resource_name == resource


async def test_retry_after_on_429_reaches_the_caller(fel, bridge_factory, channel_factory):
    fel.fail_next(429, {"message": "too many", "error_code": "ApiConnectionLimit", "details": {}},
                  headers={"Retry-After": "7"}, times=1000)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await batch(bridge_factory, channel_factory, route(fel), kv_request(("a", 1)))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    (info,) = details(status_of(ei.value))["RetryInfo"]
    assert info.retry_delay.seconds >= 7


async def test_a_wrong_api_key_is_unauthenticated(fel, bridge_factory, channel_factory):
    r = route(fel)
    r["auth"] = {"api_key": "apikey:wrong"}
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await batch(bridge_factory, channel_factory, r, kv_request(("a", 1)))
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED and len(fel.requests) == 1
    info = error_info(status_of(ei.value))
    assert info.metadata["upstream_code"] == "AuthenticationFailed" and info.metadata["http_status"] == "401"
    assert "apikey:wrong" not in ei.value.details() and "apikey:wrong" not in str(info.metadata)
    assert "RetryInfo" not in details(status_of(ei.value))


async def test_no_auth_sends_no_authorization_header(bridge_factory, channel_factory):
    e = FelderaEmulator({"shop": Pipeline({"kv": ["k", "v"]})})
    await e.start()
    try:
        r = route(e)
        del r["auth"]
        ack = await batch(bridge_factory, channel_factory, r, kv_request(("a", 1)))
        assert ack.accepted == 1 and "Authorization" not in e.requests[0].headers
    finally:
        await e.stop()


def test_delivery_defaults_keep_requests_under_the_proxy_timeout():
    from bridge.config import parse_config

    def delivery(extra: dict):
        doc = {"routes": {"r": {"dialect": "feldera", "url": "http://127.0.0.1:1", "target": "t",
                                "options": {"pipeline": "p"}, **extra}}}
        return parse_config(json.dumps(doc), env={}).routes["r"].delivery

    d = delivery({})
    assert (d.timeout, d.concurrency) == (20.0, 2)
    assert delivery({"delivery": {"concurrency": 5}}).concurrency == 5


@pytest.mark.parametrize(("ordered", "most"), [(None, 1), (False, 2)], ids=["ordered-by-default", "unordered"])
async def test_requests_in_flight_per_table_are_bounded(fel, bridge_factory, channel_factory, ordered, most):
    fel.delay = 0.1
    r = route(fel)
    r["batch"] = {"linger": "0s", "max_rows": 1}
    del r["delivery"]
    if ordered is not None:
        r["delivery"] = {"ordered": ordered}
    b = await bridge_factory({"r": r})

    async def gen():
        for i in range(8):
            req = kv_request((f"k{i}", i))
            req.sequence = i
            yield req

    acks = [a async for a in channel_factory(b).IngestStream(gen())]
    assert [a.accepted for a in acks] == [1] * 8
    assert len(fel.requests) == 8
    # Inserts and deletes keep their order: one request at a time unless the route says order does not matter;
    # then delivery_defaults allow two per table, never more.
    assert fel.max_in_flight == most
    if ordered is None:
        assert [orjson.loads(c.body)[0]["insert"]["k"] for c in fel.requests] == [f"k{i}" for i in range(8)]


def _schema(spec: dict, node):
    """An OpenAPI 3.0 schema as plain JSON Schema: $ref inlined, ``nullable`` as a null alternative."""
    if isinstance(node, list):
        return [_schema(spec, x) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _schema(spec, spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
    out = {k: _schema(spec, v) for k, v in node.items() if k not in ("nullable", "example", "format")}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out


def _spec() -> dict:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is not here (CI has shared/ beside the repository)")
    return json.loads(SPEC.read_text())


async def test_the_requests_fit_the_feldera_openapi(fel, bridge_factory, channel_factory):
    jsonschema = pytest.importorskip("jsonschema")
    spec = _spec()
    template = "/v0/pipelines/{pipeline_name}/ingress/{table_name}"
    op = spec["paths"][template]["post"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    routes = {f"r{i}": route(fel, update_format=f, array=bool(i % 2)) for i, f in
              enumerate(("insert_delete", "raw", "debezium"))}
    routes["csv"] = {**route(fel, format="csv"), "columns": {"k": "string", "v": "int"}}
    b = await bridge_factory(routes)
    stub = channel_factory(b)
    for name in routes:
        req = kv_request(("a", 1))
        req.route = name
        await stub.IngestBatch(req)
    assert len(fel.requests) == 4
    for cap in fel.requests:
        assert re.fullmatch(template.replace("{pipeline_name}", "[^/]+").replace("{table_name}", "[^/]+"), cap.path)
        sent = dict(cap.query)
        assert {n for n, p in params.items() if p.get("required")} <= set(sent) <= set(params)
        for name, value in sent.items():
            schema = _schema(spec, params[name]["schema"])
            is_bool = "boolean" in json.dumps(schema)
            if is_bool:
                assert value in ("true", "false"), "lower-case booleans only"
            jsonschema.validate(json.loads(value) if is_bool else value, schema)
        assert cap.headers["Authorization"] == f"Bearer {KEY}"
        (content,) = op["requestBody"]["content"].values()
        jsonschema.validate(cap.body.decode("utf-8"), _schema(spec, content["schema"]))
    status = spec["paths"]["/v0/pipelines/{pipeline_name}/completion_status"]["get"]
    assert [p["name"] for p in status["parameters"] if p["in"] == "query"] == ["token"]


async def test_the_emulator_answers_fit_the_feldera_openapi(fel):
    jsonschema = pytest.importorskip("jsonschema")
    spec = _spec()
    schemas = spec["components"]["schemas"]
    auth = {"Authorization": f"Bearer {KEY}"}
    q = "?force=false&format=json&array=true&update_format=insert_delete"
    async with aiohttp.ClientSession() as http:
        async def call(method: str, path: str, body: bytes = b"") -> tuple[int, object]:
            async with http.request(method, fel.url + path, data=body, headers=auth) as resp:
                return resp.status, await resp.json()

        code, ok = await call("POST", "/v0/pipelines/shop/ingress/kv" + q, b'[{"insert":{"k":"a","v":1}}]')
        assert code == 200
        jsonschema.validate(ok, _schema(spec, schemas["CompletionTokenResponse"]))
        token = quote(ok["token"], safe="")
        seen = set()
        for _ in range(4):
            code, st = await call("GET", f"/v0/pipelines/shop/completion_status?token={token}")
            jsonschema.validate(st, _schema(spec, schemas["CompletionStatusResponse"]))
            seen.add((code, st["status"]))
        assert seen == {(202, "inprogress"), (200, "complete")}
        errors = [
            ("POST", "/v0/pipelines/nope/ingress/kv" + q, b"[]", 404, "UnknownPipelineName"),
            ("POST", "/v0/pipelines/shop/ingress/zz" + q, b"[]", 404, "ConfigError.UnknownInputStream"),
            ("POST", "/v0/pipelines/shop/ingress/kv" + q, b'[{"insert":{"zz":1}}]', 400, "ParseErrors"),
            ("POST", "/v0/pipelines/stopped/ingress/kv" + q, b"[]", 503, "PipelineInteractionNotDeployed"),
            ("POST", "/v0/pipelines/paused/ingress/kv" + q, b"[]", 503, "PipelineInteractionUnreachable"),
            ("GET", "/v0/pipelines/shop/completion_status?token=x", b"", 400, "InvalidParam"),
        ]
        for method, path, body, want, error_code in errors:
            code, err = await call(method, path, body)
            assert (code, err["error_code"]) == (want, error_code)
            jsonschema.validate(err, _schema(spec, schemas["ErrorResponse"]))
        fel.restart()
        code, err = await call("GET", f"/v0/pipelines/shop/completion_status?token={token}")
        assert code == 410
        jsonschema.validate(err, _schema(spec, schemas["ErrorResponse"]))
        code, cfg = await call("GET", "/v0/config")
        assert code == 200 and cfg["edition"] == "Open source" and cfg["version"]


# ---- build() and classify() directly ----

def dialect(**options) -> FelderaDialect:
    from bridge.config import parse_config

    doc = {"routes": {"r": {"dialect": "feldera", "url": "http://127.0.0.1:1", "target": "kv",
                            "options": {"pipeline": "p", **options}}}}
    if options.get("format") == "csv":
        doc["routes"]["r"]["columns"] = {"k": "string", "v": "int"}
    return FelderaDialect(parse_config(json.dumps(doc), env={}).routes["r"])


KV = Rows(("k", "v"), [("a", 1), ("b", 2), ("c", 3)])


def parse_errors(*texts: str, event: int = 77_000) -> HttpResponse:
    errors = [{"description": f"bad {i}", "event_number": event + i, "field": None, "invalid_bytes": None,
               "invalid_text": t, "suggestion": None, "tag": None} for i, t in enumerate(texts)]
    body = {"message": f"Errors parsing input data ({len(errors)} errors)", "error_code": "ParseErrors",
            "details": {"num_errors": len(errors), "errors": errors}}
    return HttpResponse(400, {}, orjson.dumps(body))


def test_parse_errors_are_matched_by_invalid_text_not_event_number():
    # Keys in another order, whitespace, the record or the row inside it: all name the same row.
    response = parse_errors('{"update": {"v": 3,  "k": "c"}}', '{"v":1,"k":"a"}', '{"k":"nobody","v":0}')
    rows = Rows(KV.columns, KV.data, ops=[Op.INSERT, Op.DELETE, Op.UPSERT])
    out = dialect().classify(response, rows)
    assert (out.code, out.reason, out.upstream_code, out.retryable) == ("INVALID_ARGUMENT", "PARSE_ERRORS",
                                                                        "ParseErrors", False)
    assert [(e.index, e.reason) for e in out.row_errors] == [(0, "Feldera: bad 1"), (2, "Feldera: bad 0")]
    assert "whole array of 3 rows" in out.message


def test_without_arrays_a_parse_error_is_a_partial_success():
    out = dialect(array=False).classify(parse_errors('{"insert":{"k":"b","v":2}}'), KV)
    assert out.code == "OK" and out.accepted == 2 and [e.index for e in out.row_errors] == [1]


def test_a_truncated_invalid_text_still_names_its_row():
    long = Rows(("k", "v"), [("x" * 5000, 1), ("y" * 5000, 2)])
    record = orjson.dumps({"insert": {"k": "y" * 5000, "v": 2}}).decode()
    out = dialect().classify(parse_errors(record[:4096]), long)
    assert [e.index for e in out.row_errors] == [1]


def test_csv_parse_errors_match_the_line():
    d = dialect(format="csv")
    assert d.build(KV).body == b'"a",1\n"b",2\n"c",3\n'
    out = d.classify(parse_errors('"c",3'), KV)
    assert [e.index for e in out.row_errors] == [2]


def test_json_rows_are_wrapped_by_bytes_per_op():
    rows = Rows(None, [b'{"k":1}', b'{"k": 2.50}', b'{"k":3}'], ops=[Op.INSERT, Op.DELETE, Op.UPSERT])
    assert dialect().build(rows).body == b'[{"insert":{"k":1}},{"delete":{"k": 2.50}},{"update":{"k":3}}]'
    deb = Rows(None, rows.data[:2], ops=[Op.INSERT, Op.DELETE])
    assert dialect(update_format="debezium", array=False).build(deb).body == (
        b'{"payload":{"op":"c","after":{"k":1}}}\n{"payload":{"op":"d","before":{"k": 2.50}}}\n')
    assert dialect(update_format="raw").build(Rows(None, rows.data)).body == b'[{"k":1},{"k": 2.50},{"k":3}]'


def test_ops_a_format_cannot_express_are_rejected_by_index():
    rows = Rows(KV.columns, KV.data, ops=[Op.INSERT, Op.UPSERT, Op.DELETE], index=[4, 5, 6])
    assert [e.index for e in dialect(update_format="debezium").reject_ops(rows)] == [5]
    assert [e.index for e in dialect(update_format="raw").reject_ops(rows)] == [5, 6]
    assert [e.index for e in dialect(format="csv").reject_ops(rows)] == [5, 6]
    assert dialect().reject_ops(rows) == []


def test_completion_answers():
    d = dialect(wait_for_completion=True)
    accepted = Outcome(code="OK", upstream={"token": "abc="})
    assert d._completion(HttpResponse(202, {}, b'{"status":"inprogress","step":null}'), accepted) is None
    assert d._completion(HttpResponse(200, {}, b'{"status":"inprogress","step":null}'), accepted) is None
    assert d._completion(HttpResponse(200, {}, b'{"status":"complete","step":3}'), accepted).ok
    stale = d._completion(HttpResponse(410, {}, b'{"message":"gone","error_code":"PipelineRestarted",'
                                                b'"details":{}}'), accepted)
    assert (stale.code, stale.upstream_code, stale.upstream["token"]) == ("ABORTED", "PipelineRestarted", "abc=")
    assert d._completion(HttpResponse(503, {}, b"{}"), accepted) is None
