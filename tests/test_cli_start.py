"""Start-up as a user meets it: busy ports, --listen, log flags on either side of the subcommand, --help."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CONFIG = """
listen: {listen}
http: {http}
routes:
  clicks: {{dialect: http, url: "http://127.0.0.1:9/in"}}
"""


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy())


@contextmanager
def busy_port() -> Iterator[int]:
    """A loopback port another process would hold: bound and listening."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def config(tmp_path, listen: str = "127.0.0.1:0", http: str = "null") -> str:
    path = tmp_path / "bridge.yaml"
    path.write_text(CONFIG.format(listen=listen, http=http))
    return str(path)


def assert_one_line(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr and "uvloop" not in p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_a_busy_grpc_port_from_the_flag_is_one_line_naming_it(tmp_path):
    with busy_port() as port:
        p = run("serve", "--config", config(tmp_path), "--listen", f"127.0.0.1:{port}")
    assert_one_line(p, f"port {port}", "--listen", "in use")


def test_a_busy_grpc_port_from_the_config_names_the_key_and_file(tmp_path):
    with busy_port() as port:
        cfg = config(tmp_path, listen=f"127.0.0.1:{port}")
        p = run("serve", "--config", cfg)
    assert_one_line(p, f"port {port}", f"'listen' in {cfg}", "in use")


def test_a_busy_http_port_names_the_http_key(tmp_path):
    with busy_port() as port:
        cfg = config(tmp_path, http=f"127.0.0.1:{port}")
        p = run("serve", "--config", cfg)
    assert_one_line(p, f"port {port}", f"'http' in {cfg}", "in use")


def test_a_busy_port_with_workers_is_said_once(tmp_path):
    with busy_port() as port:
        p = run("serve", "--config", config(tmp_path), "--listen", f"127.0.0.1:{port}", "--workers", "2")
    assert_one_line(p, f"port {port}", "--listen")


def test_a_busy_emulator_port_names_the_flag():
    with busy_port() as port:
        p = run("emulate", "http", "--port", str(port))
    assert_one_line(p, f"port {port}", "--port", "in use")


@pytest.mark.parametrize(("value", "hint"), [
    ("localhost", "got 'localhost'"),
    ("50082", "did you mean 127.0.0.1:50082?"),
    ("127.0.0.1:70000", "port 0-65535"),
    ("[::1:50051", "HOST:PORT"),
])
def test_listen_flag_is_checked_like_the_config_key(tmp_path, value, hint):
    p = run("serve", "--config", config(tmp_path), "--listen", value)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert "--listen: expected HOST:PORT" in p.stderr and hint in p.stderr


def serve_until_ready(args: list[str]) -> str:
    """Start serve, wait for its ready line, stop it; its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "bridge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()  # the "serving gRPC on" line comes after the log line
        assert "serving gRPC" in line, line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    return err


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_flags_work_before_and_after_the_subcommand(tmp_path, where):
    flags = ["--log-format", "text", "--log-level", "info"]
    serve = ["serve", "--config", config(tmp_path)]
    err = serve_until_ready(flags + serve if where == "before" else serve + flags)
    listening = [ln for ln in err.splitlines() if "listening on" in ln]
    assert listening and " INFO bridge.ingest.server: listening on 127.0.0.1:0" in listening[0], err
    assert not listening[0].startswith("{")


def test_log_level_after_the_subcommand_takes_effect_and_one_before_is_kept(tmp_path):
    err = serve_until_ready(["--log-format", "text", "serve", "--config", config(tmp_path), "--log-level", "warning"])
    assert "listening on" not in err  # info is below warning
    err = serve_until_ready(["--log-format", "text", "serve", "--config", config(tmp_path)])
    assert "INFO bridge.ingest.server: listening on" in err  # text, given before, not reset by the subcommand's default


def test_help_lists_the_emulators_and_the_default_port():
    e = run("emulate", "--help").stdout
    assert "{http,timeplus,obsrv,feldera,axiom,faulty}" in e and "8080" in e
    d = " ".join(run("demo", "--help").stdout.split())
    assert "http, timeplus, obsrv, feldera, axiom" in d
    p = run("emulate", "nosuch")
    assert p.returncode == 2 and "invalid choice: 'nosuch'" in p.stderr and "timeplus" in p.stderr


@pytest.mark.parametrize("args", [["--rows", "-5"], ["--rows", "0"], ["--batch-rows", "0"], ["--rows", "many"]])
def test_demo_refuses_a_count_below_one(args):
    p = run("demo", *args)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stdout == ""
    assert f"argument {args[0]}: expected a whole number of at least 1, got '{args[1]}'" in p.stderr


def test_send_refuses_a_batch_or_window_below_one():
    for flag in ("--batch-rows", "--window"):
        p = run("send", "--route", "r", "-", flag, "0")
        assert p.returncode == 2 and f"argument {flag}: expected a whole number of at least 1" in p.stderr


def test_the_demo_prints_for_a_person_and_its_logs_stay_quiet():
    p = run("demo", "--rows", "40", "--batch-rows", "10")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("ingest-bridge demo: bridge on 127.0.0.1:")
    assert p.stderr == ""
    # Asked for, its logs come as text, not JSON.
    p = run("demo", "--rows", "40", "--log-level", "info")
    assert p.returncode == 0 and "INFO bridge.ingest.server: listening on" in p.stderr
    assert not any(line.startswith("{") for line in p.stderr.splitlines())


def test_every_subcommand_takes_the_log_flags_after_it():
    for command in ("serve", "check", "demo", "send", "emulate", "explain", "schema", "descriptor-set"):
        p = run(command, "--help")
        assert p.returncode == 0 and "--log-format" in p.stdout and "--log-level" in p.stdout, command
