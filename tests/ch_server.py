"""A real ClickHouse server for the tests: Debian's clickhouse-server as a plain process on loopback.

Debian 12 ships ClickHouse 18.16. What matters for JSONEachRow inserts there:
Int64/UInt64/Float64/String/Nullable(...)/Array(...) columns take JSON
numbers, strings, null and arrays; JSON booleans go into UInt8; RFC 3339
timestamps with fractions and "Z" parse into DateTime only with
``date_time_input_format=best_effort`` (seconds precision), so the tests keep
timestamps as String to compare them exactly. Output of 64-bit integers in
JSON is quoted unless ``output_format_json_quote_64bit_integers=0``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

BINARY = "clickhouse-server"

CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog>
        <console>0</console></logger>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>5368709</mark_cache_size>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
        <profile>default</profile><quota>default</quota></default></users>
    <quotas><default></default></quotas>
</yandex>
"""


def available() -> bool:
    return shutil.which(BINARY) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClickHouse:
    """Start with ``start()`` (or as a context manager); ``http_url``; ``query(sql)``; ``stop()``."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.http_port = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def start(self, timeout: float = 30.0, http_port: int = 0) -> ClickHouse:
        self.dir = Path(tempfile.mkdtemp(prefix="ingest-bridge-ch-"))
        for sub in ("data", "tmp", "log", "user_files", "format_schemas"):
            (self.dir / sub).mkdir()
        self.http_port = http_port or _free_port()
        (self.dir / "config.xml").write_text(CONFIG.format(d=self.dir, http_port=self.http_port,
                                                           tcp_port=_free_port()))
        (self.dir / "users.xml").write_text(USERS)
        log = open(self.dir / "stdout.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen([BINARY, f"--config-file={self.dir / 'config.xml'}"], cwd=self.dir,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.http_url + "ping", timeout=1) as r:
                    if r.read().strip() == b"Ok.":
                        return self
            except OSError:
                time.sleep(0.1)
        tail = ""
        for name in ("stdout.log", "log/error.log"):
            p = self.dir / name
            if p.exists():
                tail += p.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"clickhouse-server did not start within {timeout:g}s:\n{tail}")

    def query(self, sql: str, **settings: str) -> str:
        url = self.http_url + ("?" + urllib.parse.urlencode(settings) if settings else "")
        req = urllib.request.Request(url, data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"ClickHouse: {e.read().decode(errors='replace').strip()}") from None

    def rows(self, table: str, columns: str = "*") -> list[dict]:
        """A table's rows by id, 64-bit integers as JSON numbers."""
        out = self.query(f"SELECT {columns} FROM {table} ORDER BY id FORMAT JSONEachRow",
                         output_format_json_quote_64bit_integers="0")
        return [json.loads(line) for line in out.splitlines()]

    def insert_url(self, table: str, **settings: str) -> str:
        q = {"query": f"INSERT INTO {table} FORMAT JSONEachRow", **settings}
        return self.http_url + "?" + urllib.parse.urlencode(q)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> ClickHouse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
