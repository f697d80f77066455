"""``ingest-bridge send``: stream an NDJSON or CSV file (or stdin) to a running bridge over IngestStream.

Rows go as JsonBatch messages of ``batch_rows``; at most ``window`` batches
wait for their acks at once, so a file of any size streams in bounded memory.
A dropped stream (UNAVAILABLE, a lost connection, a bridge draining on
SIGTERM or restarted) is opened again after a bounded backoff and every
batch not yet acknowledged is sent again (``sdk.stream``). Exit status: 0 when every row was
accepted, 1 when rows were rejected or batches failed, 2 when the bridge
could not be used.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

import grpc
import orjson
from google.rpc import error_details_pb2

from bridge.client import sdk as client
from bridge.proto import pb


def _infer(value: str):
    """CSV cells to JSON values: integers, numbers, true/false, empty as null, else text."""
    if value == "":
        return None
    if value in ("true", "false"):
        return value == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
    except ValueError:
        return value
    return f if f == f and f not in (float("inf"), float("-inf")) else value


def read_objects(stream: BinaryIO, fmt: str, infer: bool = True) -> Iterator[bytes]:
    """One JSON object (bytes) per row."""
    if fmt == "csv":
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        for row in csv.DictReader(text):
            yield orjson.dumps({k: (_infer(v) if infer else v) for k, v in row.items()})
        return
    if fmt == "dead-letter":
        # A spool's dead-letter file: one record per line, its rows under "rows"[*]["row"].
        for n, line in enumerate(stream, 1):
            if line.strip():
                try:
                    entry = orjson.loads(line)
                    rows = [r["row"] for r in entry["rows"]]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"line {n} is not a dead-letter record") from None
                yield from (orjson.dumps(r) for r in rows)
        return
    for line in stream:
        line = line.strip()
        if line:
            yield line


@dataclass
class Progress:
    out: TextIO
    total_bytes: int | None
    tty: bool
    accepted: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = 0.0

    def show(self, read_bytes: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.tty or (not final and now - self.last < 0.2):
            return
        self.last = now
        dt = max(now - self.started, 1e-9)
        rate = self.accepted / dt
        line = f"{self.accepted:>12,} rows  {rate:>10,.0f} rows/s"
        if self.total_bytes:
            frac = min(1.0, read_bytes / self.total_bytes)
            bar = "#" * int(frac * 30)
            eta = (dt / frac - dt) if frac > 0 else 0
            line = f"[{bar:<30}] {frac:6.1%} " + line + f"  ETA {eta:5.0f}s"
        self.out.write("\r" + line)
        if final:
            self.out.write("\n")
        self.out.flush()


_CODES = {c.value[0]: c.name for c in grpc.StatusCode}


def _status_text(st) -> str:
    text = f"{_CODES.get(st.code, st.code)}: {st.message}"
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            text += f" [{info.reason}" + "".join(f" {k}={v}" for k, v in sorted(info.metadata.items())) + "]"
    return text


async def send(target: str, route: str, stream: BinaryIO, fmt: str, batch_rows: int = 1000, window: int = 32,
               retries: int | None = None, total_bytes: int | None = None, out: TextIO = sys.stderr,
               tty: bool | None = None, connection: client.Connection | None = None,
               reconnect: client.Reconnect | None = None) -> int:
    progress = Progress(out, total_bytes, out.isatty() if tty is None else tty)
    source = read_objects(stream, fmt)
    read_bytes = 0
    batches = 0

    def next_batch() -> list[bytes]:
        nonlocal read_bytes
        objects = []
        for obj in source:
            objects.append(obj)
            read_bytes += len(obj) + 1
            if len(objects) >= batch_rows:
                break
        return objects

    async def requests():
        nonlocal batches
        while objects := await asyncio.to_thread(next_batch):
            req = pb.IngestRequest(route=route, sequence=batches)
            req.json.objects.extend(objects)
            batches += 1
            yield req

    def on_ack(ack: pb.BatchAck) -> None:
        progress.accepted += ack.accepted
        progress.show(read_bytes)

    try:
        totals = await client.stream(target, requests(), window, retries, on_ack=on_ack, connection=connection,
                                     reconnect=reconnect)
    except grpc.aio.AioRpcError as e:
        print(f"\ningest-bridge send: the stream failed: {e.code().name}: {e.details()}", file=out)
        return 2
    except (ValueError, csv.Error) as e:  # the input stopped making sense; what was read before is sent
        print(f"\ningest-bridge send: cannot read the input ({fmt}): {e}; {progress.accepted} rows were "
              "accepted before it", file=out)
        return 2
    progress.show(read_bytes, final=True)
    dt = time.monotonic() - progress.started
    print(f"sent {batches} batches: {totals.accepted} rows accepted, {totals.rejected} rejected, "
          f"{len(totals.failed)} batches failed, {totals.resent} resent, "
          f"{totals.accepted / max(dt, 1e-9):,.0f} rows/s", file=out)
    lines = [f"batch {a.sequence}: {_status_text(a.status)}" for a in totals.failed[:5]]
    lines += [f"batch {seq} row {e.index}: {e.reason}" for seq, e in totals.row_errors[:10]]
    for line in lines:
        print("  " + line, file=out)
    return 0 if totals.rejected == 0 and not totals.failed else 1


def file_format(path: str) -> str:
    """The format a file's name says: .csv is CSV, dead-letter*.ndjson a spool's dead-letter file, else NDJSON."""
    name = os.path.basename(path).lower()
    return "csv" if name.endswith(".csv") else "dead-letter" if name.startswith("dead-letter") else "ndjson"


def main(target: str, route: str, path: str, fmt: str | None, batch_rows: int, window: int,
         connection: client.Connection | None = None, reconnect: client.Reconnect | None = None) -> int:
    fmt = fmt or file_format(path)
    if path == "-":
        return asyncio.run(send(target, route, sys.stdin.buffer, fmt, batch_rows, window, connection=connection,
                                reconnect=reconnect))
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the stream
    except OSError as e:
        print(f"ingest-bridge send: {path}: {e.strerror}", file=sys.stderr)
        return 2
    with f:
        return asyncio.run(send(target, route, f, fmt, batch_rows, window, total_bytes=size,
                                connection=connection, reconnect=reconnect))
