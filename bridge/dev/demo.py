"""``ingest-bridge demo``: the bridge and a local target on loopback, rows flowing end to end.

No account and no config: an emulator of the chosen dialect starts on a free
port, the bridge starts with one route to it, and sample rows go through
every payload shape over IngestStream. It prints what arrived and checks
every row, exiting non-zero if anything is missing or different.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

import grpc
import yaml

from bridge.config import parse_config
from bridge.dev import sample
from bridge.dev.emulators import EMULATORS
from bridge.ingest.server import Bridge
from bridge.proto import pb, pb_grpc


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


async def _stream(stub, requests: list[pb.IngestRequest]) -> list[pb.BatchAck]:
    async def gen():
        for r in requests:
            yield r

    return [ack async for ack in stub.IngestStream(gen())]


async def run(dialect: str = "http", rows: int = 100_000, batch_rows: int = 1000, out: TextIO = sys.stdout) -> int:
    if rows < 1 or batch_rows < 1:
        print(f"rows and batch_rows must be at least 1, got {rows} and {batch_rows}", file=out)
        return 2
    if dialect not in EMULATORS:
        print(f"no local target for dialect {dialect!r}; known: {', '.join(sorted(EMULATORS))}", file=out)
        return 2
    emulator = EMULATORS[dialect]()
    await emulator.start()
    with tempfile.TemporaryDirectory(prefix="ingest-bridge-demo-") as tmp:
        desc = sample.write_descriptor_set(Path(tmp) / "click.desc")
        route = emulator.demo_route()
        route.setdefault("options", {})["descriptor_set"] = str(desc)
        route.setdefault("batch", {"max_rows": 5000, "linger": "20ms"})
        config = parse_config(
            yaml.safe_dump({"listen": "127.0.0.1:0", "http": None, "routes": {"demo": route}}, sort_keys=False), env={},
            source="<demo>",
        )
        bridge = Bridge(config, http="127.0.0.1:0")
        await bridge.start()
        print(f"ingest-bridge demo: bridge on 127.0.0.1:{bridge.port}, local {dialect} target on "
              f"{emulator.url}", file=out)
        shapes = list(sample.SHAPES)
        per_shape = rows // len(shapes)
        report = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}") as channel:
                stub = pb_grpc.IngestServiceStub(channel)
                start_all = time.perf_counter()
                start_id = 0
                for i, shape in enumerate(shapes):
                    n = per_shape if i < len(shapes) - 1 else rows - per_shape * (len(shapes) - 1)
                    make = sample.SHAPES[shape]
                    requests = [
                        make("demo" if seq == 0 else "", seq, range(lo, min(start_id + n, lo + batch_rows)))
                        for seq, lo in enumerate(range(start_id, start_id + n, batch_rows))
                    ]
                    t0 = time.perf_counter()
                    acks = await _stream(stub, requests)
                    dt = time.perf_counter() - t0
                    failed = [a for a in acks if a.status.code != 0]
                    report.append((shape, n, len(acks), sum(a.accepted for a in acks), n / dt if dt else 0.0,
                                   failed))
                    start_id += n
                elapsed = time.perf_counter() - start_all
            metrics = _metrics_line(bridge)
        finally:
            await bridge.stop()
            stats = bridge.routes["demo"].stats
            await emulator.stop()
    print(f"{'shape':<10}{'rows':>10}{'acks':>7}{'accepted':>10}{'rows/s':>12}", file=out)
    for shape, n, nacks, accepted, rate, _ in report:
        print(f"{shape:<10}{n:>10}{nacks:>7}{accepted:>10}{rate:>12,.0f}", file=out)
    arrived = emulator.rows
    print(
        f"target received {len(arrived)} rows in {len(emulator.requests)} requests "
        f"({stats.batches_sent} batches), {_fmt_bytes(emulator.bytes_in)} on the wire; "
        f"{rows / elapsed:,.0f} rows/s end to end",
        file=out,
    )
    print(metrics, file=out)
    faults = getattr(emulator, "faults", 0)
    if faults:
        print(f"the target failed {faults} requests on purpose (two 503s, a reset, 429, 500); the bridge retried each",
              file=out)
    problems = [f"{shape}: batch {a.sequence} failed: {a.status.message}" for shape, *_, failed in report
                for a in failed[:3]]
    problems += _check(arrived, rows)
    if problems:
        for p in problems[:10]:
            print("PROBLEM:", p, file=out)
        return 1
    print(f"all {rows} rows arrived intact", file=out)
    return 0


def _metrics_line(bridge: Bridge) -> str:
    """The counters of every stage, as /metrics showed them at the end of the run."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(bridge.metrics.render().decode()):
        for s in family.samples:
            if s.name.endswith("_total"):
                key = s.name.removeprefix("ingest_bridge_").removesuffix("_total")
                totals[key] = totals.get(key, 0) + s.value
    shown = ", ".join(f"{k} {int(v)}" for k, v in sorted(totals.items()))
    return f"metrics (http://127.0.0.1:{bridge.http_port}/metrics while it ran): {shown}"


def _check(arrived: list, rows: int) -> list[str]:
    """Every id once, and every row equal to what was sent."""
    problems = []
    by_id: dict[int, dict] = {}
    for r in arrived:
        by_id.setdefault(r.get("id"), r)
    missing = rows - len(by_id.keys() & set(range(rows)))
    if missing:
        problems.append(f"{missing} rows missing at the target")
    if len(arrived) != len(by_id):
        problems.append(f"{len(arrived) - len(by_id)} duplicate rows at the target")
    for i in range(rows):
        got = by_id.get(i)
        if got is not None and got != sample.expected_json(i):
            problems.append(f"row {i} differs: {got} != {sample.expected_json(i)}")
            break
    return problems


def main(dialect: str, rows: int, batch_rows: int) -> int:
    return asyncio.run(run(dialect, rows, batch_rows))
