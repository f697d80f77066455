"""Reloading the configuration under load: 4 streams through 20 reloads that add, change and remove routes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import grpc
import pytest
import yaml

from bridge.config import load_config
from bridge.dev import sample
from bridge.ingest.server import Bridge
from bridge.proto import pb, pb_grpc
from tests.waiting import wait_until

ROWS = 20  # per message
MESSAGES = 50_000  # at most, per stream: bounded, with room for a fast bridge to outlast the 20 reloads


def write(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)


def config(sink_url: str, spool: Path, version: int, token_routes: list[str] | None = None) -> dict:
    """Version n: 'stable' never changes; 'moving' and 'journal' (spooled) change every time (their target path
    names the version); 'extra-n' exists only in version n."""
    delivery = {"initial_backoff": "10ms", "max_backoff": "50ms", "max_elapsed": "10s", "timeout": "5s"}
    routes = {
        "stable": {"dialect": "http", "url": sink_url + "/stable", "batch": {"linger": "5ms"}, "delivery": delivery},
        "moving": {"dialect": "http", "url": f"{sink_url}/moving/v{version}",
                   "batch": {"linger": f"{1 + version % 4}ms", "max_rows": 40 + version}, "delivery": delivery},
        "journal": {"dialect": "http", "url": f"{sink_url}/journal/v{version}", "batch": {"linger": "2ms"},
                    "delivery": {**delivery, "concurrency": 1 + version % 3}, "spool": {"dir": str(spool)}},
        f"extra-{version}": {"dialect": "http", "url": f"{sink_url}/extra/{version}"},
    }
    doc: dict = {"listen": "127.0.0.1:0", "http": None, "routes": routes,
                 "limits": {"max_rows_per_message": 1000 + version}}
    if token_routes is not None:
        doc["access"] = {"tokens": [{"name": "app", "token": "s3cret-app",
                                     "routes": token_routes}]}
    return doc


async def test_four_streams_through_twenty_reloads_lose_nothing_and_every_ack_is_right(sink, tmp_path):
    path = tmp_path / "bridge.yaml"
    write(path, config(sink.url, tmp_path / "spool", 0))
    bridge = Bridge(load_config(path), http=False)
    await bridge.start()
    stable = bridge.routes["stable"]
    stop = asyncio.Event()
    acked: dict[int, list[pb.BatchAck]] = {i: [] for i in range(4)}
    sent_ids: dict[str, list[int]] = {"stable": [], "moving": [], "journal": []}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}") as ch:
            stub = pb_grpc.IngestServiceStub(ch)

            async def stream(i: int, route: str) -> None:
                window = asyncio.Semaphore(4)

                async def gen():
                    for m in range(MESSAGES):  # ends once the reloads are done
                        if stop.is_set() and m >= 10:
                            return
                        await window.acquire()
                        lo = (i * MESSAGES + m) * ROWS  # each stream's ids its own
                        sent_ids[route].extend(range(lo, lo + ROWS))
                        # Only the first message names the route: the rest follow it through the reloads.
                        yield sample.json_request(route if m == 0 else "", m, range(lo, lo + ROWS))

                async for ack in stub.IngestStream(gen()):
                    window.release()
                    acked[i].append(ack)

            streams = [asyncio.ensure_future(stream(i, r))
                       for i, r in enumerate(("stable", "stable", "moving", "journal"))]
            for version in range(1, 21):
                seen = [len(a) for a in acked.values()]
                await wait_until(lambda s=seen: all(len(acked[i]) > s[i] for i in range(4)),
                                 what=f"every stream acked more before reload {version}")
                if version == 10:
                    # A bad file: the running configuration stays and the error is counted.
                    bad = config(sink.url, tmp_path / "spool", version)
                    bad["routes"]["moving"]["delivery"]["concurrency"] = "lots"
                    write(path, bad)
                    assert await bridge.reload(path) is False
                    assert bridge.config.routes["moving"].url.endswith("/moving/v9")
                write(path, config(sink.url, tmp_path / "spool", version))
                assert await bridge.reload(path) is True
                assert bridge.routes["stable"] is stable  # unchanged: the same pipeline, buffer and batches
                assert bridge.service.max_rows == 1000 + version  # limits apply to new messages
                # The route added is served; the one removed is NOT_FOUND.
                ack = await stub.IngestBatch(sample.json_request(f"extra-{version}", 1, range(3)))
                assert ack.accepted == 3
                with pytest.raises(grpc.aio.AioRpcError) as ei:
                    await stub.IngestBatch(sample.json_request(f"extra-{version - 1}", 1, range(3)))
                assert ei.value.code() == grpc.StatusCode.NOT_FOUND
            stop.set()
            await asyncio.wait_for(asyncio.gather(*streams), 60)
        await wait_until(lambda: not bridge.switching, what="every switch done", timeout=30)
        await wait_until(lambda: len(sink.rows) >= sum(map(len, sent_ids.values())) + 20 * 3,
                         what="the spooled rows delivered", timeout=30)
    finally:
        await bridge.stop(grace=2.0)

    # Every ack right: in order, OK, every row accepted.
    for i, acks in acked.items():
        assert [a.sequence for a in acks] == list(range(len(acks))), i
        assert [(a.status.code, a.accepted, a.rejected) for a in acks] == [(0, ROWS, 0)] * len(acks), i
    # No row lost (and none twice): per route, the target got exactly the rows acknowledged.
    by_route: dict[str, Counter] = {r: Counter() for r in sent_ids}
    versions: dict[str, set[str]] = {"moving": set(), "journal": set()}
    for req in sink.requests:
        parts = req.path.strip("/").split("/")
        if parts[0] in by_route:
            by_route[parts[0]].update(r["id"] for r in req.rows)
            if parts[0] in versions:
                versions[parts[0]].add(parts[1])
    for route, ids in sent_ids.items():
        assert sorted(by_route[route]) == sorted(ids), route
        assert max(by_route[route].values()) == 1, f"{route}: a row delivered twice"
    # The changed routes really switched: their rows went to many versions' targets.
    assert len(versions["moving"]) >= 10 and len(versions["journal"]) >= 5, versions
    assert bridge.metrics.config_reloads.labels("ok")._value.get() == 20
    assert bridge.metrics.config_reloads.labels("error")._value.get() == 1


async def test_a_reload_applies_new_tokens_to_new_calls(sink, tmp_path):
    path = tmp_path / "bridge.yaml"
    write(path, config(sink.url, tmp_path / "spool", 0, token_routes=["stable"]))
    bridge = Bridge(load_config(path), http=False)
    await bridge.start()
    md = (("authorization", "Bearer s3cret-app"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}") as ch:
            stub = pb_grpc.IngestServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.IngestBatch(sample.json_request("moving", 1, range(2)), metadata=md)
            assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
            write(path, config(sink.url, tmp_path / "spool", 0, token_routes=["stable", "moving"]))
            assert await bridge.reload(path)
            ack = await stub.IngestBatch(sample.json_request("moving", 2, range(2)), metadata=md)
            assert ack.accepted == 2
    finally:
        await bridge.stop(grace=1.0)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP")
def test_serve_reloads_on_sighup_and_keeps_running_on_a_bad_file(tmp_path, sink_url_free_port):
    import subprocess

    path = tmp_path / "bridge.yaml"
    port = sink_url_free_port
    doc = {"listen": f"127.0.0.1:{port}", "http": None,
           "routes": {"a": {"dialect": "http", "url": "http://127.0.0.1:9/a"}}}
    write(path, doc)
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "--log-format", "text", "serve", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        assert "serving gRPC" in proc.stdout.readline()
        doc["routes"]["a"]["delivery"] = {"concurrency": 0}
        write(path, doc)
        proc.send_signal(signal.SIGHUP)
        line = _line_with(proc, "config reload")
        assert "is invalid, the running configuration stays" in line
        assert "routes.a.delivery.concurrency" in line
        doc["routes"]["a"]["delivery"] = {"concurrency": 2}
        doc["routes"]["b"] = {"dialect": "http", "url": "http://127.0.0.1:9/b"}
        write(path, doc)
        proc.send_signal(signal.SIGHUP)
        line = _line_with(proc, "config reloaded")
        assert "added ['b'], changed ['a']" in line
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _line_with(proc, text: str) -> str:
    for _ in range(200):  # bounded: the bridge logs little
        line = proc.stderr.readline()
        if not line:
            break
        if text in line:
            return line
    raise AssertionError(f"no log line with {text!r}")


@pytest.fixture
def sink_url_free_port(unused_tcp_port) -> int:
    return unused_tcp_port
