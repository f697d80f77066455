"""BENCHMARKS.md and its chart from the measured results."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from benchlib.load import ROWS_PER_MESSAGE, SCENARIOS, Result, configs, paired

# BENCHMARKS.md from this line on is written by hand; a new run keeps it (its figures are updated by hand).
NOTES = "<!-- notes: bench.py keeps what follows -->"


def write(out: Path, text: str) -> None:
    """The report to ``out``, followed by the notes ``out`` already has below the NOTES line, unchanged."""
    old = out.read_text() if out.exists() else ""
    if NOTES in old:
        text = text.rstrip("\n") + "\n\n" + old[old.index(NOTES):]
    out.write_text(text)


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
    w("| scenario | transcoder | workers | rows/s | bridge CPU µs/row | bridge % of a core | client CPU µs/row "
      "| client % of a core | machine busy | MB/s in | MB/s out | peak RSS MiB | rows/s ÷ floor | CPU ÷ floor "
      "| rows/s ÷ 1 worker |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in SCENARIOS:
        floor = results.get(f"{s} floor")
        for name, t, wkr, _ in configs(args):
            r = results.get(f"{s} {name}")
            if not r:
                continue
            # Paired run by run (the machine's load drifts), then the median.
            speed = cost = scale = ""
            if floor:
                speed = f"{paired(r.rows_per_s, floor.rows_per_s):.2f}"
                cost = f"{paired(r.cpu_us_per_row, floor.cpu_us_per_row):.2f}"
            one = results.get(f"{s} {name.replace(f'x{wkr}', 'x1', 1)}")
            if wkr != 1 and one:
                scale = f"{paired(r.rows_per_s, one.rows_per_s):.2f}"
            w(f"| {s} | {t}{name.split(f'x{wkr}', 1)[1]} | {wkr} | {r.med('rows_per_s'):,.0f} | "
              f"{r.med('cpu_us_per_row'):.2f} | {r.med('bridge_share'):.0%} | {r.med('client_us_per_row'):.2f} | "
              f"{r.med('client_share'):.0%} | {r.med('machine_busy'):.0%} | "
              f"{r.med('mb_in'):.0f} | {r.med('mb_out'):.0f} | {r.med('rss') / 2**20:.0f} | {speed} | {cost} "
              f"| {scale} |")
        if floor:
            w(f"| {s} | transport floor | 1 | {floor.med('rows_per_s'):,.0f} | {floor.med('cpu_us_per_row'):.2f} | "
              f"{floor.med('bridge_share'):.0%} | {floor.med('client_us_per_row'):.2f} | "
              f"{floor.med('client_share'):.0%} | {floor.med('machine_busy'):.0%} | "
              f"{floor.med('mb_in'):.0f} | {floor.med('mb_out'):.0f} | {floor.med('rss') / 2**20:.0f} | 1.00 | 1.00 "
              "| |")
    w("")
    w("The transport floor is grpc.aio in and aiohttp out of pre-encoded NDJSON bodies of the same rows, batched "
      "and sent as the bridge sends them, with no decode and no encode: what any Python bridge pays before "
      "converting a row. Every bridge and floor runs at once, measured in turn within each round; `rows/s ÷ "
      "floor`, `CPU ÷ floor` and `rows/s ÷ 1 worker` pair each run with the other's run of the same round, "
      "then take the median. The client's CPU is the load client's (all its processes: "
      f"`--clients {args.clients}`), from /proc like the bridge's; `client % of a core` is its CPU seconds per "
      "second of the run: well under 100 % means the client was not the limit of that run. `machine busy` is "
      "the share of all cores busy during the run, with anyone's work (/proc/stat): near 100 % means the run "
      "got only what the machine's other users left.")
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
