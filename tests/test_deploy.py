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


def stages(text: str) -> dict[str, list[str]]:
    """The Dockerfile's instructions by stage (``AS`` name; the last, unnamed stage is ``runtime``)."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
            current = out.setdefault(m.group(1) if m and m.group(1) else "runtime", [])
        current.append(line)
    return out


def test_the_image_builds_the_native_transcoder_and_ships_no_toolchain():
    s = stages((DEPLOY / "Dockerfile").read_text())
    build, runtime = s["build"], s["runtime"]
    # The builder has cargo and a linker, and the crate's sources with the package's.
    assert any("COPY --from=rust" in i and "cargo" in i for i in build)
    assert any(i.startswith("ENV") and "/usr/local/cargo/bin" in i for i in build)
    assert any("apt-get install" in i and "gcc" in i for i in build)
    copied = " ".join(i for i in build if i.startswith("COPY") and "--from" not in i)
    for path in ("setup.py", "pyproject.toml", "native", "bridge", "protos"):
        assert path in copied
    assert any(i.startswith("RUN pip install") and i.rstrip().endswith(" .") for i in build)
    # The runtime takes only the installed package, fails to build without the native transcoder, and has
    # no Rust or compiler in it.
    assert [i for i in runtime if "--from=" in i] == ["COPY --from=build /install /usr/local"]
    assert any(i.startswith("RUN ingest-bridge --version") and '"transcoder: native"' in i for i in runtime)
    assert not any("cargo" in i or "rust" in i or "gcc" in i for i in runtime)
    # The same Python in both (the extension is built for the interpreter that runs it).
    base = {i.split()[1] for i in build + runtime if i.startswith("FROM") and "python" in i}
    assert len(base) == 1


def test_the_build_context_leaves_out_build_outputs():
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    for path in ("native/target", "native/fuzz/target", ".git", "bridge/_native*.so"):
        assert path in ignored
