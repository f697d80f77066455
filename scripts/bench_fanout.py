"""CPU of reading requests on a fan-out route: ``RoutePipeline.prepare`` per request, 1 target against 2.

In process, no network: the cost that grows with the number of targets is each target's transcode of every
request. Two targets of the same dialect and options share one transcode; Timeplus beside http has its own.

Usage (from a checkout's root): PYTHONPATH=. python scripts/bench_fanout.py [--requests 300] [--rows 1000] [--runs 5]
Prints the median microseconds per request of each route shape over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml

from bridge.config import parse_config
from bridge.proto import pb
from bridge.route.pipeline import RoutePipeline
from bridge.send.transport import Transport

HTTP = {"dialect": "http", "url": "http://127.0.0.1:9/in"}
TP = {"dialect": "timeplus", "url": "http://127.0.0.1:9/default", "target": "kv",
      "auth": {"username": "u", "password": "p"}}
SHAPES = {
    "1 target (http)": {"targets": [{"name": "a", **HTTP}]},
    "2 targets (http, http)": {"targets": [{"name": "a", **HTTP}, {"name": "b", **HTTP}]},
    "2 targets (http, timeplus)": {"targets": [{"name": "a", **HTTP}, {"name": "b", **TP}]},
}


def request(rows: int) -> bytes:
    req = pb.IngestRequest(route="r", sequence=1)
    req.rows.columns.extend(["k", "v", "s"])
    for i in range(rows):
        req.rows.rows.add().values.extend([pb.Value(string=f"key-{i}"), pb.Value(int=i), pb.Value(double=i / 3)])
    return req.SerializeToString()


def per_request(route: dict, raw: bytes, n: int) -> float:
    config = parse_config(yaml.safe_dump({"routes": {"r": route}}), env={})
    pipe = RoutePipeline(config.routes["r"], Transport())
    parsed = pb.IngestRequest.FromString(raw)
    pipe.prepare(parsed, len(raw), raw)  # warm up
    start = time.process_time()
    for _ in range(n):
        pipe.prepare(parsed, len(raw), raw)
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    raw = request(args.rows)
    for name, route in SHAPES.items():
        times = [per_request(route, raw, args.requests) for _ in range(args.runs)]
        print(f"{name:28s} {statistics.median(times):9.0f} us/request (median of {args.runs}; "
              f"{min(times):.0f}..{max(times):.0f})")


if __name__ == "__main__":
    main()
