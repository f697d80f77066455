"""Abusive callers against a running bridge: its memory must stay under its caps and honest callers served.

    python scripts/abuse.py [--streams 1000] [--trickle 300] [--seconds 10]

Processes on loopback: a local HTTP target (``ingest-bridge emulate http``), the
bridge (``ingest-bridge serve``, default limits) and this script. Phases, each
bounded in time:

* streams that never read their acks: ``--streams`` IngestStream calls over
  ten connections, each writing requests as fast as the bridge takes them and
  reading nothing;
* connections that trickle the HTTP/2 preface one byte at a time and never
  finish it (``--trickle`` of them);
* calls past ``limits.max_calls``.

Meanwhile an honest caller sends one small batch a second. Prints one line per
phase: the bridge's RSS before and at its peak, what the abusers got, and the
honest caller's worst latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.dev import sample
from bridge.proto import pb_grpc

# Each channel its own connection, as separate client processes would have (gRPC shares one by default).
OWN = [("grpc.use_local_subchannel_pool", 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def buffered(http_port: int) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
            return json.loads(r.read())["buffered_bytes"]
    except urllib.error.HTTPError as e:  # 503: full, which is what this measures
        return json.loads(e.read())["buffered_bytes"]
    except OSError:
        return 0


class Peak:
    """Samples a process's RSS every 50 ms, and its buffered bytes every 250 ms, while a phase runs."""

    def __init__(self, pid: int, http_port: int) -> None:
        self.pid, self.http_port, self.peak, self.buffered, self._task = pid, http_port, 0.0, 0, None

    async def __aenter__(self) -> Peak:
        async def sample_loop() -> None:
            n = 0
            while True:
                self.peak = max(self.peak, rss_mib(self.pid))
                if n % 5 == 0:
                    self.buffered = max(self.buffered, await asyncio.to_thread(buffered, self.http_port))
                n += 1
                await asyncio.sleep(0.05)

        self._task = asyncio.create_task(sample_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()


async def honest(target: str, stop: asyncio.Event, worst: list[float]) -> None:
    async with grpc.aio.insecure_channel(target, options=OWN) as ch:
        stub = pb_grpc.IngestServiceStub(ch)
        seq = 0
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                await stub.IngestBatch(sample.json_request("r", seq, range(10)), timeout=10)
                worst.append(time.monotonic() - t0)
            except grpc.aio.AioRpcError as e:
                worst.append(float("inf"))
                print(f"  honest caller after {time.monotonic() - t0:.1f}s: {e.code().name}: {e.details()}",
                      file=sys.stderr)
            seq += 1
            await asyncio.sleep(1.0)


async def never_read(target: str, streams: int, seconds: float) -> dict:
    channels = [grpc.aio.insecure_channel(target, options=OWN) for _ in range(10)]
    written = refused = 0
    end = time.monotonic() + seconds

    async def one(ch: grpc.aio.Channel, k: int) -> None:
        nonlocal written, refused
        call = pb_grpc.IngestServiceStub(ch).IngestStream()
        seq = 0
        try:
            while time.monotonic() < end:  # bounded in time
                await asyncio.wait_for(call.write(sample.json_request("r", seq, range(k * 1000, k * 1000 + 100))),
                                       max(0.01, end - time.monotonic()))
                written += 1
                seq += 1
        except TimeoutError:
            pass  # the bridge stopped reading this stream: what the limit is for
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                refused += 1
        finally:
            call.cancel()

    await asyncio.gather(*(one(channels[i % 10], i) for i in range(streams)))
    for ch in channels:
        await ch.close()
    return {"requests_written": written, "calls_refused": refused}


async def trickle(port: int, n: int, seconds: float) -> dict:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    closed = 0
    loop = asyncio.get_running_loop()

    async def one() -> None:
        nonlocal closed
        s = socket.socket()
        s.setblocking(False)
        try:
            await loop.sock_connect(s, ("127.0.0.1", port))
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end:  # bounded in time
                if i < len(preface) - 1:  # never the last byte
                    await loop.sock_sendall(s, preface[i:i + 1])
                    i += 1
                try:
                    data = await asyncio.wait_for(loop.sock_recv(s, 4096), 0.1)
                except TimeoutError:
                    continue
                if not data:
                    closed += 1
                    return
        except OSError:
            closed += 1
        finally:
            s.close()

    await asyncio.gather(*(one() for _ in range(n)))
    return {"connections": n, "closed_by_bridge": closed}


async def main_async(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bridge-abuse-"))
    sink_port, port, http_port = free_port(), free_port(), free_port()
    cfg = tmp / "bridge.yaml"
    cfg.write_text(json.dumps({
        "listen": f"127.0.0.1:{port}", "http": f"127.0.0.1:{http_port}",
        "limits": {"handshake_timeout": f"{args.handshake}s"},
        "routes": {"r": {"dialect": "http", "url": f"http://127.0.0.1:{sink_port}/in"}},
    }))
    with open(tmp / "bridge.log", "wb") as log:  # the child keeps its own descriptor
        procs = [subprocess.Popen([sys.executable, "-m", "bridge", "emulate", "http", "--port", str(sink_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                 subprocess.Popen([sys.executable, "-m", "bridge", "--log-level", "warning", "serve", "--config",
                                   str(cfg)], stdout=subprocess.DEVNULL, stderr=log)]
    bridge = procs[1]
    target = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(target) as ch:
            await asyncio.wait_for(ch.channel_ready(), 30)
        stop = asyncio.Event()
        worst: list[float] = []
        honest_task = asyncio.create_task(honest(target, stop, worst))
        await asyncio.sleep(1.5)
        for name, phase in (
            (f"{args.streams} streams never reading acks", never_read(target, args.streams, args.seconds)),
            (f"{args.trickle} connections trickling the preface", trickle(port, args.trickle, args.seconds)),
            ("calls past limits.max_calls (1000)", never_read(target, 1100, args.seconds / 2)),
        ):
            before = rss_mib(bridge.pid)
            worst.clear()
            async with Peak(bridge.pid, http_port) as peak:
                result = await phase
            await asyncio.sleep(1.0)
            ok = [w for w in worst if w != float("inf")]
            print(f"abuse: {name}: bridge RSS {before:.0f} -> peak {peak.peak:.0f} MiB, buffered peak "
                  f"{peak.buffered / 2**20:.0f} MiB (cap 128); {result}; honest caller "
                  f"{len(ok)}/{len(worst)} ok, worst {max(ok, default=0) * 1000:.0f} ms", flush=True)
        stop.set()
        await honest_task
        alive = bridge.poll() is None
        print(f"abuse: bridge {'still serving' if alive else 'EXITED'}", flush=True)
        return 0 if alive else 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--trickle", type=int, default=300)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    p.add_argument("--handshake", type=float, default=5.0, help="the bridge's limits.handshake_timeout, seconds")
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
