"""The ingest-bridge command as a user runs it: check, serve, demo."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from bridge.proto import pb, pb_grpc

GOOD = """
listen: 127.0.0.1:0
http: null
routes:
  clicks:
    dialect: http
    url: http://127.0.0.1:9/in
    auth: {bearer: ${CLI_TEST_TOKEN}}
    columns: {id: int}
"""


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_check_accepts_a_good_config_and_masks_secrets(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(GOOD)
    p = run("check", "--config", str(cfg), env={"CLI_TEST_TOKEN": "very-secret-value"})
    assert p.returncode == 0, p.stderr
    assert "clicks" in p.stdout and "configuration OK: 1 route(s)" in p.stdout
    assert "very-secret-value" not in p.stdout + p.stderr


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (GOOD.replace("dialect:", "dialekt:"), {"CLI_TEST_TOKEN": "x"}, "dialekt"),
        (GOOD, {}, "CLI_TEST_TOKEN"),
        (GOOD.replace("dialect: http", "dialect: nosuch"), {"CLI_TEST_TOKEN": "x"}, "nosuch"),
    ],
    ids=["typo-in-key", "missing-env-var", "unknown-dialect"],
)
def test_check_and_serve_refuse_a_bad_config_and_say_which(tmp_path, text, env, expected):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    environ = {k: v for k, v in os.environ.items() if k != "CLI_TEST_TOKEN"}
    for command in ("check", "serve"):
        p = subprocess.run([sys.executable, "-m", "bridge", command, "--config", str(cfg)], capture_output=True,
                           text=True, timeout=60, env={**environ, **env})
        assert p.returncode == 2, (command, p.stdout, p.stderr)
        assert "the configuration is invalid" in p.stderr
        assert expected in p.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_on_the_listen_override_and_stops_on_sigterm(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(GOOD)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "CLI_TEST_TOKEN": "t"},
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=20)
        routes = pb_grpc.IngestServiceStub(channel).ListRoutes(pb.ListRoutesRequest(), timeout=5)
        assert [r.name for r in routes.routes] == ["clicks"]
        channel.close()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"port {port}" in out


def test_demo_runs_end_to_end_with_no_config():
    t0 = time.monotonic()
    p = run("demo", "--rows", "8000", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all 8000 rows arrived intact" in p.stdout
    metrics = next(line for line in p.stdout.splitlines() if line.startswith("metrics "))
    for stage in ("received_rows 8000", "received_batches 8", "sent_rows 8000", "sent_batches "):
        assert stage in metrics, metrics
    for shape in ("rows", "columns", "messages", "json"):
        assert shape in p.stdout
    assert time.monotonic() - t0 < 120


@pytest.mark.parametrize("dialect", ["timeplus", "obsrv", "feldera", "axiom"])
def test_demo_runs_against_each_seed_dialect(dialect):
    p = run("demo", "--dialect", dialect, "--rows", "4000", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"local {dialect} target" in p.stdout and "all 4000 rows arrived intact" in p.stdout


def test_demo_names_the_dialects_it_knows():
    p = run("demo", "--dialect", "nosuch")
    assert p.returncode == 2 and "invalid choice: 'nosuch'" in p.stderr and "timeplus" in p.stderr


def test_python_dash_m_and_the_console_script_agree():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("ingest-bridge ")
    script = Path(sys.executable).with_name("ingest-bridge")
    if script.exists():
        q = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
        assert q.stdout == p.stdout
