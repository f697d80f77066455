"""Benchmark: rows/s, CPU per row, latency and memory of the bridge, against its references.

Processes on loopback: a sink (aiohttp, counts rows), the bridge (``ingest-bridge
serve``), and this script as the load client (pre-serialized requests over
IngestStream, several streams). In the same run, the references:

* transport floor: grpc.aio in, aiohttp out of pre-encoded NDJSON bodies of
  the same rows (no decode, no encode), batched as the bridge batches them;
  bridge/floor says what converting rows and the bridge's features cost;
* sdk: the axiom-py SDK ingesting the same rows into the same sink;
* http: pre-encoded bodies posted straight to the sink (the HTTP ceiling);
* k6: a third-party gRPC load generator against the bridge (if `k6` is installed).

Usage: python scripts/bench.py --report BENCHMARKS.md     (the full run: rewrites the figures and the chart,
                                                          keeps the notes below the file's notes line)
       python scripts/bench.py [--quick] [--runs N] [--workers 1,2] [--transcoder native,python]
       [--scenarios rows,columns] [--declared] [--format csv] [--clients N] [--streams N]
       [--transcode-threads 0,2] [--throughput-only]
Every load loop is bounded in rows and time; only 127.0.0.1 is used. The parts are in scripts/benchlib/.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib.load import SCENARIOS, Result, build_requests, configs, measure, role_client  # noqa: E402
from benchlib.procs import (  # noqa: E402
    BENCH,
    DECLARED_COLUMNS,
    FORMS,
    Proc,
    bridge_config,
    free_port,
    start_bridge,
    start_sink,
    wait_port,
)
from benchlib.refs import run_http_ceiling, run_k6, run_latency, run_sdk, run_stall  # noqa: E402
from benchlib.report import chart, report, write  # noqa: E402
from benchlib.roles import role_floor, role_sink, write_bodies  # noqa: E402


def run_throughput(args, sink: str, desc: Path, tmp: Path) -> dict[str, Result]:
    """Every bridge configuration and the transport floor of each shape, all started at once and measured in
    turn within each run, so that the machine's drift touches each alike and ratios pair runs of one round."""
    from bridge.dev import sample

    cls = sample.click_class()
    payloads = {s: build_requests(s, args.messages, cls) for s in args.scenarios}
    targets: dict[str, tuple[Proc, int]] = {}
    results: dict[str, Result] = {}
    try:
        for name, t, workers, threads in configs(args):
            port = free_port()
            cfg = tmp / f"bridge-{name.replace(' ', '-')}.yaml"
            bridge_config(cfg, port, sink, desc, columns=DECLARED_COLUMNS if args.declared else "",
                          form=args.format)
            targets[name] = (start_bridge(cfg, workers, t, threads), port)
        for s in args.scenarios:
            bodies = write_bodies(tmp / f"{s}.bodies", payloads[s], desc)
            port = free_port()
            targets[f"floor {s}"] = (Proc([sys.executable, str(BENCH), "--role", "floor", "--port", str(port),
                                           "--sink", sink + "/ingest", "--bodies", str(bodies)]), port)
        for _, port in targets.values():
            wait_port(port)
        for run in range(args.runs):
            for s in args.scenarios:
                for name, (proc, port) in targets.items():
                    if name.startswith("floor ") and name != f"floor {s}":
                        continue
                    key = f"{s} floor" if name.startswith("floor ") else f"{s} {name}"
                    r = results.setdefault(key, Result(key))
                    measure(proc, port, payloads[s], args.streams, sink, r, args.timeout, args.clients, tmp)
                    print(f"  run {run + 1} {key}: {r.rows_per_s[-1]:,.0f} rows/s, bridge {r.cpu_us_per_row[-1]:.2f} "
                          f"us/row ({r.bridge_share[-1]:.0%} of a core), client {r.client_us_per_row[-1]:.2f} us/row "
                          f"({r.client_share[-1]:.0%}), machine busy {r.machine_busy[-1]:.0%}",
                          flush=True)
    finally:
        for proc, _ in targets.values():
            proc.stop()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=["sink", "floor", "client"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sink", help=argparse.SUPPRESS)
    p.add_argument("--bodies", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="a short run (under 60 s); writes no files")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--messages", type=int, default=400, help="messages of 1000 rows per scenario and run")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--rate", type=int, default=10_000, help="rows/s for the latency run")
    p.add_argument("--latency-seconds", type=float, default=10)
    p.add_argument("--callers", type=int, default=100)
    p.add_argument("--stall-seconds", type=float, default=8)
    p.add_argument("--stall-messages", type=int, default=50)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--clients", type=int, default=1,
                   help="load client processes (default 1: this process); the streams are shared among them")
    p.add_argument("--transcode-threads", default="",
                   help="INGEST_BRIDGE_TRANSCODE_THREADS for the bridges, comma-separated to compare (default: "
                        "the bridge's own default)")
    p.add_argument("--report", "--out", dest="out", default=str(ROOT / "BENCHMARKS.md"),
                   help="where the full run writes its report (and its chart beside it); default BENCHMARKS.md")
    p.add_argument("--transcoder", default="",
                   help="transcoders to measure, comma-separated: native,python (python: INGEST_BRIDGE_PURE=1); "
                        "default both where the native one is built")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="payload shapes to measure")
    p.add_argument("--declared", action="store_true",
                   help="the bench route declares the sample's columns (rows validated against them)")
    p.add_argument("--format", default="ndjson", choices=list(FORMS),
                   help="the bench route's body: http NDJSON, http CSV, or Timeplus compact (throughput runs)")
    p.add_argument("--throughput-only", action="store_true",
                   help="bridge and floor throughput only: no references, latency or stall runs; writes no files")
    args = p.parse_args()
    if args.role == "sink":
        role_sink(args.port)
        return 0
    if args.role == "floor":
        role_floor(args.port, args.sink, args.bodies)
        return 0
    if args.role == "client":
        role_client(args.port, args.bodies, args.streams, args.timeout)
        return 0
    if args.quick:
        args.runs, args.messages, args.workers = 1, 60, "1"
        args.latency_seconds, args.callers, args.stall_seconds, args.stall_messages = 3, 20, 3, 10
    args.workers = [int(x) for x in str(args.workers).split(",")]
    args.scenarios = [x for x in args.scenarios.split(",") if x]
    args.threads = [x for x in args.transcode_threads.split(",") if x]
    from bridge.transcode.native import _native

    args.transcoders = [x for x in args.transcoder.split(",") if x] or (
        ["native", "python"] if _native is not None else ["python"])
    if "native" in args.transcoders and _native is None:
        print("bench: the native transcoder is not built (see README)", file=sys.stderr)
        return 2
    # The references (latency, stall, k6) run the first transcoder named; the bridge inherits this.
    os.environ["INGEST_BRIDGE_PURE"] = "1" if args.transcoders[0] == "python" else "0"
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ingest-bridge-bench-") as tmpname:
        tmp = Path(tmpname)
        from bridge.dev import sample

        desc = sample.write_descriptor_set(tmp / "click.desc")
        sink_proc, sink = start_sink()
        try:
            print("throughput (bridge and floor):", flush=True)
            results = run_throughput(args, sink, desc, tmp)
            if args.throughput_only:
                print()
                print(report(args, results, {}, time.monotonic() - t0))
                return 0
            extra: dict = {}
            print("references:", flush=True)
            extra["http"] = run_http_ceiling(args, sink)
            extra["sdk"] = run_sdk(args, sink)
            extra["k6"] = None if args.quick else run_k6(args, tmp, sink, desc)
            print("latency at a fixed load:", flush=True)
            extra["latency"] = run_latency(args, sink, desc, tmp)
            print("memory under a stalled sink:", flush=True)
            extra["stall"] = run_stall(args, sink, desc, tmp)
        finally:
            sink_proc.stop()
    text = report(args, results, extra, time.monotonic() - t0)
    print()
    print(text)
    if not args.quick:
        out = Path(args.out)
        if chart(results, out.with_suffix(".png")):
            text += f"\n![rows/s by scenario]({out.with_suffix('.png').name})\n"
        write(out, text)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
