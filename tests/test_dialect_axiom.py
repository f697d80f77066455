"""Axiom: each option's exact request, and every documented answer (200 with failures, 429, 430, errors)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import grpc
import orjson
import pytest

from bridge import sample
from bridge.emulators.axiom import AxiomEmulator
from bridge.proto import pb
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "axiom-v1-edge-ingest.openapi.json"
TOKEN = "xaat-test-token"


@pytest.fixture
async def axiom():
    e = AxiomEmulator(datasets=("events", "a/b"), tokens=(TOKEN, "xapt-personal"))
    await e.start()
    yield e
    await e.stop()


def route(e, **options) -> dict:
    return {"dialect": "axiom", "url": e.url, "target": "events", "auth": {"token": TOKEN},
            "batch": {"linger": "0s"}, "options": options, "delivery": fast_delivery(max_elapsed="500ms")}


async def send(bridge_factory, channel_factory, r: dict, req: pb.IngestRequest):
    b = await bridge_factory({"r": r})
    return await channel_factory(b).IngestBatch(req)


async def test_default_is_a_zstd_json_array_to_the_edge_endpoint(axiom, bridge_factory, channel_factory):
    ack = await send(bridge_factory, channel_factory, route(axiom), sample.columns_request("r", 1, range(3)))
    assert ack.accepted == 3 and ack.upstream["ingested"] == "3" and ack.upstream["failed"] == "0"
    (cap,) = axiom.requests
    assert (cap.path, cap.query) == ("/v1/ingest/events", [])
    h = cap.headers
    assert (h["Authorization"], h["Content-Type"], h["Content-Encoding"]) == (
        f"Bearer {TOKEN}", "application/json", "zstd")
    assert "X-Axiom-Event-Labels" not in h
    assert orjson.loads(cap.body) == [sample.expected_json(i) for i in range(3)]


async def test_ndjson_gzip_legacy_path_and_query_options(axiom, bridge_factory, channel_factory):
    r = route(axiom, format="ndjson", compression="gzip", legacy=True, timestamp_field="ts",
              timestamp_format="2006-01-02T15:04:05Z07:00", labels={"env": "prod", "team": "web"})
    r["target"] = "a/b"
    ack = await send(bridge_factory, channel_factory, r, sample.rows_request("r", 1, range(2)))
    assert ack.accepted == 2
    (cap,) = axiom.requests
    assert cap.raw_path.startswith("/v1/datasets/a%2Fb/ingest?")
    assert cap.query == [("timestamp-field", "ts"), ("timestamp-format", "2006-01-02T15:04:05Z07:00")]
    assert cap.headers["Content-Type"] == "application/x-ndjson" and cap.headers["Content-Encoding"] == "gzip"
    assert json.loads(cap.headers["X-Axiom-Event-Labels"]) == {"env": "prod", "team": "web"}
    assert [orjson.loads(x) for x in cap.body.splitlines()] == [sample.expected_json(i) for i in range(2)]
    assert axiom.stored[0]["env"] == "prod" and axiom.stored[0]["_time"] == sample.expected_json(0)["ts"]


async def test_csv_with_a_delimiter_and_no_compression(axiom, bridge_factory, channel_factory):
    r = route(axiom, format="csv", csv_delimiter=";", compression="none")
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"a": 1, "b": "x;y"}', b'{"a": 2, "b": null}'])
    await send(bridge_factory, channel_factory, r, req)
    (cap,) = axiom.requests
    assert cap.query == [("csv-delimiter", ";")]
    assert cap.headers["Content-Type"] == "text/csv" and "Content-Encoding" not in cap.headers
    assert cap.body == b'a;b\n1;"x;y"\n2;\n'
    assert axiom.rows == [{"a": "1", "b": "x;y"}, {"a": "2", "b": ""}]


async def test_the_requests_fit_the_edge_openapi(axiom, bridge_factory, channel_factory):
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is not here (CI has shared/ beside the repository)")
    spec = json.loads(SPEC.read_text())
    (server,) = spec["servers"]
    (template,) = spec["paths"]
    op = spec["paths"][template]["post"]
    params = {p["name"]: p["in"] for p in op["parameters"]}
    route_opts = {"timestamp_field": "ts", "timestamp_format": "2006-01-02", "csv_delimiter": ";",
                  "labels": {"a": "b"}}
    b = await bridge_factory({f"r{i}": {**route(axiom, format=fmt, **route_opts)} for i, fmt in
                              enumerate(("json", "ndjson", "csv"))})
    stub = channel_factory(b)
    for i in range(3):
        await stub.IngestBatch(sample.json_request(f"r{i}", 1, range(2)))
    base = server["url"].split("}", 1)[1]  # "/v1/"
    pattern = "^" + base.rstrip("/") + template.replace("{dataset-id}", "[^/]+") + "$"
    for cap in axiom.requests:
        assert re.match(pattern, cap.path), (pattern, cap.path)
        assert {k for k, _ in cap.query} <= {n for n, where in params.items() if where == "query"}
        sent = {h for h in cap.headers if h.lower().startswith("x-axiom")}
        assert sent <= {n for n, where in params.items() if where == "header"}
        assert cap.headers["Content-Type"] in op["requestBody"]["content"]
        assert cap.headers["Content-Encoding"] in ("gzip", "zstd")


async def test_failures_in_a_200_are_counted_and_named_only_where_timestamps_match(
        axiom, bridge_factory, channel_factory):
    axiom.failures_next([(1, "field too long"), (3, "bad type")])
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([
        b'{"_time": "2026-01-01T00:00:00Z", "n": 0}', b'{"_time": "2026-01-01T00:00:01Z", "n": 1}',
        b'{"_time": "2026-01-01T00:00:02Z", "n": 2}', b'{"_time": "2026-01-01T00:00:02Z", "n": 3}',
    ])
    ack = await send(bridge_factory, channel_factory, route(axiom), req)
    assert ack.status.code == 0
    assert (ack.accepted, ack.rejected) == (2, 2)
    assert [(e.index, e.column, e.reason) for e in ack.errors] == [(1, "_time", "Axiom: field too long")]
    assert ack.upstream["failed"] == "2" and ack.upstream["ingested"] == "2"
    assert json.loads(ack.upstream["failures"]) == ["field too long", "bad type"]
    assert ack.upstream["unnamed_rejected"] == "1"


async def test_a_field_over_one_megabyte_fails_inside_a_200(axiom, bridge_factory, channel_factory):
    req = pb.IngestRequest(route="r")
    req.json.objects.extend([b'{"_time": "2026-01-01T00:00:00Z", "big": "' + b"x" * 1_000_001 + b'"}',
                             b'{"_time": "2026-01-01T00:00:05Z", "ok": 1}'])
    b = await bridge_factory({"r": route(axiom)}, limits={"max_message_bytes": "4MiB"})
    ack = await channel_factory(b).IngestBatch(req)
    assert (ack.accepted, ack.rejected) == (1, 1) and ack.errors[0].index == 0
    assert axiom.rows == [{"_time": "2026-01-01T00:00:05Z", "ok": 1}]


async def test_429_waits_for_the_rate_limit_reset(axiom, bridge_factory, channel_factory):
    reset = str(int(time.time()) + 1)
    axiom.fail_next(429, {"message": "rate limit exceeded"}, {"X-RateLimit-Reset": reset,
                                                              "X-RateLimit-Remaining": "0"})
    r = route(axiom)
    r["delivery"] = fast_delivery(max_elapsed="5s")
    t0 = time.monotonic()
    ack = await send(bridge_factory, channel_factory, r, sample.json_request("r", 1, range(2)))
    assert ack.accepted == 2 and len(axiom.requests) == 2
    assert time.monotonic() - t0 >= float(reset) - time.time() - 1.05


async def test_429_past_the_budget_is_resource_exhausted_with_retry_info(axiom, bridge_factory, channel_factory):
    axiom.fail_next(429, {"message": "rate limit exceeded"}, {"X-RateLimit-Reset": str(int(time.time()) + 60)})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await send(bridge_factory, channel_factory, route(axiom), sample.json_request("r", 1, range(1)))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = details(status_of(ei.value))["RetryInfo"][0]
    assert 55 <= retry.retry_delay.seconds <= 60
    assert len(axiom.requests) == 1, "no retry inside a 500 ms budget when Axiom says a minute"


async def test_430_quota_is_resource_exhausted_with_retry_info_and_not_retried(axiom, bridge_factory, channel_factory):
    axiom.fail_next(430, {"message": "ingest limit exceeded"}, {"X-IngestLimit-Reset": str(int(time.time()) + 3600)})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await send(bridge_factory, channel_factory, route(axiom), sample.json_request("r", 1, range(1)))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    st = status_of(ei.value)
    assert error_info(st).reason == "INGEST_QUOTA_EXCEEDED" and error_info(st).metadata["http_status"] == "430"
    assert details(st)["RetryInfo"][0].retry_delay.seconds >= 3500
    assert len(axiom.requests) == 1


@pytest.mark.parametrize(("status", "body", "code", "retried"), [
    (401, {"message": "invalid token"}, "UNAUTHENTICATED", False),
    (403, {"error": "forbidden"}, "PERMISSION_DENIED", False),
    (404, {"message": "dataset not found"}, "NOT_FOUND", False),
    (400, b"not json at all", "INVALID_ARGUMENT", False),
    (503, {"message": "unavailable"}, "UNAVAILABLE", True),
])
async def test_error_answers(axiom, bridge_factory, channel_factory, status, body, code, retried):
    axiom.fail_next(status, body, times=1000)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await send(bridge_factory, channel_factory, route(axiom), sample.json_request("r", 1, range(1)))
    assert ei.value.code() == getattr(grpc.StatusCode, code)
    text = body.decode() if isinstance(body, bytes) else next(iter(body.values()))
    assert text in ei.value.details()
    assert (len(axiom.requests) > 1) == retried


async def test_personal_tokens_are_refused_on_the_edge_endpoint(axiom, bridge_factory, channel_factory):
    r = route(axiom)
    r["auth"] = {"token": "xapt-personal"}
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await send(bridge_factory, channel_factory, r, sample.json_request("r", 1, range(1)))
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_deletes_are_rejected_by_index(axiom, bridge_factory, channel_factory):
    req = sample.json_request("r", 1, range(3))
    req.json.ops.extend([pb.OP_INSERT, pb.OP_DELETE, pb.OP_INSERT])
    ack = await send(bridge_factory, channel_factory, route(axiom), req)
    assert (ack.accepted, [e.index for e in ack.errors]) == (2, [1])


def test_more_than_ten_thousand_rows_per_request_is_a_config_error():
    from bridge.config import parse_config
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="at most 10000 rows"):
        parse_config("routes: {r: {dialect: axiom, url: 'http://127.0.0.1:1', target: d, auth: {token: t},"
                     " batch: {max_rows: 20000}}}", env={})
