"""The load client: pre-serialized requests over IngestStream, and what one measured run records."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib.procs import BENCH, Proc, client_cpu_seconds, http_json, machine_busy_seconds

ROWS_PER_MESSAGE = 1000
SCENARIOS = ("columns", "messages", "rows", "json")


def build_requests(shape: str, n_messages: int, desc_cls) -> list[bytes]:
    from bridge.dev import sample

    make = sample.SHAPES[shape]
    out = []
    for m in range(n_messages):
        ids = range(m * ROWS_PER_MESSAGE, (m + 1) * ROWS_PER_MESSAGE)
        req = make("bench", m, ids, desc_cls) if shape == "messages" else make("bench", m, ids)
        out.append(req.SerializeToString())
    return out


async def drive(port: int, payloads: list[bytes], streams: int, timeout: float) -> tuple[float, int]:
    """Send every payload over `streams` concurrent IngestStream calls; seconds until the last ack, acked rows."""
    import grpc

    from bridge.proto import pb

    # A local subchannel pool per channel: one TCP connection per stream. Channels of one process otherwise
    # share one connection, and a bridge of several workers (SO_REUSEPORT spreads connections, not streams)
    # would serve all the streams in one worker.
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(streams)]
    share = [payloads[i::streams] for i in range(streams)]
    accepted = 0

    async def one(ch, mine: list[bytes]) -> None:
        nonlocal accepted
        call = ch.stream_stream("/ingestbridge.v1.IngestService/IngestStream",
                                request_serializer=lambda b: b, response_deserializer=pb.BatchAck.FromString)

        async def gen():
            for p in mine:
                yield p

        async for ack in call(gen()):
            accepted += ack.accepted

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(c, s) for c, s in zip(channels, share, strict=True))), timeout)
    dt = time.perf_counter() - t0
    for c in channels:
        await c.close()
    return dt, accepted


@dataclass
class Result:
    name: str
    rows_per_s: list[float] = field(default_factory=list)
    cpu_us_per_row: list[float] = field(default_factory=list)
    client_us_per_row: list[float] = field(default_factory=list)
    client_share: list[float] = field(default_factory=list)  # the load client's CPU seconds per second
    bridge_share: list[float] = field(default_factory=list)  # the bridge's (all its processes)
    machine_busy: list[float] = field(default_factory=list)  # every core's busy share, anyone's work
    mb_in: list[float] = field(default_factory=list)
    mb_out: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)

    def med(self, attr: str) -> float:
        values = getattr(self, attr)
        return statistics.median(values) if values else float("nan")


def write_payloads(path: Path, payloads: list[bytes]) -> Path:
    """Requests, length-prefixed, for client processes to read (``roles.read_bodies``)."""
    with path.open("wb") as f:
        for raw in payloads:
            f.write(len(raw).to_bytes(8, "little") + raw)
    return path


def role_client(port: int, payloads_path: str, streams: int, timeout: float) -> None:
    """A load client process: says ``ready``, waits for a line on stdin, drives its share, prints its figures."""
    from benchlib.roles import read_bodies

    payloads = read_bodies(Path(payloads_path))
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0 = client_cpu_seconds()
    dt, accepted = asyncio.run(drive(port, payloads, streams, timeout))
    print(json.dumps({"dt": dt, "accepted": accepted, "cpu": client_cpu_seconds() - cpu0}), flush=True)


def drive_processes(port: int, payloads: list[bytes], streams: int, timeout: float, clients: int,
                    tmp: Path) -> tuple[float, int, float]:
    """``drive`` split over ``clients`` processes started together: wall seconds, acked rows, their CPU seconds."""
    procs = []
    for i in range(clients):
        mine = write_payloads(tmp / f"client-{i}.payloads", payloads[i::clients])
        procs.append(subprocess.Popen(
            [sys.executable, str(BENCH), "--role", "client", "--port", str(port), "--bodies", str(mine),
             "--streams", str(max(1, streams // clients)), "--timeout", str(timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a load client process did not start")
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        out = [json.loads(p.stdout.readline()) for p in procs]
        dt = time.perf_counter() - t0
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout)
    return dt, sum(o["accepted"] for o in out), sum(o["cpu"] for o in out)


def measure(target: Proc, port: int, payloads: list[bytes], streams: int, sink: str, result: Result,
            timeout: float, clients: int = 1, tmp: Path | None = None) -> None:
    """One run: every payload through ``target``; rows/s, the target's and the load client's CPU, MB/s, RSS."""
    http_json(sink + "/_reset", "POST")
    cpu0, busy0 = target.cpu_seconds(), machine_busy_seconds()
    if clients > 1 and tmp is not None:
        dt, accepted, client = drive_processes(port, payloads, streams, timeout, clients, tmp)
    else:
        client0 = client_cpu_seconds()
        dt, accepted = asyncio.run(drive(port, payloads, streams, timeout))
        client = client_cpu_seconds() - client0
    cpu = target.cpu_seconds() - cpu0
    busy = machine_busy_seconds() - busy0
    stats = http_json(sink + "/_stats")
    rows = len(payloads) * ROWS_PER_MESSAGE
    if accepted != rows or stats["rows"] != rows:
        raise RuntimeError(f"{result.name}: acked {accepted}, sink got {stats['rows']} of {rows} rows")
    result.rows_per_s.append(rows / dt)
    result.cpu_us_per_row.append(cpu / rows * 1e6)
    result.client_us_per_row.append(client / rows * 1e6)
    result.client_share.append(client / dt)
    result.bridge_share.append(cpu / dt)
    result.machine_busy.append(min(1.0, busy / dt / (os.cpu_count() or 1)))  # jiffies vs wall clock: rounding
    result.mb_in.append(sum(map(len, payloads)) / dt / 1e6)
    result.mb_out.append(stats["bytes"] / dt / 1e6)
    result.rss.append(target.peak_rss())


def configs(args) -> list[tuple[str, str, int, str | None]]:
    """(name, transcoder, workers, transcode threads) of each bridge measured."""
    out = []
    for t in args.transcoders:
        for w in args.workers:
            for n in args.threads or [None]:
                tag = f" t{n}" if len(args.threads) > 1 else ""
                out.append((f"{t} x{w}{tag}", t, w, n))
    return out


def paired(mine: list[float], floor: list[float]) -> float:
    """The median ratio of runs of the same number (as many as both have)."""
    return statistics.median(a / b for a, b in zip(mine, floor, strict=False))
