"""Roll, kill and cut off three bridges while callers stream numbered rows; count in a real ClickHouse what survived.

    python scripts/roll_test.py                # the full run (a 10 s cut-off)
    python scripts/roll_test.py --short        # the suite's version (a 3 s cut-off, shorter pauses)

Three bridges (``python -m bridge serve``, separate processes on loopback
ports) send one route to ClickHouse (Debian's clickhouse-server, started
here). Callers (``bridge.client``, one stream each) name all three
(``host1:port,host2:port,host3:port``, round robin) and stream numbered rows
at a steady rate. During the run:

1. a rolling update: each bridge in turn gets SIGTERM (it drains), exits and
   is started again, and the next one waits until it serves;
2. one bridge is killed with SIGKILL and started again;
3. one bridge is cut off (SIGSTOP) for ``--cutoff`` seconds, then resumed
   (SIGCONT): its callers find it out by keepalive and go to the others.

Then the callers finish, and the script counts in ClickHouse: acknowledged
rows missing (must be 0) and rows stored more than once (reported). Prints one
summary line; exits 1 if an acknowledged row is missing or a caller gave up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.client import Connection, Reconnect, sdk  # noqa: E402
from bridge.proto import pb  # noqa: E402
from tests.ch_server import ClickHouse, available  # noqa: E402

ROUTE = "roll"
STRIDE = 1_000_000_000  # caller k numbers its rows k * STRIDE + n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bridge:
    """One bridge process, restarted on the same port."""

    def __init__(self, n: int, workdir: Path, insert_url: str, grace: str) -> None:
        self.n = n
        self.port = free_port()
        self.config = workdir / f"bridge-{n}.yaml"
        self.log = workdir / f"bridge-{n}.log"
        self.config.write_text(json.dumps({  # JSON is YAML
            "listen": f"127.0.0.1:{self.port}", "http": None,
            "limits": {"shutdown_grace": grace, "max_connection_age": "5s", "max_connection_age_grace": "2s"},
            "routes": {ROUTE: {
                "dialect": "http", "url": insert_url, "options": {"format": "ndjson"},
                "batch": {"linger": "20ms", "max_rows": 2000},
                "delivery": {"initial_backoff": "50ms", "max_backoff": "500ms", "timeout": "5s"},
            }},
        }))
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "--log-format", "text", "serve", "--config", str(self.config),
                cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=log)
        self.starts += 1
        await self.serving()

    async def serving(self, seconds: float = 30.0) -> None:
        """Wait (bounded) until gRPC health says SERVING."""
        deadline = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.returncode is not None:
                    raise RuntimeError(f"bridge {self.n} exited with {self.proc.returncode}; see {self.log}")
                try:
                    r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"bridge {self.n} did not serve within {seconds:g}s; see {self.log}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, seconds: float = 60.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), seconds)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                await self.wait(30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Caller:
    """One stream of numbered rows at ``rate`` rows/s through bridge.client, to every bridge by name."""

    def __init__(self, k: int, target: str, rate: int, batch: int, keepalive: float) -> None:
        self.k, self.target, self.rate, self.batch = k, target, rate, batch
        self.keepalive = keepalive
        self.producing = True
        self.sent: dict[int, range] = {}  # sequence -> its row ids
        self.acked: set[int] = set()
        self.refused = 0
        self.totals: sdk.Totals | None = None
        self.error: str | None = None

    async def requests(self):
        seq = 0
        interval = self.batch / self.rate
        while self.producing:
            ids = range(self.k * STRIDE + seq * self.batch, self.k * STRIDE + (seq + 1) * self.batch)
            req = pb.IngestRequest(route=ROUTE, sequence=seq)
            req.json.objects.extend(b'{"id":%d}' % i for i in ids)
            self.sent[seq] = ids
            seq += 1
            yield req
            await asyncio.sleep(interval)

    def on_ack(self, ack: pb.BatchAck) -> None:
        if ack.status.code == 0 and ack.rejected == 0:
            self.acked.update(self.sent[ack.sequence])
        else:
            self.refused += 1

    async def run(self) -> None:
        conn = Connection(keepalive=self.keepalive, keepalive_timeout=self.keepalive)
        try:
            self.totals = await sdk.stream(self.target, self.requests(), window=8, on_ack=self.on_ack,
                                           connection=conn,
                                           reconnect=Reconnect(initial=0.05, max_backoff=0.5, give_up_after=60))
        except grpc.aio.AioRpcError as e:
            self.error = f"{e.code().name}: {e.details()}"


async def scenario(bridges: list[Bridge], cutoff: float, pause: float, log) -> None:
    await asyncio.sleep(pause)
    for b in bridges:  # a rolling update: one at a time, the next once this one serves again
        log(f"SIGTERM bridge {b.n}")
        b.signal(signal.SIGTERM)
        rc = await b.wait()
        log(f"bridge {b.n} exited {rc}; starting it again")
        await b.start()
        await asyncio.sleep(pause)
    victim = bridges[1]
    log(f"SIGKILL bridge {victim.n}")
    victim.signal(signal.SIGKILL)
    await victim.wait()
    await asyncio.sleep(pause / 2)
    await victim.start()
    await asyncio.sleep(pause)
    frozen = bridges[2]
    log(f"cutting bridge {frozen.n} off for {cutoff:g}s (SIGSTOP)")
    frozen.signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(cutoff)
    finally:
        frozen.signal(signal.SIGCONT)
    log(f"bridge {frozen.n} resumed")
    await asyncio.sleep(pause)


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bridge-roll-"))

    def log(msg: str) -> None:
        if args.verbose:
            print(f"{time.monotonic() - started:6.1f}s {msg}", file=sys.stderr, flush=True)

    ch = ClickHouse().start()
    bridges: list[Bridge] = []
    callers: list[Caller] = []
    try:
        ch.query(f"CREATE TABLE {ROUTE} (id UInt64) ENGINE = MergeTree() ORDER BY id")
        url = ch.insert_url(ROUTE)
        bridges = [Bridge(n, workdir, url, args.grace) for n in range(3)]
        await asyncio.gather(*(b.start() for b in bridges))
        # Each caller lists the bridges from a different one, as DNS answers rotate: round robin starts
        # with the first address, so the callers' first streams spread over the bridges.
        addrs = [f"127.0.0.1:{b.port}" for b in bridges]
        callers = [Caller(k, ",".join(addrs[k % 3:] + addrs[:k % 3]), args.rate, args.batch, args.keepalive)
                   for k in range(args.callers)]
        running = [asyncio.create_task(c.run()) for c in callers]
        await scenario(bridges, args.cutoff, args.pause, log)
        for c in callers:
            c.producing = False
        await asyncio.wait_for(asyncio.gather(*running), 120)
        ids = [int(x) for x in ch.query(f"SELECT id FROM {ROUTE} FORMAT TabSeparated").split()]
    finally:
        for b in bridges:
            await b.stop()
        ch.stop()
    acked = set().union(*(c.acked for c in callers))
    stored = set(ids)
    missing = len(acked - stored)
    errors = [c.error for c in callers if c.error]
    sent = sum(len(c.sent) * args.batch for c in callers)
    resent = sum(c.totals.resent for c in callers if c.totals)
    streams = sum(c.totals.streams for c in callers if c.totals)
    print(f"roll_test: bridges=3 callers={len(callers)} restarts={sum(b.starts for b in bridges) - 3} "
          f"cutoff={args.cutoff:g}s sent_rows={sent} acked_rows={len(acked)} rows_in_clickhouse={len(ids)} "
          f"acked_missing={missing} duplicates={len(ids) - len(stored)} streams={streams} batches_resent={resent} "
          f"refused_acks={sum(c.refused for c in callers)} caller_errors={len(errors)} "
          f"elapsed={time.monotonic() - started:.0f}s", flush=True)
    for e in errors:
        print("  caller error:", e, file=sys.stderr)
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"  work directory kept: {workdir}", file=sys.stderr)
    return 1 if missing or errors or len(acked) < sent else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="the suite's version: a 3 s cut-off, short pauses")
    p.add_argument("--cutoff", type=float, help="seconds one bridge is stopped (SIGSTOP); default 10 (--short: 3)")
    p.add_argument("--pause", type=float, help="seconds between events; default 2 (--short: 0.5)")
    p.add_argument("--callers", type=int, default=3, help="concurrent caller streams (default 3)")
    p.add_argument("--rate", type=int, default=2000, help="rows per second per caller")
    p.add_argument("--batch", type=int, default=100, help="rows per request")
    p.add_argument("--grace", default="5s", help="the bridges' limits.shutdown_grace")
    p.add_argument("--keepalive", type=float, default=1.0,
                   help="callers' keepalive ping interval and timeout, seconds (finds the cut-off bridge)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (bridge logs)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the events as they happen")
    args = p.parse_args(argv)
    args.cutoff = args.cutoff if args.cutoff is not None else (3.0 if args.short else 10.0)
    args.pause = args.pause if args.pause is not None else (0.5 if args.short else 2.0)
    if not available():
        print("roll_test: clickhouse-server is not installed (apt-get install clickhouse-server)", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
