"""``ingest-bridge explain``: the HTTP requests a route would send for some rows, and the rows it would reject.

Nothing here imitates the route: the rows go through the route's own
``RoutePipeline`` (its transcoder, built by ``transcoder(plan)``, and its
``reject_batch`` rule), are cut into parts by ``part_size``, gathered into
batches by the batcher's ``fits`` rule, split by the sender's ``too_large``
rule and built by the dialect's ``build()``. What it cannot know is timing:
it assumes every row waits at once (a full linger), so a slow trickle of rows
may leave in smaller requests. Nothing is sent.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.client import sendfile
from bridge.dev import sample
from bridge.model.errors import BatchRejected
from bridge.model.rows import RowError, Rows
from bridge.ops.redact import Redactor, route_secrets
from bridge.proto import pb
from bridge.route.batcher import fits
from bridge.route.fanout import Fanned
from bridge.route.pipeline import Lane, RoutePipeline, part_size
from bridge.send.compress import compress
from bridge.send.sender import too_large
from bridge.send.transport import USER_AGENT


class UnknownRoute(LookupError):
    """The config has no route of that name."""


@dataclass
class Planned:
    """One HTTP request as the target would receive it (``body`` before any Content-Encoding)."""

    rows: int
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Explained:
    route: str
    dialect: str
    rows_in: int = 0
    requests: list[Planned] = field(default_factory=list)
    # (row number in the input, request number, index in the request, the error)
    row_errors: list[tuple[int, int, int, RowError]] = field(default_factory=list)
    # (request number, its first row in the input, rows in it, why the whole request is refused)
    refused: list[tuple[int, int, int, str]] = field(default_factory=list)


def load_route(path: str, name: str) -> RoutePipeline:
    """The route's pipeline, built as ``serve`` builds it (ConfigError, or UnknownRoute for a wrong name)."""
    from bridge.config import load_config
    from bridge.ingest.server import build_routes

    config = load_config(path)
    if name not in config.routes:
        raise UnknownRoute(f"route {name!r} is not in {path}; its routes: {', '.join(config.routes) or 'none'}")
    return build_routes(config, transport=None)[name]  # type: ignore[arg-type]


def file_requests(route: str, objects: Iterable[bytes], batch_rows: int) -> list[pb.IngestRequest]:
    """JSON objects as ``ingest-bridge send`` sends them: JsonBatch requests of ``batch_rows``."""
    out: list[pb.IngestRequest] = []
    for obj in objects:
        if not out or len(out[-1].json.objects) >= batch_rows:
            out.append(pb.IngestRequest(route=route, sequence=len(out)))
        out[-1].json.objects.append(obj)
    return out


def sample_requests(route: str, n: int, shape: str = "rows") -> list[pb.IngestRequest]:
    """The demo's sample rows (``bridge.dev.sample``) in one request of the given shape."""
    return [sample.SHAPES[shape](route, 0, range(n))]


def _batches(pipe: Lane, parts: list[tuple[Rows, int]]) -> list[Rows]:
    """Parts gathered into batches as ``Batcher._take`` gathers parts that all wait at once."""
    max_rows, max_bytes = pipe.batcher.max_rows, pipe.batcher.max_bytes
    queue = parts
    out = []
    while queue:
        shape = queue[0][0].shape
        taken: list[Rows] = []
        keep: list[tuple[Rows, int]] = []
        rows = size = 0
        full = False
        for p in queue:
            part, nbytes = p
            if full or part.shape != shape:
                keep.append(p)
                full = full or pipe.ordered  # ordered: only the run at the head
                continue
            if taken and not fits(rows, size, len(part), nbytes, max_rows, max_bytes):
                keep.append(p)
                full = True
                continue
            taken.append(part)
            rows += len(part)
            size += nbytes
        queue = keep
        out.append(Rows.concat(taken))
    return out


def _split(pipe: Lane, rows: Rows) -> list[tuple[Rows, Any]]:
    """One batch as the sender sends it: halves while the body is over batch.max_bytes."""
    request = pipe.dialect.build(rows)
    n = len(rows)
    if too_large(n, request, pipe.sender.max_bytes):
        return _split(pipe, rows.slice(0, n // 2)) + _split(pipe, rows.slice(n // 2, n))
    return [(rows, request)]


def explain(pipe: RoutePipeline, requests: list[pb.IngestRequest], lane: Lane | None = None) -> Explained:
    """The requests ``lane`` (a target of the route; default its first) would get: the route's transcoding
    (on a route with several targets, every required target's row checks) and the lane's batches."""
    lane = lane or pipe.lanes[0]
    out = Explained(pipe.name, lane.cfg.dialect)
    parts: list[tuple[Rows, int]] = []
    first = 0
    for number, request in enumerate(requests):
        size = request.ByteSize()  # what the bridge reads off the wire for this request
        n_in = _count(request)
        out.rows_in += n_in
        try:
            rows, errors = pipe.prepare(request, size)
        except BatchRejected as e:
            out.refused.append((number, first, n_in, f"{e.code} {e.reason}: {e.message}"))
            first += n_in
            continue
        out.row_errors += [(first + e.index, number, e.index, e) for e in errors]
        first += n_in
        if isinstance(rows, Fanned):
            rows = rows.rows[lane.name]
        n = len(rows)
        if not n:
            continue
        step, per_row = part_size(n, lane.max_rows, lane.cfg.batch.max_bytes, size)
        slices = [rows] if n <= step else [rows.slice(i, min(n, i + step)) for i in range(0, n, step)]
        parts += [(s, per_row * len(s)) for s in slices]
    for batch in _batches(lane, parts):
        for rows, request in _split(lane, batch):
            headers = dict(request.headers)
            body = request.body
            wire = body
            if request.compression:
                wire = compress(body, request.compression)
                headers["Content-Encoding"] = request.compression
            headers.setdefault("User-Agent", USER_AGENT)  # the transport's session sets it
            headers["Content-Length"] = str(len(wire))
            out.requests.append(Planned(len(rows), request.method, request.url, headers, body))
    return out


def _count(request: pb.IngestRequest) -> int:
    kind = request.WhichOneof("payload")
    if kind == "rows":
        return len(request.rows.rows)
    if kind == "columns":
        cols = request.columns.columns
        return max((len(getattr(c, c.WhichOneof("data")).values) for c in cols if c.WhichOneof("data")),
                   default=0)
    if kind == "messages":
        return len(request.messages.messages)
    if kind == "json":
        return len(request.json.objects)
    return 0


# -- showing it -------------------------------------------------------------------------------------------


def as_json(e: Explained, redact: Redactor) -> dict:
    return {
        "route": e.route, "dialect": e.dialect, "rows": e.rows_in,
        "requests": [{"rows": r.rows, "method": r.method, "url": redact(r.url),
                      "headers": {k: redact(v) for k, v in r.headers.items()},
                      "body": redact(r.body.decode("utf-8", "replace"))} for r in e.requests],
        "row_errors": [{"row": row, "request": req, "index": idx, "column": err.column, "reason": redact(err.reason)}
                       for row, req, idx, err in e.row_errors],
        "refused": [{"request": req, "first_row": row, "rows": n, "reason": redact(why)}
                    for req, row, n, why in e.refused],
    }


def _body_lines(body: bytes, lines: int | None, width: int = 400) -> list[str]:
    text = body.decode("utf-8", "replace").splitlines()
    shown = text if lines is None else text[:lines]
    out = []
    for line in shown:
        if lines is not None and len(line) > width:
            line = f"{line[:width]}… (+{len(line) - width} characters)"
        out.append(line)
    if len(shown) < len(text):
        out.append(f"… {len(text) - len(shown)} more line(s); --full shows them")
    return out


def as_text(e: Explained, pipe: Lane, redact: Redactor, lines: int | None) -> str:
    sent = sum(r.rows for r in e.requests)
    rejected = len(e.row_errors) + sum(n for *_, n, _ in e.refused)
    b = pipe.cfg.batch
    out = [f"route {e.route!r} ({e.dialect}): {e.rows_in} row(s) in, {sent} to send in {len(e.requests)} HTTP "
           f"request(s), {rejected} rejected",
           f"as if every row waits at once (batch.max_rows {pipe.max_rows}, batch.max_bytes {b.max_bytes}); "
           "nothing is sent"]
    if e.refused:
        out += ["", "requests refused whole:"]
        out += [f"  request {req} (rows {row}..{row + n - 1}): {redact(why)}" for req, row, n, why in e.refused]
    if e.row_errors:
        out += ["", "rows rejected:"]
        for row, req, idx, err in e.row_errors:
            col = f" column {err.column!r}" if err.column else ""
            out.append(f"  row {row} (request {req} index {idx}){col}: {redact(err.reason)}")
    for i, r in enumerate(e.requests, 1):
        out += ["", f"HTTP request {i} of {len(e.requests)}: {r.rows} row(s)", f"{r.method} {redact(r.url)}"]
        out += [f"{k}: {redact(v)}" for k, v in r.headers.items()]
        if "Content-Encoding" in r.headers:
            out.append(f"(body shown before {r.headers['Content-Encoding']} compression)")
        out.append("")
        out += [redact(line) for line in _body_lines(r.body, lines)]
    return "\n".join(out)


def _input(args: argparse.Namespace, route: str) -> list[pb.IngestRequest]:
    if args.file is None:
        return sample_requests(route, args.rows, args.shape)
    fmt = args.format or sendfile.file_format(args.file)
    if args.file == "-":
        return file_requests(route, sendfile.read_objects(sys.stdin.buffer, fmt), args.batch_rows)
    with open(args.file, "rb") as f:
        return file_requests(route, list(sendfile.read_objects(f, fmt)), args.batch_rows)


def main(args: argparse.Namespace) -> int:
    """Exit status 0 when every row would be sent, 1 when rows would be rejected, 2 on bad input."""
    try:
        pipe = load_route(args.config, args.route)
    except UnknownRoute as e:
        print(f"ingest-bridge explain: {e}", file=sys.stderr)
        return 2
    try:
        requests = _input(args, args.route)
    except OSError as e:
        print(f"ingest-bridge explain: {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    except (ValueError, csv.Error) as e:
        print(f"ingest-bridge explain: cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    redact = Redactor(route_secrets(pipe.cfg, usernames=False))
    if not pipe.fanout:
        e = explain(pipe, requests)
        if args.json:
            sys.stdout.write(orjson.dumps(as_json(e, redact), option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            print(as_text(e, pipe.lanes[0], redact, None if args.full else args.lines))
        return 1 if e.row_errors or e.refused else 0
    # Several targets: each target's requests, after the rows every required target's checks reject.
    shown = [(lane, explain(pipe, requests, lane)) for lane in pipe.lanes]
    if args.json:
        doc = {"route": pipe.name, "targets": [{"target": lane.name, "required": lane.required, **as_json(e, redact)}
                                                for lane, e in shown]}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print("\n\n".join(f"== target {lane.name} ({'required' if lane.required else 'optional'})\n"
                          + as_text(e, lane, redact, None if args.full else args.lines) for lane, e in shown))
    return 1 if any(e.row_errors or e.refused for _, e in shown) else 0
