"""`ingest-bridge send` of a file while the bridge is killed (SIGKILL) or stopped (SIGTERM) and started again:
exit 0 and every row at the target."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import orjson
import pytest
from aiohttp import web

from bridge.dev.emulators.http_sink import HttpSink
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
ROWS = 20_000


class SlowSink(HttpSink):
    """Takes a little while per request, so that a file is still streaming when the bridge goes."""

    async def ingest(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.01)
        return await super().ingest(request)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _bridge(config: Path, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--log-format", "text", "serve", "--config", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        await asyncio.wait_for(ch.channel_ready(), 30)
    return proc


async def restart_under_send(tmp: Path, sig: signal.Signals, rows: int = ROWS) -> tuple[int, str, list]:
    """Stream ``rows`` NDJSON lines with ``send``; signal the bridge at a quarter, start another one."""
    sink = SlowSink()
    await sink.start()
    port = _free_port()
    config = tmp / "bridge.yaml"
    config.write_text(orjson.dumps({
        "listen": f"127.0.0.1:{port}", "http": None,
        "limits": {"shutdown_grace": "5s"},
        "routes": {"r": {"dialect": "http", "url": sink.url + "/in", "options": {"format": "ndjson"},
                         "batch": {"max_rows": 200, "linger": "0s"}, "delivery": {"concurrency": 2}}},
    }).decode())
    data = tmp / "rows.ndjson"
    data.write_bytes(b"".join(orjson.dumps({"id": i, "name": f"row {i}"}) + b"\n" for i in range(rows)))
    bridges = [await _bridge(config, port)]
    send = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "send", str(data), "--target", f"127.0.0.1:{port}", "--route", "r",
        "--max-backoff", "0.5", "--give-up-after", "60", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ})
    try:
        await wait_until(lambda: len(sink.rows) >= rows // 4, timeout=30)
        assert len(sink.rows) < rows, "the file was still streaming when the bridge went"
        bridges[0].send_signal(sig)
        await asyncio.wait_for(bridges[0].wait(), 30)
        bridges.append(await _bridge(config, port))
        out, _ = await asyncio.wait_for(send.communicate(), 120)
        return send.returncode, out.decode(), [r["id"] for r in sink.rows]
    finally:
        if send.returncode is None:
            send.kill()
            await send.wait()
        for b in bridges:
            if b.returncode is None:
                b.terminate()
                await asyncio.wait_for(b.wait(), 30)
        await sink.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_send_survives_the_bridge_going_mid_file(tmp_path, sig):
    rc, out, ids = await restart_under_send(tmp_path, sig)
    assert rc == 0, out
    assert set(ids) == set(range(ROWS)), f"{ROWS - len(set(ids))} rows missing"
    assert f"{ROWS} rows accepted, 0 rejected, 0 batches failed" in out
    if sig == signal.SIGTERM:
        # A drain delivers and acknowledges what it took: at most the batches cut at the grace come twice.
        assert len(ids) - ROWS <= 2 * 200 * 32, "duplicates bounded by the window"
