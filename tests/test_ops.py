"""What an operator sees: /metrics, /healthz, /readyz, JSON logs, and no secret anywhere."""

from __future__ import annotations

import json
import logging

import aiohttp
import grpc
import pytest
import yaml

from bridge import transcode
from bridge.config import parse_config
from bridge.dev import sample
from bridge.ingest.server import Bridge
from bridge.ops import logs
from tests.conftest import fast_delivery
from tests.grpc_helpers import status_of

SECRET = "tok-3f9a7c1e-very-secret"


@pytest.fixture
async def ops_bridge(sink):
    doc = {"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "routes": {
        "ok": {"dialect": "http", "url": sink.url + "/in", "auth": {"bearer": SECRET}, "batch": {"linger": "0s"}},
        "down": {"dialect": "http", "url": "http://127.0.0.1:9/in", "auth": {"headers": {"X-Key": SECRET}},
                 "batch": {"linger": "0s"}, "delivery": fast_delivery(max_elapsed="200ms")},
    }}
    b = Bridge(parse_config(yaml.safe_dump(doc, sort_keys=False), env={}))
    await b.start()
    yield b
    await b.stop(grace=1.0)


def sample_value(text: str, name: str, labels: dict[str, str]) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{want}}}")


async def test_metrics_count_every_stage_and_never_show_secrets(ops_bridge, channel_factory, caplog):
    caplog.set_level(logging.DEBUG)
    stub = channel_factory(ops_bridge)
    req = sample.json_request("ok", 1, range(10))
    req.json.objects[3] = b"not json"
    await stub.IngestBatch(req)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(sample.rows_request("down", 2, range(5)))
    error_text = ei.value.details() + repr(ei.value.trailing_metadata())
    assert SECRET not in error_text and SECRET.encode() not in status_of(ei.value).SerializeToString()
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{ops_bridge.http_port}/metrics") as r:
            assert r.status == 200
            text = await r.text()
        async with s.get(f"http://127.0.0.1:{ops_bridge.http_port}/healthz") as r:
            assert r.status == 200
        async with s.get(f"http://127.0.0.1:{ops_bridge.http_port}/readyz") as r:
            ready = await r.json()
            assert r.status == 200 and sorted(ready["routes"]) == ["down", "ok"]
            assert ready["routes"]["down"]["last_failure"] == "UPSTREAM_UNREACHABLE"
            # An http NDJSON route takes the native transcoder wherever the process does.
            used = transcode.active()
            assert ready["transcoder"] == used
            assert ready["routes"]["ok"] == {"full": False, "buffered_bytes": 0, "last_failure": None,
                                             "transcoder": used, "targets": {"http": {
                                                 "required": True, "full": False, "buffered_bytes": 0,
                                                 "last_failure": None, "transcoder": used}}}
    assert sample_value(text, "ingest_bridge_received_rows_total", {"route": "ok"}) == 10
    assert sample_value(text, "ingest_bridge_received_batches_total", {"route": "ok"}) == 1
    assert sample_value(text, "ingest_bridge_received_bytes_total", {"route": "ok"}) > 0
    assert sample_value(text, "ingest_bridge_rejected_rows_total",
                        {"route": "ok", "target": "http", "stage": "bridge"}) == 1
    assert sample_value(text, "ingest_bridge_sent_rows_total", {"route": "ok", "target": "http", "outcome": "ok"}) == 9
    assert sample_value(text, "ingest_bridge_sent_batches_total", {"route": "down", "outcome": "failed"}) == 1
    assert sample_value(text, "ingest_bridge_retries_total", {"route": "down", "reason": "UPSTREAM_UNREACHABLE"}) >= 1
    assert sample_value(text, "ingest_bridge_upstream_request_duration_seconds_count",
                        {"route": "ok", "status_class": "2xx"}) == 1
    assert sample_value(text, "ingest_bridge_buffered_bytes", {"route": "ok"}) == 0
    assert sample_value(text, "ingest_bridge_buffered_bytes_limit", {"route": "ok"}) == 32 * 1024 * 1024
    assert SECRET not in text
    assert any("route=down" in r.getMessage() and "batch failed" in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_json_log_lines_and_redaction(capsys):
    redact = logs.setup("info", "json")
    redact.secrets = [SECRET]
    try:
        logging.getLogger("bridge.test").warning("route=%s leaked %s", "r", SECRET)
    finally:
        logging.getLogger().handlers.clear()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["level"] == "warning" and record["logger"] == "bridge.test"
    assert record["msg"] == "route=r leaked ***"
    assert record["ts"].endswith("Z")
