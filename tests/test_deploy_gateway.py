"""The gateway manifests (deploy/kubernetes/gateway/): valid Kubernetes objects (offline, against the
schemas), configs that `ingest-bridge check` accepts, and a grace period that covers the drain."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridge.config import parse_config, parse_duration

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = ROOT / "deploy" / "kubernetes" / "gateway"
FILES = sorted(GATEWAY.glob("*.yaml"))
K8S_VERSION = "1.30.0"


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(path: Path) -> dict[str, dict]:
    return {d["kind"]: d for d in docs(path)}


def workload(path: Path) -> dict:
    kinds = by_kind(path)
    return kinds.get("Deployment") or kinds["StatefulSet"]


def config_text(path: Path, volumes: Path) -> str:
    """The ConfigMap's bridge.yaml, with the paths of the pod's claimed volumes under ``volumes`` (the check
    looks for a spool directory, as the pod would find its volume mounted)."""
    text = by_kind(path)["ConfigMap"]["data"]["bridge.yaml"]
    w = workload(path)
    claims = {c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])}
    for c in w["spec"]["template"]["spec"]["containers"]:
        for m in c["volumeMounts"]:
            if m["name"] in claims:
                local = volumes / m["name"]
                local.mkdir(parents=True, exist_ok=True)
                text = text.replace(m["mountPath"], str(local))
    return text


def test_there_are_a_deployment_and_a_statefulset():
    assert [p.name for p in FILES] == ["gateway.yaml", "statefulset.yaml"]
    assert set(by_kind(FILES[0])) == {"ConfigMap", "Secret", "Deployment", "Service",
                                      "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert set(by_kind(FILES[1])) == {"ConfigMap", "Secret", "Service", "StatefulSet", "PodDisruptionBudget"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_object_is_valid_against_the_kubernetes_schemas(path):
    kv = pytest.importorskip("kubernetes_validate")
    for doc in docs(path):
        try:
            kv.validate(doc, K8S_VERSION, strict=True)  # strict: an unknown (misspelt) field is an error
        except kv.ValidationError as e:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {e.message} at {list(e.path)}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_config_passes_ingest_bridge_check_with_the_secrets_variables(path, tmp_path):
    kinds = by_kind(path)
    text = config_text(path, tmp_path)
    secret_keys = set(kinds["Secret"]["stringData"])
    assert set(re.findall(r"\$\{(\w+)\}", text)) == secret_keys
    config = tmp_path / "bridge.yaml"
    config.write_text(text)
    env = {**os.environ, **{k: "x" for k in secret_keys}}
    run = subprocess.run([sys.executable, "-m", "bridge", "check", "--config", str(config)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "configuration OK" in run.stdout


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_grace_period_covers_prestop_and_the_drain(path):
    kinds = by_kind(path)
    raw = yaml.safe_load(kinds["ConfigMap"]["data"]["bridge.yaml"])
    grace = parse_duration(raw["limits"]["shutdown_grace"])
    pod = workload(path)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # preStop, then SIGTERM: the drain (shutdown_grace), then up to 1 s to close connections, and a margin.
    assert int(pre_stop[1]) + grace + 1 + 2 <= pod["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_service_probes_and_budget_point_at_the_bridges(path, tmp_path):
    kinds = by_kind(path)
    text = config_text(path, tmp_path)
    config = parse_config(text, env={k: "x" for k in kinds["Secret"]["stringData"]})
    grpc_port = int(config.listen.rsplit(":", 1)[1])
    ops_port = int(config.http.rsplit(":", 1)[1])
    w = workload(path)
    labels = w["spec"]["template"]["metadata"]["labels"]
    assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = kinds["Service"]
    assert svc["spec"]["clusterIP"] == "None", "headless: DNS names every bridge, callers balance"
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["port"] == grpc_port
    (c,) = w["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": grpc_port, "metrics": ops_port}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": ops_port}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": ops_port}
    assert c["envFrom"][0]["secretRef"]["name"] == kinds["Secret"]["metadata"]["name"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert c["args"] == ["serve", "--config", f"{mount['mountPath']}/bridge.yaml"]
    pdb = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert config.limits.max_connection_age < 3600, "long streams rebalance after a scale-out"


def test_the_autoscaler_scales_the_deployment():
    kinds = by_kind(GATEWAY / "gateway.yaml")
    ref = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", kinds["Deployment"]["metadata"]["name"])
    assert kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2, "one bridge can always go"
    (c,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "cpu" in c["resources"]["requests"], "CPU utilisation needs a request"


def test_the_statefulset_keeps_each_spool_on_its_own_volume(tmp_path):
    path = GATEWAY / "statefulset.yaml"
    kinds = by_kind(path)
    sts = kinds["StatefulSet"]
    assert sts["spec"]["serviceName"] == kinds["Service"]["metadata"]["name"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    config = parse_config(config_text(path, tmp_path), env={"COLLECTOR_TOKEN": "x"})
    spools = {r.spool.dir for r in config.routes.values() if r.spool is not None}
    local = str(tmp_path / claim["metadata"]["name"])
    assert spools and all(d == local or d.startswith(local + "/") for d in spools), "the spool is on the volume"
    assert mount["mountPath"] in kinds["ConfigMap"]["data"]["bridge.yaml"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"], "one log, one writer"
