"""The processes bench.py starts as itself (``--role``): the sink and the transport floor."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from benchlib.load import ROWS_PER_MESSAGE


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
