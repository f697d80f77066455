"""Kill the bridge mid-stream, again and again, and count in a real ClickHouse what acknowledged rows survived.

    python scripts/crash_test.py                  # 50 SIGKILL cycles
    python scripts/crash_test.py --cycles 5 --outage 60

The bridge runs as ``python -m bridge serve`` with one route in spool mode to a
ClickHouse started here (Debian's clickhouse-server). A client streams
numbered rows at a steady rate over IngestStream and, whenever the stream
breaks, reconnects and resends every request not yet acknowledged. A killer
sends SIGKILL to the bridge at a random moment of each cycle and starts it
again. With ``--outage S`` ClickHouse is then frozen (SIGSTOP) for S seconds
under the same load: callers must see no error while the spool has room.
At the end the bridge drains its spool and the script counts in ClickHouse:
acknowledged rows missing (must be 0) and rows stored more than once.

Prints one summary line; exits 1 if an acknowledged row is missing or a caller saw an error in the outage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.proto import pb, pb_grpc
from tests.ch_server import ClickHouse

ROUTE = "crash"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bridge:
    """The bridge as a child process that can be killed and started again on the same ports and spool."""

    def __init__(self, workdir: Path, insert_url: str, fsync: str) -> None:
        self.port, self.http_port = free_port(), free_port()
        self.config = workdir / "bridge.yaml"
        self.log = workdir / "bridge.log"
        self.config.write_text(json.dumps({  # JSON is YAML
            "listen": f"127.0.0.1:{self.port}", "http": f"127.0.0.1:{self.http_port}",
            "routes": {ROUTE: {
                "dialect": "http", "url": insert_url,
                "batch": {"linger": "20ms", "max_rows": 2000},
                "delivery": {"initial_backoff": "50ms", "max_backoff": "500ms", "max_elapsed": "3s", "timeout": "2s"},
                "spool": {"dir": str(workdir / "spool"), "max_bytes": "512MiB", "segment_bytes": "1MiB",
                          "fsync": fsync},
            }},
        }))
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "--log-format", "text", "serve",
                                          "--config", str(self.config)], stdout=subprocess.DEVNULL, stderr=log)
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def ready(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=1) as r:
                return json.loads(r.read())
        except OSError as e:
            body = getattr(e, "read", None)
            return json.loads(body()) if body is not None and getattr(e, "code", 0) == 503 else None

    def wait_ready(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.ready() is not None:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the bridge exited with {self.proc.returncode}; see {self.log}")
            time.sleep(0.05)
        raise RuntimeError(f"the bridge did not become ready within {seconds:g}s; see {self.log}")


class Client:
    """Streams numbered rows at ``rate`` rows/s; resends what was not acknowledged after every broken stream."""

    def __init__(self, port: int, rate: int, batch: int) -> None:
        self.target = f"127.0.0.1:{port}"
        self.rate, self.batch = rate, batch
        self.next_id = 0
        self.seq = 0
        self.unacked: dict[int, pb.IngestRequest] = {}
        self.acked: set[int] = set()
        self.producing = True
        self.errors: list[str] = []  # non-OK acks: rows the caller would have to handle
        self.streams = 0
        self.count_errors = False

    def _request(self) -> pb.IngestRequest:
        req = pb.IngestRequest(route=ROUTE, sequence=self.seq)
        req.json.objects.extend(b'{"id":%d}' % i for i in range(self.next_id, self.next_id + self.batch))
        self.next_id += self.batch
        self.seq += 1
        return req

    async def run(self) -> None:
        while self.producing or self.unacked:
            # Reconnect within 50-200 ms (gRPC's default backoff grows to minutes while the bridge restarts).
            channel = grpc.aio.insecure_channel(self.target, options=[
                ("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 200)])
            self.streams += 1
            try:
                await self._stream(channel)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                await asyncio.sleep(0.05)  # the bridge went away: open a new stream, resend what is unacked
            finally:
                await channel.close()

    async def _stream(self, channel: grpc.aio.Channel) -> None:
        call = pb_grpc.IngestServiceStub(channel).IngestStream(wait_for_ready=True)
        resend = list(self.unacked.values())

        async def write() -> None:
            for req in resend:
                await call.write(req)
            interval = self.batch / self.rate
            while self.producing:
                req = self._request()
                self.unacked[req.sequence] = req
                await call.write(req)
                await asyncio.sleep(interval)
            await call.done_writing()

        writer = asyncio.create_task(write())
        try:
            async for ack in call:
                req = self.unacked.get(ack.sequence)
                if req is None:
                    continue
                if ack.status.code != 0:
                    if self.count_errors:
                        self.errors.append(f"seq {ack.sequence}: {ack.status.message}")
                    continue  # left unacked: sent again with the next stream
                del self.unacked[ack.sequence]
                self.acked.update(int(o[6:-1]) for o in req.json.objects)
            await writer
        finally:
            writer.cancel()


async def crash_cycles(bridge: Bridge, client: Client, cycles: int, rng: random.Random) -> None:
    for _ in range(cycles):
        await asyncio.to_thread(bridge.wait_ready)
        await asyncio.sleep(rng.uniform(0.05, 1.2))
        bridge.kill()
        bridge.start()


async def outage(bridge: Bridge, client: Client, ch: ClickHouse, seconds: float) -> dict:
    await asyncio.to_thread(bridge.wait_ready)
    await asyncio.sleep(1.0)
    client.count_errors = True
    acked_before = len(client.acked)
    ch.proc.send_signal(signal.SIGSTOP)
    peak = 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            state = await asyncio.to_thread(bridge.ready)
            if state:
                peak = max(peak, state["routes"][ROUTE].get("spool_bytes", 0))
    finally:
        ch.proc.send_signal(signal.SIGCONT)
    client.count_errors = False
    return {"acked_during": len(client.acked) - acked_before, "peak_spool_bytes": peak}


def clickhouse_ids(ch: ClickHouse) -> list[int]:
    return [int(x) for x in ch.query("SELECT id FROM crash FORMAT TabSeparated").split()]


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bridge-crash-"))
    ch = ClickHouse().start()
    started = time.monotonic()
    bridge = None
    try:
        ch.query("CREATE TABLE crash (id UInt64) ENGINE = MergeTree() ORDER BY id")
        bridge = Bridge(workdir, ch.insert_url("crash"), args.fsync)
        bridge.start()
        client = Client(bridge.port, args.rate, args.batch)
        streaming = asyncio.create_task(client.run())
        await crash_cycles(bridge, client, args.cycles, rng)
        out = await outage(bridge, client, ch, args.outage) if args.outage else None
        client.producing = False
        await asyncio.wait_for(streaming, 120)
        # Every acknowledged row is in the spool or at the target; let the spool drain, then count.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = await asyncio.to_thread(bridge.ready)
            if state and state["routes"][ROUTE]["spool_records"] == 0:
                break
            await asyncio.sleep(0.2)
        bridge.stop()
        ids = clickhouse_ids(ch)
    finally:
        if bridge is not None:
            bridge.stop()
        ch.stop()
    stored = set(ids)
    missing = len(client.acked - stored)
    log = bridge.log.read_text(errors="replace")
    torn = log.count("bytes dropped")
    dead = log.count("dead-letter file")
    summary = (f"crash_test: cycles={args.cycles} acked_rows={len(client.acked)} sent_rows={client.next_id} "
               f"rows_in_clickhouse={len(ids)} acked_missing={missing} duplicates={len(ids) - len(stored)} "
               f"torn_tails_cut={torn} dead_lettered={dead} streams={client.streams} fsync={args.fsync}")
    if out is not None:
        summary += (f" outage={args.outage:g}s caller_errors={len(client.errors)} acked_during_outage="
                    f"{out['acked_during']} peak_spool_bytes={out['peak_spool_bytes']}")
    summary += f" elapsed={time.monotonic() - started:.0f}s"
    print(summary, flush=True)
    for e in client.errors[:5]:
        print("  caller error:", e, file=sys.stderr)
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"  work directory kept: {workdir}", file=sys.stderr)
    return 1 if missing or client.errors else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=50, help="SIGKILL cycles (default 50)")
    p.add_argument("--outage", type=float, default=0, help="then freeze ClickHouse this many seconds under load")
    p.add_argument("--rate", type=int, default=5000, help="rows per second the client offers")
    p.add_argument("--batch", type=int, default=100, help="rows per request")
    p.add_argument("--fsync", default="always", help="the spool's fsync setting: always, or an interval (10ms)")
    p.add_argument("--seed", type=int, default=int(os.environ.get("CRASH_SEED", "7")))
    p.add_argument("--keep", action="store_true", help="keep the work directory (spool, bridge log)")
    args = p.parse_args(argv)
    from tests.ch_server import available

    if not available():
        print("crash_test: clickhouse-server is not installed (apt-get install clickhouse-server)", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
