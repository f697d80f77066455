"""The benchmark's processes: starting, measuring (CPU and RSS from /proc) and stopping them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench.py"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env={**os.environ, **(env or {})}, start_new_session=True)

    def pids(self) -> list[int]:
        out = [self.p.pid]
        try:
            kids = Path(f"/proc/{self.p.pid}/task/{self.p.pid}/children").read_text().split()
            out += [int(k) for k in kids]
        except OSError:
            pass
        return out

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(parts[11]) + int(parts[12])
            except (OSError, IndexError):
                pass
        return total / TICK

    def peak_rss(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)


def client_cpu_seconds() -> float:
    """This process's CPU (every thread: gRPC's too), from /proc like the bridge's."""
    parts = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine (all cores, every process: others' too) has been busy, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def http_json(url: str, method: str = "GET") -> dict:
    import urllib.request

    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


# The sample rows' columns as a route declares them (--declared: every row is validated).
DECLARED_COLUMNS = ("{id: int, user: string, price: double, ok: bool, ts: timestamp, category: string, "
                    "count: int, message: string}")


# --format: the bench route's body form (ndjson: http NDJSON; csv: http CSV without a header, one line a row;
# compact: Timeplus v1beta2 compact).
FORMS = {"ndjson": ("http", "/ingest", ""), "csv": ("http", "/ingest", ", format: csv, csv_header: false"),
         "compact": ("timeplus", "", ", format: compact")}


def bridge_config(path: Path, port: int, sink: str, desc: Path, linger: str = "5ms", extra: str = "",
                  columns: str = "", form: str = "ndjson") -> None:
    dialect, path_, options = FORMS[form]
    path.write_text(f"""
listen: 127.0.0.1:{port}
http: null
routes:
  bench:
    dialect: {dialect}
    url: {sink}{path_}
    batch: {{max_rows: 5000, max_bytes: 8MiB, linger: {linger}}}
    delivery: {{concurrency: 4}}
    options: {{descriptor_set: {desc}{options}{extra}}}
""" + (f"    columns: {columns}\n" if columns else "")
      + ("    target: bench\n    auth: {api_key: bench}\n" if dialect == "timeplus" else ""))


def start_sink() -> tuple[Proc, str]:
    port = free_port()
    proc = Proc([sys.executable, str(BENCH), "--role", "sink", "--port", str(port)])
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


def start_bridge(cfg: Path, workers: int, transcoder: str | None = None, threads: str | None = None) -> Proc:
    env: dict[str, str] = {}  # the bridge tunes malloc itself (bridge/_malloc.py)
    if transcoder is not None:
        env["INGEST_BRIDGE_PURE"] = "1" if transcoder == "python" else "0"
    if threads is not None:
        env["INGEST_BRIDGE_TRANSCODE_THREADS"] = threads
    return Proc([sys.executable, "-m", "bridge", "--log-level", "warning", "serve", "--config", str(cfg),
                 "--workers", str(workers)], env=env)
