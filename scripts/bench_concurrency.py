"""Benchmark: adaptive concurrency against fixed limits, on a target of limited capacity.

The target is the faulty emulator with its capacity rule: it serves ``--capacity`` requests at a time, answers
503 to any more, and a request it serves takes ``--latency`` plus ``--per-request`` for each one in flight
(so its latency rises with load and its throughput levels off near capacity). The bridge (in this process,
real gRPC and HTTP over 127.0.0.1) has one route per run; callers stream ``--requests`` messages of
``--rows`` rows (one batch each), several streams with acks outstanding, so the route always has work.

For each setting (fixed limits, then ``adaptive``) it prints rows/s, the 503s the target gave as a share of
the requests it got, and the route's limit at the end; then adaptive's throughput as a share of the best
fixed setting's. Every run is bounded in rows; only 127.0.0.1 is used.

Usage: python scripts/bench_concurrency.py [--capacity 16] [--requests 3000] [--fixed 4,8,16,32,64]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bridge.config import parse_config  # noqa: E402
from bridge.dev import sample  # noqa: E402
from bridge.dev.emulators.faulty import FaultyTarget  # noqa: E402
from bridge.ingest.server import Bridge  # noqa: E402
from bridge.proto import pb_grpc  # noqa: E402


async def run(concurrency: object, args: argparse.Namespace) -> dict:
    target = FaultyTarget()
    await target.start()
    target.script({"capacity": args.capacity, "latency": args.latency, "per_request": args.per_request})
    route = {"dialect": "http", "url": target.url + "/in", "options": {"format": "ndjson"},
             "batch": {"max_rows": args.rows, "linger": "0s"},
             "delivery": {"concurrency": concurrency, "initial_backoff": "20ms", "max_backoff": "500ms",
                          "timeout": "10s", "max_elapsed": "120s"}}
    doc = {"listen": "127.0.0.1:0", "http": None, "routes": {"r": route}}
    bridge = Bridge(parse_config(yaml.safe_dump(doc), env={}), http=False)
    await bridge.start()
    import grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}")
    stub = pb_grpc.IngestServiceStub(channel)
    per_stream = args.requests // args.streams
    acked = failed = 0

    async def stream(s: int) -> None:
        nonlocal acked, failed
        window = asyncio.Semaphore(args.window)

        async def gen():
            for m in range(per_stream):
                await window.acquire()
                lo = (s * per_stream + m) * args.rows
                yield sample.json_request("r" if m == 0 else "", m, range(lo, lo + args.rows))

        async for ack in stub.IngestStream(gen()):
            window.release()
            if ack.status.code == 0:
                acked += ack.accepted
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(stream(s) for s in range(args.streams)))
    elapsed = time.perf_counter() - started
    lim = bridge.routes["r"].limiter
    limit = lim.limit
    await channel.close()
    await bridge.stop(grace=1.0)
    await target.stop()
    requests = len(target.requests)
    return {"setting": str(concurrency), "rows_per_s": acked / elapsed, "seconds": elapsed, "rows": acked,
            "failed_acks": failed, "requests": requests, "refused": target.refused,
            "refused_pct": 100.0 * target.refused / max(1, requests), "limit_at_end": limit,
            "peak_in_flight": target.peak_in_flight, "mean_load": target.served_load / max(1, target.served),
            "changes": f"+{lim.increases}/-{lim.decreases}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capacity", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds at no load")
    ap.add_argument("--per-request", type=float, default=0.005, help="seconds added per request in flight")
    ap.add_argument("--requests", type=int, default=3000, help="messages (= batches) per run")
    ap.add_argument("--rows", type=int, default=50, help="rows per message and per batch")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--window", type=int, default=64, help="acks outstanding per stream")
    ap.add_argument("--fixed", default="4,8,16,32,64", help="fixed limits to compare")
    ap.add_argument("--max", type=int, default=64, help="adaptive's upper bound")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    settings: list[object] = [int(x) for x in args.fixed.split(",") if x]
    settings.append({"min": 1, "max": args.max})
    results = []
    for setting in settings:
        r = asyncio.run(run(setting, args))
        results.append(r)
        print(f"{r['setting']:>22}: {r['rows_per_s']:9.0f} rows/s  {r['seconds']:6.1f}s  requests {r['requests']:6d}"
              f"  refused {r['refused']:5d} ({r['refused_pct']:5.2f} %)  limit at end {r['limit_at_end']:3d}"
              f"  mean load served {r['mean_load']:5.1f}  limit changes {r['changes']}", flush=True)
    fixed = [r for r in results if not r["setting"].startswith("{")]
    best = max(fixed, key=lambda r: r["rows_per_s"])
    adaptive = results[-1]
    print(f"best fixed: {best['setting']} at {best['rows_per_s']:.0f} rows/s; adaptive reaches "
          f"{100 * adaptive['rows_per_s'] / best['rows_per_s']:.1f} % of it with "
          f"{adaptive['refused_pct']:.2f} % of requests refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
