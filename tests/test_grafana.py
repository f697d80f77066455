"""deploy/grafana: the dashboard and the alert rules use only metrics (and labels) a live bridge serves on /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import parse_config
from bridge.dev import sample
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.ingest.server import Bridge
from bridge.proto import pb, pb_grpc
from tests.conftest import fast_delivery
from tests.waiting import wait_until

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
METRIC = re.compile(r"\b(ingest_bridge_\w+)\b(?:\{([^}]*)\})?")
BY = re.compile(r"\bby \(([^)]*)\)")
# Counted only when a spool's disk fails: declared (HELP/TYPE) from the start, with no sample until then.
ON_FAULT_ONLY = {"ingest_bridge_spool_errors_total"}
# Labels Prometheus adds when it scrapes.
SCRAPE_LABELS = {"instance", "job"}


def dashboard_exprs() -> list[str]:
    dash = json.loads((GRAFANA / "ingest-bridge.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((GRAFANA / "alerts.yaml").read_text())
    out = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"].startswith("IngestBridge") and rule["labels"]["severity"] in ("warning", "critical")
            out.append(rule["expr"])
    return out


def test_the_dashboard_and_the_rules_cover_what_operators_watch():
    dash = " ".join(dashboard_exprs())
    for metric in ("received_rows_total", "sent_rows_total", "rejected_rows_total",
                   "upstream_request_duration_seconds_bucket", "buffered_bytes", "spool_bytes", "retries_total",
                   "concurrency_limit", "dead_letter_rows", "dropped_rows_total"):
        assert f"ingest_bridge_{metric}" in dash, metric
    alerts = {r["alert"] for g in yaml.safe_load((GRAFANA / "alerts.yaml").read_text())["groups"]
              for r in g["rules"]}
    assert {"IngestBridgeTargetFailing", "IngestBridgeBufferNearFull", "IngestBridgeSpoolFilling",
            "IngestBridgeDeadLettersGrowing"} <= alerts
    ids = [p["id"] for p in json.loads((GRAFANA / "ingest-bridge.json").read_text())["panels"]]
    assert len(ids) == len(set(ids))


async def test_every_metric_they_use_is_served_by_a_live_bridge(tmp_path):
    target = FaultyTarget()
    await target.start()
    doc = {"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "routes": {
        "plain": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
                  "columns": {"id": "int", "user": "string"}, "delivery": fast_delivery()},
        "spooled": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
                    "delivery": {**fast_delivery(), "concurrency": "adaptive"},
                    "spool": {"dir": str(tmp_path)}},
        # Two targets, the optional one away: its rows are dropped and counted.
        "fanned": {"targets": [
            {"name": "main", "dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"},
             "delivery": fast_delivery()},
            {"name": "spare", "required": False, "dialect": "http", "url": "http://127.0.0.1:9/in",
             "batch": {"linger": "0s"}, "delivery": fast_delivery(max_elapsed="100ms")}]},
    }}
    bridge = Bridge(parse_config(yaml.safe_dump(doc), env={}))
    await bridge.start()
    try:
        import grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}") as ch:
            stub = pb_grpc.IngestServiceStub(ch)
            # A retry (503, then taken), a row the bridge rejects, rows the target refuses for good (400).
            target.script({"status": 503})
            req = pb.IngestRequest(route="plain", sequence=1)
            req.json.objects.extend([orjson.dumps({"id": 1, "user": "a"}), orjson.dumps({"id": "x", "user": "b"})])
            ack = await stub.IngestBatch(req)
            assert (ack.accepted, len(ack.errors)) == (1, 1)
            target.script({"status": 400})
            await stub.IngestBatch(sample.json_request("spooled", 2, range(3)))  # acked on fsync
            await wait_until(lambda: bridge.routes["spooled"].spool.dead.rows == 3, what="dead-lettered")
            target.script({"status": 400})
            try:
                await stub.IngestBatch(pb.IngestRequest(route="plain", sequence=3, json=req.json))
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            ack = await stub.IngestBatch(sample.json_request("fanned", 4, range(2)))
            assert (ack.accepted, ack.upstream["main"]) == (2, "OK")
            spare = bridge.routes["fanned"].lanes[1]
            await wait_until(lambda: spare.stats.rows_dropped == 2, what="the optional target's rows dropped")
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{bridge.http_port}/metrics") as resp:
            text = await resp.text()
        # A family declared without samples shows no labels on /metrics: its label names, from its declaration.
        fault_labels = {m._name + "_total": set(m._labelnames) for m in (bridge.metrics.spool_errors,)}
    finally:
        await bridge.stop(grace=1.0)
        await target.stop()

    labels: dict[str, set[str]] = {}
    declared = set()
    for family in text_string_to_metric_families(text):
        declared.add(family.name + ("_total" if family.type == "counter" else ""))
        for s in family.samples:
            labels.setdefault(s.name, set()).update(s.labels)
    for name in ON_FAULT_ONLY & declared:
        labels.setdefault(name, fault_labels[name])
    missing, bad_labels = [], []
    for expr in dashboard_exprs() + alert_exprs():
        names = []
        for name, selector in METRIC.findall(expr):
            names.append(name)
            if name not in labels:
                missing.append(name)
                continue
            for key in re.findall(r"(\w+)\s*[=!]~?", selector or ""):
                if key not in labels[name]:
                    bad_labels.append((name, key))
        for group in BY.findall(expr):
            for key in (k.strip() for k in group.split(",")):
                if key in SCRAPE_LABELS:
                    continue
                if not any(key in labels.get(n, set()) for n in names):
                    bad_labels.append((expr[:60], key))
    assert not missing, f"not served on /metrics: {sorted(set(missing))}"
    assert not bad_labels, f"labels not on these metrics: {bad_labels}"
