"""Kill the bridge mid-stream, again and again, and count in a real ClickHouse what acknowledged rows survived.

    python scripts/crash_test.py                  # 50 SIGKILL cycles
    python scripts/crash_test.py --cycles 5 --outage 60
    python scripts/crash_test.py --disk-full      # the spool on a 3 MiB tmpfs that fills up (root)

The bridge runs as ``python -m bridge serve`` with one route in spool mode to a
ClickHouse started here (Debian's clickhouse-server). A client streams
numbered rows at a steady rate over IngestStream and, whenever the stream
breaks, reconnects and resends every request not yet acknowledged. A killer
sends SIGKILL to the bridge at a random moment of each cycle and starts it
again. With ``--outage S`` ClickHouse is then frozen (SIGSTOP) for S seconds
under the same load: callers must see no error while the spool has room.
At the end the bridge drains its spool and the script counts in ClickHouse:
acknowledged rows missing (must be 0) and rows stored more than once.

With ``--disk-full`` the spool directory is a small tmpfs mounted here (root
only) and ClickHouse is frozen through the kill cycles: the disk fills while
rows arrive and the bridge is killed and restarted on a full disk. Each row
carries a 200-byte pad, so a cut row shows. Every refusal must be retryable
(UNAVAILABLE), no acknowledged row may be missing, cut or in the dead-letter
file.

Prints one summary line; exits 1 if an acknowledged row is missing or a caller saw an error in the outage
(or, with --disk-full, a refusal was not retryable, a row arrived cut or an acknowledged row was set aside).
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
from google.rpc import error_details_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.proto import pb, pb_grpc
from tests.ch_server import ClickHouse

ROUTE = "crash"
CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}
PAD = "p" * 200  # --disk-full: every row carries it, so a row cut short shows at the target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bridge:
    """The bridge as a child process that can be killed and started again on the same ports and spool."""

    def __init__(self, workdir: Path, insert_url: str, fsync: str, spool_dir: Path | None = None) -> None:
        self.port, self.http_port = free_port(), free_port()
        self.config = workdir / "bridge.yaml"
        self.log = workdir / "bridge.log"
        self.config.write_text(json.dumps({  # JSON is YAML
            "listen": f"127.0.0.1:{self.port}", "http": f"127.0.0.1:{self.http_port}",
            "routes": {ROUTE: {
                "dialect": "http", "url": insert_url,
                "batch": {"linger": "20ms", "max_rows": 2000},
                "delivery": {"initial_backoff": "50ms", "max_backoff": "500ms", "max_elapsed": "3s", "timeout": "2s"},
                "spool": {"dir": str(spool_dir or workdir / "spool"), "max_bytes": "512MiB", "segment_bytes": "1MiB",
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

    def __init__(self, port: int, rate: int, batch: int, pad: bool = False) -> None:
        self.target = f"127.0.0.1:{port}"
        self.rate, self.batch = rate, batch
        self.pad = b',"pad":"%s"' % PAD.encode() if pad else b""
        self.refusals: dict[str, int] = {}  # non-OK acks by code and reason (all of them, not only in an outage)
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
        req.json.objects.extend(b'{"id":%d%s}' % (i, self.pad) for i in range(self.next_id, self.next_id + self.batch))
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
                if self.unacked:
                    await asyncio.sleep(0.2)  # refused (a full spool): resend after a pause
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
                    key = f"{CODE_NAMES.get(ack.status.code, ack.status.code)}:{_reason(ack.status)}"
                    self.refusals[key] = self.refusals.get(key, 0) + 1
                    if self.count_errors:
                        self.errors.append(f"seq {ack.sequence}: {ack.status.message}")
                    continue  # left unacked: sent again with the next stream
                del self.unacked[ack.sequence]
                self.acked.update(int(o[6:o.index(b",")] if self.pad else o[6:-1]) for o in req.json.objects)
            await writer
        finally:
            writer.cancel()


def _reason(status) -> str:
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info.reason
    return "-"


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


def mount_tmpfs(path: Path, mib: int) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)], check=True,
                   capture_output=True)


async def until_refused(client: Client, seconds: float = 60.0) -> None:
    """Wait (bounded) for the first refusal: the spool's disk is full."""
    deadline = time.monotonic() + seconds
    while not client.refusals and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bridge-crash-"))
    spool_dir = workdir / "disk" if args.disk_full else None
    if spool_dir is not None:
        mount_tmpfs(spool_dir, args.disk_mib)
    ch = ClickHouse().start()
    started = time.monotonic()
    bridge = None
    cut = 0
    dead_acked = 0
    try:
        pad_column = ", pad String" if args.disk_full else ""
        ch.query(f"CREATE TABLE crash (id UInt64{pad_column}) ENGINE = MergeTree() ORDER BY id")
        bridge = Bridge(workdir, ch.insert_url("crash"), args.fsync, spool_dir)
        bridge.start()
        client = Client(bridge.port, args.rate, args.batch, pad=args.disk_full)
        streaming = asyncio.create_task(client.run())
        if args.disk_full:
            ch.proc.send_signal(signal.SIGSTOP)  # the target away: the spool's disk fills, kills land on a full disk
            try:
                await until_refused(client)
                await crash_cycles(bridge, client, args.cycles, rng)
            finally:
                ch.proc.send_signal(signal.SIGCONT)
        else:
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
        if args.disk_full:
            cut = int(ch.query(f"SELECT count() FROM crash WHERE pad != '{PAD}' FORMAT TabSeparated").strip())
            dead_file = spool_dir / ROUTE / "dead-letter.ndjson"
            if dead_file.exists():
                for line in dead_file.read_bytes().splitlines():
                    rows = json.loads(line).get("rows", [])
                    dead_acked += sum(1 for r in rows if isinstance(r.get("row"), dict)
                                      and r["row"].get("id") in client.acked)
    finally:
        if bridge is not None:
            bridge.stop()
        ch.stop()
        if spool_dir is not None:
            subprocess.run(["umount", "-l", str(spool_dir)], check=False)
    stored = set(ids)
    missing = len(client.acked - stored)
    log = bridge.log.read_text(errors="replace")
    torn = log.count("bytes dropped")
    dead = log.count("dead-letter file")
    summary = (f"crash_test: cycles={args.cycles} acked_rows={len(client.acked)} sent_rows={client.next_id} "
               f"rows_in_clickhouse={len(ids)} acked_missing={missing} duplicates={len(ids) - len(stored)} "
               f"torn_tails_cut={torn} dead_lettered={dead} streams={client.streams} fsync={args.fsync}")
    bad_refusals = sum(n for key, n in client.refusals.items() if not key.startswith("UNAVAILABLE:"))
    if args.disk_full:
        refusals = ",".join(f"{k}={n}" for k, n in sorted(client.refusals.items())) or "none"
        summary += (f" disk={args.disk_mib}MiB refusals={refusals} refusals_not_retryable={bad_refusals} "
                    f"rows_cut={cut} acked_in_dead_letter={dead_acked}")
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
    failed = missing or client.errors or (args.disk_full and (bad_refusals or cut or dead_acked
                                                              or not client.refusals))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=50, help="SIGKILL cycles (default 50)")
    p.add_argument("--outage", type=float, default=0, help="then freeze ClickHouse this many seconds under load")
    p.add_argument("--rate", type=int, default=5000, help="rows per second the client offers")
    p.add_argument("--batch", type=int, default=100, help="rows per request")
    p.add_argument("--fsync", default="always", help="the spool's fsync setting: always, or an interval (10ms)")
    p.add_argument("--seed", type=int, default=int(os.environ.get("CRASH_SEED", "7")))
    p.add_argument("--disk-full", action="store_true",
                   help="put the spool on a small tmpfs that fills up while ClickHouse is frozen (needs root)")
    p.add_argument("--disk-mib", type=int, default=3, help="--disk-full: the tmpfs size in MiB (default 3)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (spool, bridge log)")
    args = p.parse_args(argv)
    from tests.ch_server import available

    if args.disk_full and os.geteuid() != 0:
        print("crash_test: --disk-full mounts a tmpfs and needs root", file=sys.stderr)
        return 2
    if not available():
        print("crash_test: clickhouse-server is not installed (apt-get install clickhouse-server)", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
