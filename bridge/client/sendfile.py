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
import os
import sys
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

import grpc
import orjson
from google.rpc import error_details_pb2

from bridge.client import csvrows
from bridge.client import sdk as client
from bridge.proto import pb, pb_grpc


def is_dead_letter(line: bytes) -> bool:
    """A spool's dead-letter record (known by its content, whatever the file is called)."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return (isinstance(entry, dict) and {"route", "spool_seq", "rows"} <= entry.keys()
            and isinstance(entry["rows"], list) and all(isinstance(r, dict) and "row" in r for r in entry["rows"]))


def read_objects(stream: BinaryIO, fmt: str, types: str = "infer",
                 columns: dict[str, str] | None = None) -> Iterator[bytes]:
    """One JSON object per row."""
    for _, obj in read_rows(stream, fmt, types, columns):
        yield obj


def read_rows(stream: BinaryIO, fmt: str, types: str = "infer",
              columns: dict[str, str] | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, one JSON object) per row: the line names the row when the bridge rejects it."""
    if fmt == "csv":
        yield from csvrows.read_csv(stream, types, columns)
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
                for r in rows:
                    yield n, orjson.dumps(r)
        return
    for n, line in enumerate(stream, 1):
        line = line.strip()
        if line:
            yield n, line


def sniff(stream: BinaryIO) -> str | None:
    """"dead-letter" when the first line of a seekable file is a dead-letter record (the stream is rewound)."""
    if not stream.seekable():
        return None
    pos = stream.tell()
    try:
        for line in stream:
            if line.strip():
                return "dead-letter" if is_dead_letter(line) else None
        return None
    finally:
        stream.seek(pos)


@dataclass
class Progress:
    out: TextIO
    total_bytes: int | None
    tty: bool
    accepted: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = 0.0
    open: bool = False

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
        self.open = not final
        if final:
            self.out.write("\n")
        self.out.flush()

    def end(self) -> None:
        """End a progress line left open, so that what follows starts a line of its own."""
        if self.open:
            self.out.write("\n")
            self.open = False


_CODES = {c.value[0]: c.name for c in grpc.StatusCode}


def _status_text(st) -> str:
    text = f"{_CODES.get(st.code, st.code)}: {st.message}"
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            text += f" [{info.reason}" + "".join(f" {k}={v}" for k, v in sorted(info.metadata.items())) + "]"
    return text


_TOKEN_HINT = ("the bridge wants a token: put it in ${var} (ingest-bridge send reads it from there; "
               "--token-env names another variable)")


def parse_target(target: str) -> str:
    """What gRPC dials: an ``http://HOST:PORT`` (or several, comma-separated) is taken as its HOST:PORT.

    ValueError saying what to give instead of something gRPC would only call a misformatted name.
    """
    out = []
    for part in (p.strip() for p in target.split(",")):
        if part.startswith("http://"):
            part = part.removeprefix("http://").rstrip("/")
        elif part.startswith("https://"):
            raise ValueError(f"--target {target!r}: give HOST:PORT (an https:// URL is not a gRPC address; "
                             "for TLS add --tls-ca)")
        elif ":/" in part or part.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
            out.append(part)  # one of gRPC's own schemes (dns:///NAME:PORT, ...)
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit() or "/" in part:
            raise ValueError(f"--target {target!r}: expected HOST:PORT, such as 127.0.0.1:50051")
        out.append(part)
    return ",".join(out)


async def _http_port_hint(target: str) -> str | None:
    """When ``target`` answered HTTP/1: is it the bridge's ops port? Its /healthz names the gRPC port."""
    import aiohttp

    host = target.rpartition(":")[0]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s, \
                s.get(f"http://{target}/healthz") as r:
            body = await r.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("grpc_port"), int):
        return (f"{target} is the bridge's ops HTTP port (/healthz, /metrics); its gRPC port is "
                f"{body['grpc_port']}: --target {host}:{body['grpc_port']}")
    return (f"{target} answers HTTP/1, not gRPC: if it is the bridge's ops HTTP port (the config's 'http'), "
            "give the gRPC port ('listen', 127.0.0.1:50051 by default)")


async def _refusal(target: str, connection: client.Connection) -> grpc.aio.AioRpcError | None:
    """The bridge's answer to a plain ListRoutes with the same credentials, when it refuses them."""
    try:
        async with connection.channel(target) as channel:
            await pb_grpc.IngestServiceStub(channel).ListRoutes(pb.ListRoutesRequest(), metadata=connection.metadata,
                                                                timeout=5)
    except grpc.aio.AioRpcError as e:
        if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return e
    return None


async def _stream_failed(e: grpc.aio.AioRpcError, target: str, token_env: str,
                         connection: client.Connection) -> str:
    if e.code() == grpc.StatusCode.INTERNAL:
        # grpc can report a call the bridge refused at once (no token) as its own INTERNAL error, when a write
        # crossed the refusal: ask once more in a way that has no writes, to say what the bridge said.
        e = await _refusal(target, connection) or e
    text = f"the stream failed: {e.code().name}: {e.details()}"
    if "http1.x server" in (e.details() or "") or "Failed parsing HTTP/2" in (e.details() or ""):
        return await _http_port_hint(target)
    if e.code() == grpc.StatusCode.UNAUTHENTICATED:
        return text + "; " + _TOKEN_HINT.format(var=token_env)
    return text


async def send(target: str, route: str, stream: BinaryIO, fmt: str, batch_rows: int = 1000, window: int = 32,
               retries: int | None = None, total_bytes: int | None = None, out: TextIO = sys.stderr,
               tty: bool | None = None, connection: client.Connection | None = None,
               reconnect: client.Reconnect | None = None, csv_types: str = "infer",
               columns: dict[str, str] | None = None, token_env: str = "INGEST_BRIDGE_TOKEN") -> int:
    progress = Progress(out, total_bytes, out.isatty() if tty is None else tty)
    source = read_rows(stream, fmt, csv_types, columns)
    seekable = stream.seekable()
    read_bytes = 0
    batches = 0
    lines: dict[int, array] = {}  # a batch's rows' line numbers, until its ack has named its rejected rows
    row_errors: list[str] = []
    failed: list[str] = []

    def next_batch() -> list[bytes]:
        nonlocal read_bytes
        objects = []
        numbers = array("q")
        for n, obj in source:
            objects.append(obj)
            numbers.append(n)
            if len(objects) >= batch_rows:
                break
        read_bytes = stream.tell() if seekable else read_bytes + sum(len(o) + 1 for o in objects)
        if objects:
            lines[batches] = numbers
        return objects

    async def requests():
        nonlocal batches
        while objects := await asyncio.to_thread(next_batch):
            req = pb.IngestRequest(route=route, sequence=batches)
            req.json.objects.extend(objects)
            batches += 1
            yield req

    def on_ack(ack: pb.BatchAck) -> None:
        numbers = lines.pop(ack.sequence, array("q"))
        if ack.status.code != 0 and len(failed) < 5:
            where = (f"batch {ack.sequence}" if not numbers else f"line {numbers[0]}" if len(numbers) == 1
                     else f"lines {numbers[0]}-{numbers[-1]}")
            failed.append(f"{where}: {_status_text(ack.status)}")
        for e in ack.errors:
            if len(row_errors) < 10:
                where = f"line {numbers[e.index]}" if e.index < len(numbers) else f"batch {ack.sequence} row {e.index}"
                row_errors.append(f"{where}: {e.reason}")
        progress.accepted += ack.accepted
        progress.show(read_bytes)

    try:
        totals = await client.stream(target, requests(), window, retries, on_ack=on_ack, connection=connection,
                                     reconnect=reconnect)
    except grpc.aio.AioRpcError as e:
        progress.end()
        print(f"ingest-bridge send: {await _stream_failed(e, target, token_env, connection or client.Connection())}",
              file=out)
        return 2
    except (ValueError, csv.Error) as e:  # the input stopped making sense; what was read before is sent
        progress.end()
        print(f"ingest-bridge send: cannot read the input ({fmt}): {e}; {progress.accepted} rows were "
              "accepted before it", file=out)
        return 2
    progress.show(read_bytes, final=True)
    dt = time.monotonic() - progress.started
    print(f"sent {batches} batches: {totals.accepted} rows accepted, {totals.rejected} rejected, "
          f"{len(totals.failed)} batches failed, {totals.resent} resent, "
          f"{totals.accepted / max(dt, 1e-9):,.0f} rows/s", file=out)
    for line in failed + row_errors:
        print("  " + line, file=out)
    if any("UNAUTHENTICATED" in line for line in failed):
        print("  " + _TOKEN_HINT.format(var=token_env), file=out)
    return 0 if totals.rejected == 0 and not totals.failed else 1


def file_format(path: str) -> str:
    """The format a file's name says: .csv is CSV, dead-letter*.ndjson a spool's dead-letter file, else NDJSON."""
    name = os.path.basename(path).lower()
    return "csv" if name.endswith(".csv") else "dead-letter" if name.startswith("dead-letter") else "ndjson"


def main(target: str, route: str, path: str, fmt: str | None, batch_rows: int, window: int,
         connection: client.Connection | None = None, reconnect: client.Reconnect | None = None,
         csv_types: str = "infer", columns: dict[str, str] | None = None,
         token_env: str = "INGEST_BRIDGE_TOKEN") -> int:
    try:
        target = parse_target(target)
    except ValueError as e:
        print(f"ingest-bridge send: {e}", file=sys.stderr)
        return 2
    if fmt is None and file_format(path) != "ndjson":
        fmt = file_format(path)  # by its name; an .ndjson may still hold dead-letter records (read below)
    if (columns or csv_types != "infer") and fmt not in (None, "csv"):
        print(f"ingest-bridge send: --column and --csv-types are for CSV; the input is {fmt}", file=sys.stderr)
        return 2
    run = {"batch_rows": batch_rows, "window": window, "connection": connection, "reconnect": reconnect,
           "csv_types": csv_types, "columns": columns, "token_env": token_env}
    if path == "-":
        return asyncio.run(send(target, route, sys.stdin.buffer, fmt or "ndjson", **run))
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the stream
    except OSError as e:
        print(f"ingest-bridge send: {path}: {e.strerror}", file=sys.stderr)
        return 2
    with f:
        if fmt is None:
            # Rows that hold a dead-letter envelope would be sent as such: recognise the file by its content.
            fmt = sniff(f) or "ndjson"
            if fmt == "dead-letter":
                print(f"ingest-bridge send: {path} holds dead-letter records: sending their rows "
                      "(--format ndjson sends the records as they are)", file=sys.stderr)
        return asyncio.run(send(target, route, f, fmt, total_bytes=size, **run))
