"""INGEST_BRIDGE_TRANSCODE_THREADS: large requests are transcoded on a thread pool, with the same rows and row
errors, acked in each stream's order; a bad value is a clear error at start-up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bridge.proto import pb
from bridge.route import offload
from bridge.transcode.native import active

ROOT = Path(__file__).resolve().parent.parent
# The pool serves only requests the native transcoder takes: not built, or INGEST_BRIDGE_PURE=1, nothing to test.
native_only = pytest.mark.skipif(active() != "native",
                                 reason="the native transcoder is not built or INGEST_BRIDGE_PURE=1 is set")


@pytest.fixture
def threads(monkeypatch):
    """set(n): the pool the next request makes has n threads (the process's pool is made once, on first use)."""

    def set_threads(n: str) -> None:
        monkeypatch.setenv(offload.THREADS_ENV, n)
        monkeypatch.setattr(offload, "_pool", None)

    yield set_threads
    if offload._pool is not None:
        offload._pool.shutdown()


def big(stream: int, seq: int, n: int = 700) -> pb.IngestRequest:
    """A RowBatch past the 64 KiB at which the native decode releases the GIL; row 3 is bad (a NaN id is fine,
    a string too long is not: max_value_bytes below)."""
    req = pb.IngestRequest(route="r", sequence=seq)
    req.rows.columns.extend(["stream", "seq", "i", "text"])
    for i in range(n):
        text = "x" * 5000 if i == 3 else f"row {i} " + "y" * 90
        req.rows.rows.add().values.extend([pb.Value(int=stream), pb.Value(int=seq), pb.Value(int=i),
                                           pb.Value(string=text)])
    assert req.ByteSize() >= offload.MIN_BYTES
    return req


@native_only
@pytest.mark.parametrize("n", ["0", "2"])
async def test_streams_give_the_same_rows_in_order_inline_and_on_the_pool(n, threads, sink, bridge_factory,
                                                                          channel_factory):
    threads(n)
    route = {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}, "options": {"format": "ndjson"}}
    b = await bridge_factory({"r": route}, limits={"max_value_bytes": 1000})
    assert b.service.routes["r"].transcoder.name == "native"

    async def stream(k: int) -> list[pb.BatchAck]:
        reqs = [big(k, seq) for seq in range(4)] + [pb.IngestRequest(route="r", sequence=4, json=pb.JsonBatch(
            objects=[json.dumps({"stream": k, "seq": 4, "i": 0}).encode()]))]  # a small one, inline
        return [a async for a in channel_factory(b).IngestStream(iter(reqs))]

    answers = await asyncio.gather(*(stream(k) for k in range(3)))
    for acks in answers:
        assert [a.sequence for a in acks] == [0, 1, 2, 3, 4]
        assert [a.accepted for a in acks] == [699, 699, 699, 699, 1]
        assert all([e.index for e in a.errors] == [3] and "max_value_bytes" in a.errors[0].reason
                   for a in acks[:4])
    for k in range(3):
        # Every accepted row once (batches go out concurrently: the target may see them in any order).
        mine = sorted((r["seq"], r["i"]) for r in sink.rows if r["stream"] == k)
        assert mine == [(s, i) for s in range(4) for i in range(700) if i != 3] + [(4, 0)]
    pool_threads = [t for t in threading.enumerate() if t.name.startswith("transcode")]
    assert (len(pool_threads) > 0) == (n != "0")


@native_only
async def test_a_route_with_two_targets_gives_each_its_rows_from_the_pool(threads, sink, bridge_factory,
                                                                         channel_factory):
    threads("2")
    targets = [{"name": n, "dialect": "http", "url": sink.url + f"/{n}", "batch": {"linger": "0s"}} for n in "ab"]
    b = await bridge_factory({"r": {"targets": targets}}, limits={"max_value_bytes": 1000})
    assert all(lane.transcoder.name == "native" for lane in b.service.routes["r"].lanes)
    acks = [a async for a in channel_factory(b).IngestStream(iter([big(0, seq) for seq in range(3)]))]
    assert [(a.sequence, a.accepted, [e.index for e in a.errors]) for a in acks] == [(s, 699, [3]) for s in range(3)]
    for path in ("/a", "/b"):
        got = sorted((r["seq"], r["i"]) for c in sink.requests if c.path == path for r in c.rows)
        assert got == [(s, i) for s in range(3) for i in range(700) if i != 3]
    assert any(t.name.startswith("transcode") for t in threading.enumerate())


def serve(env_value: str, tmp_path: Path) -> subprocess.CompletedProcess:
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text("listen: 127.0.0.1:0\nhttp: null\nroutes:\n  r: {dialect: http, url: http://127.0.0.1:9/in}\n")
    env = {**os.environ, offload.THREADS_ENV: env_value}
    return subprocess.run([sys.executable, "-m", "bridge", "serve", "--config", str(cfg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("value,says", [("two", "expected a whole number"), ("-1", "expected 0 to 64"),
                                        ("65", "expected 0 to 64")])
def test_a_bad_thread_count_stops_the_start_with_a_clear_error(value, says, tmp_path):
    p = serve(value, tmp_path)
    assert p.returncode == 2
    assert f"INGEST_BRIDGE_TRANSCODE_THREADS={value}" in p.stderr and says in p.stderr
