"""Timeplus: the three ingest surfaces, both formats, every auth form, changelog ops, and the error codes."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import grpc
import orjson
import pytest

from bridge.config import parse_config
from bridge.dev import sample
from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.model.errors import ConfigError
from bridge.proto import pb
from tests.conftest import fast_delivery

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "timeplus-enterprise-rest.openapi.json"
COLS = list(sample.COLUMNS)


@pytest.fixture
async def tp():
    e = TimeplusEmulator(streams={"clicks": COLS, "kv": ["k", "v"], "we ird": ["a"]}, changelog=("kv",),
                         proton_users={"default": "", "ingest": "pw"})
    await e.start()
    yield e
    await e.stop()


def route(e, target="clicks", auth=None, **options) -> dict:
    return {"dialect": "timeplus", "url": e.url + ("" if options.get("api") == "proton" else "/default"),
            "target": target, "auth": {"username": "ingest", "password": "secret"} if auth is None else auth,
            "options": options, "batch": {"linger": "0s"}, "delivery": fast_delivery(max_elapsed="400ms")}


async def batch(bridge_factory, channel_factory, r, req):
    b = await bridge_factory({"r": r})
    return await channel_factory(b).IngestBatch(req)


async def test_enterprise_compact_with_basic_auth(tp, bridge_factory, channel_factory):
    ack = await batch(bridge_factory, channel_factory, route(tp), sample.columns_request("r", 1, range(3)))
    assert ack.accepted == 3
    (cap,) = tp.requests
    assert cap.path == "/default/api/v1beta2/streams/clicks/ingest"
    assert cap.query == [("format", "compact")]
    assert cap.headers["Content-Type"] == "application/json"
    assert cap.headers["Authorization"] == "Basic " + base64.b64encode(b"ingest:secret").decode()
    assert "x-timeplus-idempotent-id" not in cap.headers and "Content-Encoding" not in cap.headers
    body = orjson.loads(cap.body)
    assert body == {"columns": COLS, "data": [list(sample.expected_json(i).values()) for i in range(3)]}


async def test_enterprise_ndjson_streaming_with_vendor_content_type(tp, bridge_factory, channel_factory):
    r = route(tp, format="ndjson", content_type="vendor")
    await batch(bridge_factory, channel_factory, r, sample.rows_request("r", 1, range(2)))
    (cap,) = tp.requests
    assert cap.query == [("format", "streaming")]
    assert cap.headers["Content-Type"] == "application/vnd.timeplus+json;format=streaming"
    assert [orjson.loads(x) for x in cap.body.splitlines()] == [sample.expected_json(i) for i in range(2)]


@pytest.mark.parametrize(("auth_header", "header", "value"), [
    ("auto", "X-Api-Key", "demo-api-key"), ("authorization", "Authorization", "ApiKey demo-api-key")])
async def test_cloud_v1beta1_api_keys(tp, bridge_factory, channel_factory, auth_header, header, value):
    r = route(tp, auth={"api_key": "demo-api-key"}, api="v1beta1", auth_header=auth_header)
    ack = await batch(bridge_factory, channel_factory, r, sample.json_request("r", 1, range(2)))
    assert ack.accepted == 2
    (cap,) = tp.requests
    assert cap.path == "/default/api/v1beta1/streams/clicks/ingest" and cap.headers[header] == value


async def test_proton_user_headers_idempotent_id_and_compression(tp, bridge_factory, channel_factory):
    r = route(tp, auth={"username": "ingest", "password": "pw"}, api="proton", compression="zstd")
    ack = await batch(bridge_factory, channel_factory, r, sample.columns_request("r", 1, range(4)))
    assert ack.accepted == 4
    (cap,) = tp.requests
    assert cap.path == "/proton/v1/ingest/streams/clicks" and cap.query == [("format", "compact")]
    assert (cap.headers["x-timeplus-user"], cap.headers["x-timeplus-key"]) == ("ingest", "pw")
    assert cap.headers["Content-Encoding"] == "zstd" and "Authorization" not in cap.headers
    ident = cap.headers["x-timeplus-idempotent-id"]
    assert uuid.UUID(ident) and ack.upstream["idempotent_id"] == ident and ack.upstream["request_id"]


async def test_proton_without_auth_is_the_default_user_and_basic_works_too(tp, bridge_factory, channel_factory):
    b = await bridge_factory({"none": route(tp, auth={}, api="proton"),
                              "basic": route(tp, auth={"username": "ingest", "password": "pw"}, api="proton",
                                             auth_header="basic")})
    stub = channel_factory(b)
    assert (await stub.IngestBatch(sample.json_request("none", 1, range(1)))).accepted == 1
    assert (await stub.IngestBatch(sample.json_request("basic", 1, range(1)))).accepted == 1
    assert "x-timeplus-user" not in tp.requests[0].headers and "Authorization" not in tp.requests[0].headers
    assert tp.requests[1].headers["Authorization"] == "Basic " + base64.b64encode(b"ingest:pw").decode()


async def test_changelog_ops_become_tp_delta_and_upserts_are_rejected(tp, bridge_factory, channel_factory):
    req = pb.IngestRequest(route="r")
    req.rows.columns.extend(["k", "v"])
    for k, op in (("a", pb.OP_INSERT), ("b", pb.OP_DELETE), ("c", pb.OP_UPSERT)):
        req.rows.rows.add(op=op).values.extend([pb.Value(string=k), pb.Value(int=1)])
    ack = await batch(bridge_factory, channel_factory, route(tp, "kv", changelog=True), req)
    assert (ack.accepted, [e.index for e in ack.errors]) == (2, [2])
    assert "op UPSERT is not supported" in ack.errors[0].reason
    body = orjson.loads(tp.requests[0].body)
    assert body == {"columns": ["k", "v", "_tp_delta"], "data": [["a", 1, 1], ["b", 1, -1]]}
    assert tp.changes == [(1, {"k": "a", "v": 1}), (-1, {"k": "b", "v": 1})]


async def test_without_changelog_a_delete_is_rejected_by_index(tp, bridge_factory, channel_factory):
    req = sample.json_request("r", 1, range(2))
    req.json.ops.extend([pb.OP_DELETE, pb.OP_INSERT])
    ack = await batch(bridge_factory, channel_factory, route(tp), req)
    assert (ack.accepted, [e.index for e in ack.errors]) == (1, [0])


async def test_stream_names_are_one_escaped_segment(tp, bridge_factory, channel_factory):
    req = pb.IngestRequest(route="r")
    req.json.objects.append(b'{"a": 1}')
    ack = await batch(bridge_factory, channel_factory, route(tp, "we ird"), req)
    assert ack.accepted == 1 and tp.requests[0].raw_path.startswith("/default/api/v1beta2/streams/we%20ird/ingest")


async def test_the_emulator_refuses_what_timeplus_refuses(tp, bridge_factory, channel_factory):
    b = await bridge_factory({
        "bad-pw": route(tp, auth={"username": "ingest", "password": "wrong"}, api="proton"),
        "no-stream": route(tp, "nope", api="v1beta2"),
        "no-col": route(tp, api="v1beta2"),
    })
    stub = channel_factory(b)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(sample.json_request("bad-pw", 1, range(1)))
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(sample.json_request("no-stream", 1, range(1)))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    req = pb.IngestRequest(route="no-col")
    req.json.objects.append(b'{"id": 1, "zzz": 2}')
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "zzz" in ei.value.details()


@pytest.mark.parametrize(("options", "auth", "problem"), [
    ({"api": "proton", "format": "ndjson"}, {}, "Proton ingests the compact format only"),
    ({"api": "proton"}, {"api_key": "k"}, "not an api_key"),
    ({"api": "v1beta1"}, {"username": "u", "password": "p"}, "needs {api_key"),
    ({"api": "v1beta2"}, {}, "needs {username, password} or {api_key}"),
    ({"auth_header": "basic"}, {"api_key": "k"}, "basic needs auth.username"),
])
def test_combinations_that_do_not_fit_are_config_errors(options, auth, problem):
    doc = {"routes": {"r": {"dialect": "timeplus", "url": "http://127.0.0.1:1/default", "target": "s",
                            "auth": auth, "options": options}}}
    with pytest.raises(ConfigError) as ei:
        parse_config(json.dumps(doc), env={})
    assert problem in str(ei.value)


def test_the_requests_fit_the_enterprise_openapi():
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is not here (CI has shared/ beside the repository)")
    spec = json.loads(SPEC.read_text())
    (path,) = [p for p in spec["paths"] if p.endswith("/streams/{name}/ingest")]
    assert path == "/v1beta2/streams/{name}/ingest"
    assert spec["servers"][0]["url"].endswith("/default/api")
    op = spec["paths"][path]["post"]
    params = {p["name"]: p for p in op.get("parameters", [])}
    assert {"compact", "streaming"} <= set(params["format"]["schema"]["enum"])
    assert "BasicAuth" in json.dumps(spec["components"]["securitySchemes"])
