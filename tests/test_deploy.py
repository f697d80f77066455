"""The deployment examples parse, and reference the config, the keys and the ports the bridge has."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bridge.config import parse_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def docs() -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / "kubernetes" / "sidecar.yaml").read_text()))


def test_the_configmap_holds_a_valid_config_whose_variables_the_secret_provides():
    by_kind = {d["kind"]: d for d in docs()}
    text = by_kind["ConfigMap"]["data"]["bridge.yaml"]
    secret_keys = set(by_kind["Secret"]["stringData"])
    assert set(re.findall(r"\$\{(\w+)\}", text)) == secret_keys
    env = {k: "x" for k in secret_keys}
    config = parse_config(text, env=env)
    assert {n: r.dialect for n, r in config.routes.items()} == {"clicks": "timeplus", "logs": "axiom"}


def test_the_sidecar_mounts_the_config_and_probes_the_ops_port():
    by_kind = {d["kind"]: d for d in docs()}
    cm = by_kind["ConfigMap"]
    config = yaml.safe_load(cm["data"]["bridge.yaml"].replace("${", "").replace("}\"", "\""))
    ops_port = int(config["http"].rsplit(":", 1)[1])
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    (bridge,) = [c for c in pod["containers"] if c["name"] == "ingest-bridge"]
    mount = bridge["volumeMounts"][0]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    config_path = bridge["args"][bridge["args"].index("--config") + 1]
    assert config_path == f"{mount['mountPath']}/bridge.yaml"
    assert bridge["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": ops_port}
    assert bridge["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": ops_port}
    assert bridge["envFrom"][0]["secretRef"]["name"] == by_kind["Secret"]["metadata"]["name"]
    assert bridge["securityContext"]["runAsUser"] != 0


def test_the_dockerfile_runs_as_non_root_with_a_healthcheck_on_healthz():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER (?!0\b|root\b)\S+", text, re.M)
    assert "/healthz" in text and "HEALTHCHECK" in text
    assert 'ENTRYPOINT ["ingest-bridge"]' in text
