"""Axiom: each option's exact request, and every documented answer (200 with failures, 429, 430, errors).

Through a real bridge over gRPC against the Axiom emulator; ``build``/``classify``
directly where that is clearer; the requests checked against Axiom's OpenAPI files.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import aiohttp
import grpc
import orjson
import pytest
import yaml

from bridge.config import parse_config
from bridge.dev import sample
from bridge.dev.emulators.axiom import AxiomEmulator, _month_end
from bridge.dialects.axiom import AxiomDialect, instant_ns
from bridge.model.errors import ConfigError
from bridge.model.rows import Rows
from bridge.proto import pb
from bridge.send.http import HttpResponse
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs"
EDGE_SPEC, LEGACY_SPEC = SPECS / "axiom-v1-edge-ingest.openapi.json", SPECS / "axiom-v1.openapi.json"
TOKEN = "xaat-test-token"
T0 = "2026-01-01T00:00:00Z"


@pytest.fixture
async def axiom():
    e = AxiomEmulator(datasets=("events", "a/b c?"), tokens=(TOKEN, "xapt-personal"), org_ids=("org-1",))
    await e.start()
    yield e
    await e.stop()


def route(e, target: str = "events", **options) -> dict:
    return {"dialect": "axiom", "url": e.url, "target": target, "auth": {"token": TOKEN},
            "batch": {"linger": "0s"}, "options": options, "delivery": fast_delivery(max_elapsed="500ms")}


async def send(bridge_factory, channel_factory, r: dict, req: pb.IngestRequest):
    b = await bridge_factory({"r": r})
    return await channel_factory(b).IngestBatch(req)


async def refused(bridge_factory, channel_factory, r: dict, req: pb.IngestRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await send(bridge_factory, channel_factory, r, req)
    return ei.value


def objects(*events: dict) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r")
    req.json.objects.extend(orjson.dumps(e) for e in events)
    return req


def dialect(**options) -> AxiomDialect:
    doc = {"routes": {"r": {"dialect": "axiom", "url": "http://127.0.0.1:1", "target": "events",
                            "auth": {"token": TOKEN}, "options": options}}}
    return AxiomDialect(parse_config(yaml.safe_dump(doc), env={}).routes["r"])


# -- requests, option by option ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["columns", "rows", "json"])
async def test_default_is_a_zstd_json_array_to_the_edge_endpoint(axiom, bridge_factory, channel_factory, shape):
    req = sample.SHAPES[shape]("r", 1, range(3))
    ack = await send(bridge_factory, channel_factory, route(axiom), req)
    assert ack.accepted == 3
    assert (ack.upstream["ingested"], ack.upstream["failed"]) == ("3", "0")
    assert int(ack.upstream["processed_bytes"]) > 0 and "failures" not in ack.upstream
    (cap,) = axiom.requests
    assert (cap.method, cap.raw_path, cap.query) == ("POST", "/v1/ingest/events", [])
    h = cap.headers
    assert (h["Authorization"], h["Content-Type"], h["Content-Encoding"]) == (
        f"Bearer {TOKEN}", "application/json", "zstd")
    assert not {"X-Axiom-Event-Labels", "X-Axiom-Org-Id", "X-Axiom-CSV-Fields"} & set(h)
    assert orjson.loads(cap.body) == [sample.expected_json(i) for i in range(3)]
    assert axiom.rows == [sample.expected_json(i) for i in range(3)]
    # No _time in the rows: Axiom stamps them with the receive time.
    assert axiom.time_fields == ["_time"] and all(s["_time"].startswith("20") for s in axiom.stored)


async def test_the_dataset_is_one_escaped_path_segment_on_both_endpoints(axiom, bridge_factory, channel_factory):
    b = await bridge_factory({"edge": route(axiom, target="a/b c?"),
                              "legacy": route(axiom, target="a/b c?", legacy=True)})
    stub = channel_factory(b)
    for name in ("edge", "legacy"):
        assert (await stub.IngestBatch(sample.json_request(name, 1, range(1)))).accepted == 1
    assert sorted(c.raw_path for c in axiom.requests) == ["/v1/datasets/a%2Fb%20c%3F/ingest",
                                                          "/v1/ingest/a%2Fb%20c%3F"]


async def test_ndjson_gzip_legacy_with_org_id_query_options_and_labels(axiom, bridge_factory, channel_factory):
    r = route(axiom, format="ndjson", compression="gzip", legacy=True, org_id="org-1", timestamp_field="ts",
              timestamp_format="2006-01-02T15:04:05Z07:00", labels={"env": "prod", "team": "web"})
    r["auth"] = {"token": "xapt-personal"}
    ack = await send(bridge_factory, channel_factory, r, sample.rows_request("r", 1, range(2)))
    assert ack.accepted == 2
    (cap,) = axiom.requests
    assert cap.path == "/v1/datasets/events/ingest"
    assert cap.query == [("timestamp-field", "ts"), ("timestamp-format", "2006-01-02T15:04:05Z07:00")]
    h = cap.headers
    assert (h["Content-Type"], h["Content-Encoding"], h["X-Axiom-Org-Id"]) == ("application/x-ndjson", "gzip", "org-1")
    assert h["Authorization"] == "Bearer xapt-personal"
    assert json.loads(h["X-Axiom-Event-Labels"]) == {"env": "prod", "team": "web"}
    assert gzip.decompress(cap.raw) == cap.body
    assert cap.body == b"".join(orjson.dumps(sample.expected_json(i)) + b"\n" for i in range(2))
    # The rows stay as sent; what Axiom stores has the labels and the time from `ts` (Go layout applied).
    assert axiom.rows == [sample.expected_json(i) for i in range(2)]
    assert axiom.time_fields == ["ts"]
    assert [(s["env"], s["team"], s["_time"]) for s in axiom.stored] == [
        ("prod", "web", sample.expected_json(i)["ts"]) for i in range(2)]


async def test_csv_with_a_delimiter_and_no_compression(axiom, bridge_factory, channel_factory):
    r = route(axiom, format="csv", csv_delimiter=";", compression="none")
    await send(bridge_factory, channel_factory, r, objects({"a": 1, "b": "x;y"}, {"a": 2, "b": None}))
    (cap,) = axiom.requests
    assert cap.query == [("csv-delimiter", ";")]
    assert cap.headers["Content-Type"] == "text/csv"
    assert "Content-Encoding" not in cap.headers, "no Content-Encoding at all when not compressing"
    assert cap.raw == cap.body == b'"a";"b"\n1;"x;y"\n2;\n'
    assert axiom.rows == [{"a": "1", "b": "x;y"}, {"a": "2", "b": ""}]


async def test_csv_default_delimiter_sends_no_query(axiom, bridge_factory, channel_factory):
    await send(bridge_factory, channel_factory, route(axiom, format="csv"), sample.columns_request("r", 1, range(2)))
    (cap,) = axiom.requests
    assert cap.query == [] and cap.body.split(b"\n")[0] == b'"id","user","price","ok","ts","category","count","message"'
    assert [r["user"] for r in axiom.rows] == ["user-0000", "user-0001"]


async def test_more_rows_than_ten_thousand_go_in_several_requests(axiom, bridge_factory, channel_factory):
    ack = await send(bridge_factory, channel_factory, route(axiom, compression="none"),
                     sample.columns_request("r", 1, range(10_050)))
    assert ack.accepted == 10_050
    assert sorted(len(orjson.loads(c.body)) for c in axiom.requests) == [50, 10_000]


# -- the vendor's OpenAPI files ---------------------------------------------------------------------


def _spec(path: Path) -> dict:
    if not path.exists():
        pytest.skip(f"{path} is not here (CI has shared/ beside the repository)")
    return json.loads(path.read_text())


@pytest.mark.parametrize(("spec_file", "legacy"), [(EDGE_SPEC, False), (LEGACY_SPEC, True)])
async def test_the_requests_and_answers_fit_the_openapi(axiom, bridge_factory, channel_factory, spec_file, legacy):
    validator = pytest.importorskip("openapi_schema_validator")
    spec = _spec(spec_file)
    (server,) = spec["servers"]
    base = "/" + server["url"].split("://", 1)[1].split("/", 1)[1].rstrip("/")  # "/v1"
    (template,) = [p for p in spec["paths"] if p.endswith("/ingest") or p.startswith("/ingest/")]
    op = spec["paths"][template]["post"]
    params = {(p["in"], p["name"]): p for p in op["parameters"]}
    opts = {"timestamp_field": "ts", "timestamp_format": "2006-01-02", "csv_delimiter": ";",
            "labels": {"a": "b"}, "legacy": legacy}
    fmts = ("json", "ndjson", "csv")
    b = await bridge_factory({f"r{i}": route(axiom, target="a/b c?", format=f, **opts) for i, f in enumerate(fmts)})
    stub = channel_factory(b)
    for i in range(3):
        assert (await stub.IngestBatch(sample.json_request(f"r{i}", 1, range(2)))).accepted == 2
    pattern = "^" + base + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
    (path_param,) = [n for (where, n) in params if where == "path"]
    assert template.count("{") == 1 and f"{{{path_param}}}" in template
    for cap in axiom.requests:
        assert re.match(pattern, cap.raw_path.split("?")[0]), (pattern, cap.raw_path)
        for name, value in cap.query:
            validator.validate(value, params["query", name]["schema"])
        for name in (h for h in cap.headers if h.lower().startswith("x-axiom")):
            validator.validate(cap.headers[name], params["header", name]["schema"])
        assert cap.headers["Content-Type"] in op["requestBody"]["content"]
        assert cap.headers["Content-Encoding"] == "zstd"
    # The emulator's 200 is the documented IngestStatus.
    status_schema = {**spec["components"]["schemas"]["IngestStatus"], "components": spec["components"]}
    async with aiohttp.ClientSession() as s, s.post(
            f"{axiom.url}/v1/ingest/events", data=b'[{"a": 1}]',
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}) as resp:
        validator.validate(await resp.json(), status_schema, cls=validator.OAS30Validator)


# -- a 200 that carries failures --------------------------------------------------------------------


async def test_failures_in_a_200_are_counted_and_named_only_where_timestamps_match(
        axiom, bridge_factory, channel_factory):
    axiom.failures_next([(1, "field too long"), (3, "bad type")])
    req = objects({"_time": T0, "n": 0}, {"_time": "2026-01-01T00:00:01.000Z", "n": 1},
                  {"_time": "2026-01-01T00:00:02Z", "n": 2}, {"_time": "2026-01-01T00:00:02Z", "n": 3})
    ack = await send(bridge_factory, channel_factory, route(axiom), req)
    assert ack.status.code == 0
    assert (ack.accepted, ack.rejected) == (2, 2)
    # Row 1's timestamp is unique (Axiom writes it as ...:01Z); rows 2 and 3 share one: not named.
    assert [(e.index, e.column, e.reason) for e in ack.errors] == [(1, "_time", "Axiom: field too long")]
    assert (ack.upstream["ingested"], ack.upstream["failed"], ack.upstream["unnamed_rejected"]) == ("2", "2", "1")
    assert json.loads(ack.upstream["failures"]) == [
        {"timestamp": "2026-01-01T00:00:01Z", "error": "field too long"},
        {"timestamp": "2026-01-01T00:00:02Z", "error": "bad type"}]
    assert [r["n"] for r in axiom.rows] == [0, 2]


async def test_failures_match_a_timestamp_column_named_by_timestamp_field(axiom, bridge_factory, channel_factory):
    axiom.failures_next([(2, "type conflict")])
    ack = await send(bridge_factory, channel_factory, route(axiom, timestamp_field="ts"),
                     sample.columns_request("r", 1, range(4)))
    assert (ack.accepted, [(e.index, e.column) for e in ack.errors]) == (3, [(2, "ts")])
    assert ack.errors[0].reason == "Axiom: type conflict"


async def test_a_field_over_one_megabyte_fails_inside_a_200(axiom, bridge_factory, channel_factory):
    req = objects({"_time": T0, "big": "x" * 1_000_001}, {"_time": "2026-01-01T00:00:05Z", "ok": 1})
    b = await bridge_factory({"r": route(axiom)}, limits={"max_message_bytes": "4MiB"})
    ack = await channel_factory(b).IngestBatch(req)
    assert (ack.accepted, ack.rejected) == (1, 1) and ack.errors[0].index == 0
    assert "larger than 1MB" in ack.errors[0].reason
    assert axiom.rows == [{"_time": "2026-01-01T00:00:05Z", "ok": 1}]


def test_classify_counts_what_axiom_did_not_take_even_without_failures():
    d = dialect()
    rows = Rows(None, [b'{"a":1}'] * 5)
    out = d.classify(HttpResponse(200, {}, b'{"ingested":3,"failed":2,"failures":[]}'), rows)
    assert (out.code, out.accepted, out.row_errors, out.upstream["failed"]) == ("OK", 3, [], "2")
    # A 200 whose counts cannot be read says nothing about what Axiom took: never a success.
    out = d.classify(HttpResponse(200, {}, b"not json"), rows)
    assert (out.code, out.reason, out.retryable) == ("UNKNOWN", "UPSTREAM_ANSWER_UNREADABLE", False)


def test_classify_matches_epoch_timestamps_by_the_routes_timestamps_unit():
    d = dialect(timestamps="epoch_ms")
    rows = Rows(("_time", "n"), [(1767225600000, 0), (1767225600001, 1)])
    body = b'{"ingested":1,"failed":2,"failures":[{"timestamp":"2026-01-01T00:00:00.001Z","error":"e"},' \
           b'{"timestamp":"2026-01-01T00:00:00.001Z","error":"again"}]}'
    out = d.classify(HttpResponse(200, {}, body), rows)
    # Two failures name the same single row: it is named once.
    assert [(e.index, e.reason) for e in out.row_errors] == [(1, "Axiom: e")]
    assert out.accepted == 1
    assert instant_ns("2026-01-01T01:00:00.5+01:00") == instant_ns("2026-01-01T00:00:00.500000000Z")


# -- error answers ---------------------------------------------------------------------------------


async def test_429_waits_for_the_emulators_rate_limit_reset(bridge_factory, channel_factory):
    e = AxiomEmulator(tokens=(TOKEN,), rate_limit=1, rate_window=1.0)
    await e.start()
    try:
        r = route(e)
        r["delivery"] = fast_delivery(max_elapsed="5s")
        b = await bridge_factory({"r": r})
        stub = channel_factory(b)
        assert (await stub.IngestBatch(sample.json_request("r", 1, range(2)))).accepted == 2
        ack = await stub.IngestBatch(sample.json_request("r", 2, range(2, 4)))
        assert ack.accepted == 2 and len(e.requests) >= 3
        assert e.rows == [sample.expected_json(i) for i in range(4)]
    finally:
        await e.stop()


async def test_429_past_the_budget_is_resource_exhausted_with_retry_info(axiom, bridge_factory, channel_factory):
    axiom.fail_next(429, {"message": "rate limit exceeded"},
                    headers={"X-RateLimit-Reset": str(int(time.time()) + 60), "X-RateLimit-Remaining": "0"})
    err = await refused(bridge_factory, channel_factory, route(axiom), sample.json_request("r", 1, range(1)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate limit exceeded" in err.details()
    st = status_of(err)
    assert (error_info(st).reason, error_info(st).metadata["http_status"]) == ("UPSTREAM_RATE_LIMITED", "429")
    assert 55 <= details(st)["RetryInfo"][0].retry_delay.seconds <= 60
    assert len(axiom.requests) == 1, "no retry inside a 500 ms budget when Axiom says a minute"


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured_without_a_reset_header(axiom, bridge_factory, channel_factory, status):
    axiom.fail_next(status, {"message": "slow down"}, headers={"Retry-After": "1"})
    r = route(axiom)
    r["delivery"] = fast_delivery(max_elapsed="5s")
    t0 = time.monotonic()
    ack = await send(bridge_factory, channel_factory, r, sample.json_request("r", 1, range(1)))
    assert ack.accepted == 1 and len(axiom.requests) == 2
    assert time.monotonic() - t0 >= 0.95


async def test_430_ingest_quota_is_resource_exhausted_with_retry_info_and_not_retried(bridge_factory, channel_factory):
    e = AxiomEmulator(tokens=(TOKEN,), ingest_limit=1500)
    await e.start()
    try:
        b = await bridge_factory({"r": route(e, compression="none")})
        stub = channel_factory(b)
        assert (await stub.IngestBatch(sample.json_request("r", 1, range(5)))).accepted == 5
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await stub.IngestBatch(sample.json_request("r", 2, range(5, 10)))
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        st = status_of(ei.value)
        info = error_info(st)
        assert (info.reason, info.metadata["http_status"]) == ("INGEST_QUOTA_EXCEEDED", "430")
        # The quota resets at the start of next month: that is the delay the caller is told.
        until_reset = _month_end(time.time()) - time.time()
        assert abs(details(st)["RetryInfo"][0].retry_delay.seconds - until_reset) < 5
        assert len(e.requests) == 2 and len(e.rows) == 5
    finally:
        await e.stop()


def test_430_reads_x_ingestlimit_reset_else_retry_after():
    d = dialect()
    rows = Rows(None, [b"{}"])
    reset = str(int(time.time()) + 3600)
    out = d.classify(HttpResponse(430, {"x-ingestlimit-reset": reset}, b'{"message":"ingest limit exceeded"}'), rows)
    assert (out.code, out.retryable, out.reason) == ("RESOURCE_EXHAUSTED", False, "INGEST_QUOTA_EXCEEDED")
    assert 3590 <= out.retry_after <= 3600 and "ingest limit exceeded" in out.message
    out = d.classify(HttpResponse(430, {"retry-after": "120"}, b""), rows)
    assert out.retry_after == 120


async def test_an_unknown_dataset_is_not_found_with_resource_info(axiom, bridge_factory, channel_factory):
    err = await refused(bridge_factory, channel_factory, route(axiom, target="nope"),
                        sample.json_request("r", 1, range(1)))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "dataset not found" in err.details()
    (res,) = details(status_of(err))["ResourceInfo"]
    assert (res.resource_type, res.resource_name) == ("dataset", "nope")
    assert len(axiom.requests) == 1


async def test_a_wrong_token_is_unauthenticated(axiom, bridge_factory, channel_factory):
    r = route(axiom)
    r["auth"] = {"token": "xaat-wrong"}
    err = await refused(bridge_factory, channel_factory, r, sample.json_request("r", 1, range(1)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "xaat-wrong" not in err.details()


# -- config and ops --------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "problem"), [
    ({"batch": {"max_rows": 20000}}, "at most 10000 rows"),
    ({"options": {"csv_delimiter": ";;"}}, "csv_delimiter: must be one character"),
    ({"auth": {"token": "xapt-p"}}, "auth.token: a personal token"),
    ({"auth": {"token": "xapt-p"}, "options": {"legacy": True}}, "options.org_id"),
    ({"options": {"compression": "br"}}, "compression"),
    ({"options": {"format": "xml"}}, "format"),
])
def test_config_problems(extra, problem):
    r = {"dialect": "axiom", "url": "http://127.0.0.1:1", "target": "d", "auth": {"token": "xaat-t"}, **extra}
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_config(yaml.safe_dump({"routes": {"r": r}}), env={})


async def test_deletes_and_upserts_are_rejected_by_index(axiom, bridge_factory, channel_factory):
    req = sample.json_request("r", 1, range(4))
    req.json.ops.extend([pb.OP_INSERT, pb.OP_DELETE, pb.OP_INSERT, pb.OP_UPSERT])
    ack = await send(bridge_factory, channel_factory, route(axiom), req)
    assert (ack.accepted, [e.index for e in ack.errors]) == (2, [1, 3])
    assert "not supported" in ack.errors[0].reason
    assert axiom.rows == [sample.expected_json(0), sample.expected_json(2)]


# -- the emulator's own rules ----------------------------------------------------------------------


async def test_the_emulator_enforces_axioms_rules(axiom):
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def post(path: str, body: bytes, **headers: str) -> tuple[int, dict]:
        async with aiohttp.ClientSession() as s, s.post(axiom.url + path, data=body,
                                                        headers={**auth, **headers}) as resp:
            return resp.status, await resp.json(content_type=None)

    ndjson = "application/x-ndjson"
    # axiom-py's ContentEncoding.IDENTITY is the literal "1": a strict server refuses it.
    assert (await post("/v1/ingest/events", b'{"a":1}', **{"Content-Type": ndjson, "Content-Encoding": "1"}))[0] == 415
    assert (await post("/v1/ingest/events", b"{}", **{"Content-Type": "text/plain"}))[0] == 415
    assert (await post("/v1/datasets/events/ingest", b"{}", **{"Content-Type": "application/nd-json"}))[0] == 415
    status, body = await post("/v1/ingest/events", b"[" + b",".join([b"{}"] * 10_001) + b"]",
                              **{"Content-Type": "application/json"})
    assert status == 400 and "10000" in body["message"]
    assert (await post("/v1/ingest/events", b"[1, 2]", **{"Content-Type": "application/json"}))[0] == 400
    auth["Authorization"] = "Bearer xapt-personal"
    assert (await post("/v1/ingest/events", b"{}", **{"Content-Type": ndjson}))[0] == 403
    assert (await post("/v1/datasets/events/ingest", b"{}", **{"Content-Type": ndjson}))[0] == 403
    status, body = await post("/v1/datasets/events/ingest", b'{"a":1}\n{"a":2}',
                              **{"Content-Type": "application/json", "X-Axiom-Org-Id": "org-1"})
    assert (status, body["ingested"]) == (200, 2), "application/json takes NDJSON too"
    auth["Authorization"] = f"Bearer {TOKEN}"
    status, body = await post("/v1/ingest/events?csv-delimiter=%7C", b"1|x\n2|y",
                              **{"Content-Type": "text/csv", "X-Axiom-CSV-Fields": "n,s"})
    assert (status, body["ingested"]) == (200, 2)
    assert axiom.rows[-2:] == [{"n": "1", "s": "x"}, {"n": "2", "s": "y"}]


async def test_counts_add_up_when_one_batch_goes_in_several_requests(axiom, bridge_factory, channel_factory):
    r = route(axiom, compression="none")
    r["batch"] = {"linger": "0s", "max_rows": 40}
    ack = await send(bridge_factory, channel_factory, r, sample.columns_request("r", 1, range(100)))
    assert len(axiom.requests) == 3
    assert (ack.accepted, ack.upstream["ingested"], ack.upstream["failed"]) == (100, "100", "0")
