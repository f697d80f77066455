"""Spool mode: the write-ahead log (torn tails, checksums, segments, replay) and the route around it."""

from __future__ import annotations

import asyncio
import os

import grpc
import orjson
import pytest

from bridge.dev import sample
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.model.errors import SpoolError
from bridge.spool.wal import HEADER, MAGIC, Wal
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until


# -- the log itself ----------------------------------------------------------------------------
async def written(directory, payloads: list[bytes], **kw) -> Wal:
    wal = Wal(directory, **kw)
    wal.open()
    for p in payloads:
        await wal.append(p)
    return wal


async def replayed(directory, **kw) -> tuple[Wal, list[tuple[int, bytes]], list[str]]:
    wal = Wal(directory, **kw)
    report = wal.open()
    out = []
    while wal.pending:
        out.append(await wal.next_record())
    return wal, out, report.truncated


async def test_records_come_back_in_order_after_a_restart(tmp_path):
    wal = await written(tmp_path, [b"one", b"two", b"three"])
    await wal.close()
    wal, out, truncated = await replayed(tmp_path)
    assert out == [(1, b"one"), (2, b"two"), (3, b"three")] and truncated == []
    assert await wal.append(b"four") == 4, "numbering goes on after a restart"
    await wal.close()


async def test_delivered_records_are_not_replayed_and_their_segments_go(tmp_path):
    wal = await written(tmp_path, [bytes([i]) * 100 for i in range(10)], segment_bytes=300)
    segments = sorted(tmp_path.glob("seg-*.wal"))
    assert len(segments) >= 4, "small segments rotate"
    for seq in (1, 2, 3, 5):  # 4 is not done yet: the cursor stops at 3
        wal.inflight[seq] = (seq, None, 0, 0)
        wal.done(seq)
    assert wal.cursor == 3
    remaining = sorted(tmp_path.glob("seg-*.wal"))
    assert len(remaining) < len(segments) and remaining[0] != segments[0]
    await wal.close()
    wal, out, _ = await replayed(tmp_path, segment_bytes=300)
    assert [seq for seq, _ in out] == [4, 5, 6, 7, 8, 9, 10], "5 comes again: only the cursor is kept"
    await wal.close()


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size + 2])
async def test_a_torn_tail_is_reported_and_cut_never_delivered_half(tmp_path, cut):
    wal = await written(tmp_path, [b"a" * 50, b"b" * 50, b"c" * 50])
    await wal.close()
    seg = next(tmp_path.glob("seg-*.wal"))
    whole = seg.read_bytes()
    last_record = HEADER.size + 50
    seg.write_bytes(whole[: len(whole) - last_record + cut])  # the third record, cut mid-write
    wal, out, truncated = await replayed(tmp_path)
    assert out == [(1, b"a" * 50), (2, b"b" * 50)]
    assert len(truncated) == 1 and "torn" in truncated[0] and f"{cut} bytes dropped" in truncated[0]
    assert seg.stat().st_size == len(whole) - last_record, "the file is cut back to the last whole record"
    assert await wal.append(b"d") == 3, "the torn record's number is taken again: it was never acknowledged"
    await wal.close()


async def test_a_corrupt_record_ends_its_segment(tmp_path):
    wal = await written(tmp_path, [b"x" * 40, b"y" * 40, b"z" * 40])
    await wal.close()
    seg = next(tmp_path.glob("seg-*.wal"))
    data = bytearray(seg.read_bytes())
    data[len(MAGIC) + HEADER.size + 40 + HEADER.size + 5] ^= 0xFF  # a flipped bit in the second payload
    seg.write_bytes(bytes(data))
    wal, out, truncated = await replayed(tmp_path)
    assert out == [(1, b"x" * 40)]
    assert "checksum mismatch" in truncated[0]
    await wal.close()


async def test_a_segment_without_its_header_is_removed(tmp_path):
    wal = await written(tmp_path, [b"keep"])
    await wal.close()
    (tmp_path / "seg-00000000000000000002.wal").write_bytes(b"IBW")  # died while creating it
    wal, out, truncated = await replayed(tmp_path)
    assert out == [(1, b"keep")] and "no segment header" in truncated[0]
    assert not (tmp_path / "seg-00000000000000000002.wal").exists()
    await wal.close()


async def test_one_process_per_spool_directory(tmp_path):
    wal = await written(tmp_path, [b"a"])
    with pytest.raises(SpoolError, match="in use by another process"):
        Wal(tmp_path).open()
    await wal.close()
    Wal(tmp_path).open()  # free again


async def test_appends_share_fsyncs(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    wal = Wal(tmp_path)
    wal.open()
    before = len(calls)
    seqs = await asyncio.gather(*(wal.append(b"r%d" % i) for i in range(50)))
    assert sorted(seqs) == list(range(1, 51))
    assert len(calls) - before < 10, "fifty appends waiting together need far fewer fsyncs"
    await wal.close()


# -- the route in spool mode --------------------------------------------------------------------
def spooled(url: str, directory, **spool) -> dict:
    return {"dialect": "http", "url": url, "batch": {"linger": "0s", "max_rows": 1000},
            "delivery": fast_delivery(max_elapsed="300ms"), "spool": {"dir": str(directory), **spool}}


@pytest.fixture
async def faulty():
    f = FaultyTarget()
    await f.start()
    yield f
    await f.stop()


async def test_callers_are_acknowledged_through_an_outage_and_every_row_arrives(
        faulty, tmp_path, bridge_factory, channel_factory):
    faulty.script({"status": 503, "times": 20})  # the target is down for the first twenty requests
    b = await bridge_factory({"r": spooled(faulty.url + "/in", tmp_path)})
    b.routes["r"].spool.pause = 0.05
    stub = channel_factory(b)
    acks = [a async for a in stub.IngestStream(iter(sample.json_request("r", s, range(s * 10, s * 10 + 10))
                                                    for s in range(30)))]
    assert [(a.sequence, a.status.code, a.accepted) for a in acks] == [(s, 0, 10) for s in range(30)]
    assert all(a.upstream["spool_seq"] for a in acks)
    await wait_until(lambda: len(faulty.rows) >= 300)
    assert sorted(r["id"] for r in faulty.rows) == list(range(300))
    await wait_until(lambda: b.routes["r"].spool.wal.undelivered == 0)


async def test_spooled_rows_survive_a_restart_with_the_target_away(tmp_path, bridge_factory, channel_factory,
                                                                   unused_tcp_port, faulty):
    down = f"http://127.0.0.1:{unused_tcp_port}/in"
    b = await bridge_factory({"r": spooled(down, tmp_path)})
    ack = await channel_factory(b).IngestBatch(sample.json_request("r", 0, range(25)))
    assert ack.accepted == 25 and ack.status.code == 0
    await b.stop(grace=0.5)
    b2 = await bridge_factory({"r": spooled(faulty.url + "/in", tmp_path)})
    await wait_until(lambda: len(faulty.rows) == 25)
    assert sorted(r["id"] for r in faulty.rows) == list(range(25))
    await wait_until(lambda: b2.routes["r"].spool.wal.undelivered == 0)


async def test_refused_for_good_goes_to_the_dead_letter_file_with_its_status(faulty, tmp_path, bridge_factory,
                                                                              channel_factory):
    faulty.script({"status": 400, "body": {"message": "column price is not a number"}})
    b = await bridge_factory({"r": spooled(faulty.url + "/in", tmp_path)})
    stub = channel_factory(b)
    assert (await stub.IngestBatch(sample.json_request("r", 0, range(3)))).accepted == 3
    assert (await stub.IngestBatch(sample.json_request("r", 1, range(3, 5)))).accepted == 2
    route = b.routes["r"]
    await wait_until(lambda: route.spool.wal.undelivered == 0)
    lines = [orjson.loads(x) for x in (tmp_path / "r" / "dead-letter.ndjson").read_bytes().splitlines()]
    assert len(lines) == 1 and lines[0]["spool_seq"] == 1
    assert lines[0]["status"]["code"] == "INVALID_ARGUMENT" and lines[0]["status"]["http_status"] == 400
    assert "price is not a number" in lines[0]["status"]["message"]
    assert [r["row"]["id"] for r in lines[0]["rows"]] == [0, 1, 2]
    assert sorted(r["id"] for r in faulty.rows) == [3, 4]
    assert route.spool.dead.rows == 3


async def test_a_full_spool_is_unavailable_with_retry_info(tmp_path, bridge_factory, channel_factory,
                                                           unused_tcp_port):
    down = f"http://127.0.0.1:{unused_tcp_port}/in"
    b = await bridge_factory({"r": spooled(down, tmp_path, max_bytes="64KiB", segment_bytes="16KiB")})
    stub = channel_factory(b)
    accepted = 0
    with pytest.raises(grpc.aio.AioRpcError) as e:
        for seq in range(200):  # bounded: the spool fills long before
            ack = await stub.IngestBatch(sample.json_request("r", seq, range(seq * 20, seq * 20 + 20)))
            accepted += ack.accepted
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    st = status_of(e.value)
    assert error_info(st).reason == "SPOOL_FULL" and "RetryInfo" in details(st)
    assert accepted > 0 and b.routes["r"].full
    assert b.routes["r"].spool.disk_bytes <= 64 * 1024


async def test_unary_ingest_in_spool_mode_acks_fast_and_counts(faulty, tmp_path, bridge_factory, channel_factory):
    faulty.script({"stall": True})
    b = await bridge_factory({"r": spooled(faulty.url + "/in", tmp_path)})
    summary = await channel_factory(b).Ingest(iter([sample.json_request("r", s, range(s * 5, s * 5 + 5))
                                                    for s in range(4)]), timeout=5)
    assert (summary.batches, summary.accepted) == (4, 20), "acknowledged while the target holds the request"
    faulty.release()
    await wait_until(lambda: len(faulty.rows) == 20)


def test_spool_mode_does_not_take_several_workers(tmp_path, capsys):
    from bridge.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"listen: 127.0.0.1:50999\nroutes:\n  r: {{dialect: http, url: 'http://127.0.0.1:1/', "
                   f"spool: {{dir: {tmp_path}}}}}\n")
    assert main(["serve", "--config", str(cfg), "--workers", "2"]) == 2
    assert "spooled: r" in capsys.readouterr().err


async def test_dead_lettered_rows_can_be_sent_again_once_the_target_takes_them(faulty, tmp_path, bridge_factory,
                                                                              channel_factory, sink):
    import io

    from bridge.client import sendfile

    faulty.script({"status": 422, "body": {"message": "no such column: price"}})
    b = await bridge_factory({"r": spooled(faulty.url + "/in", tmp_path)})
    assert (await channel_factory(b).IngestBatch(sample.json_request("r", 0, range(4)))).accepted == 4
    route = b.routes["r"]
    await wait_until(lambda: route.spool.wal.undelivered == 0)
    dead = tmp_path / "r" / "dead-letter.ndjson"
    # The schema is fixed: the operator sends the dead letters again, to a route that takes them.
    b2 = await bridge_factory({"fixed": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}})
    out = io.StringIO()
    with open(dead, "rb") as f:
        rc = await sendfile.send(f"127.0.0.1:{b2.port}", "fixed", f, "dead-letter", out=out, tty=False)
    assert rc == 0, out.getvalue()
    assert sorted(r["id"] for r in sink.rows) == [0, 1, 2, 3]
    bad = io.BytesIO(b'{"not": "a dead-letter record"}\n')
    rc = await sendfile.send(f"127.0.0.1:{b2.port}", "fixed", bad, "dead-letter", out=out, tty=False)
    assert rc == 2 and "line 1 is not a dead-letter record" in out.getvalue()


async def test_records_lost_in_a_middle_segment_do_not_hold_the_cursor(tmp_path):
    wal = await written(tmp_path, [bytes([i]) * 100 for i in range(9)], segment_bytes=300)
    await wal.close()
    segments = sorted(tmp_path.glob("seg-*.wal"))
    middle = segments[1]
    middle.write_bytes(middle.read_bytes()[: len(MAGIC) + 10])  # damaged: its records are gone
    wal, out, truncated = await replayed(tmp_path, segment_bytes=300)
    lost = [seq for seq in range(1, 10) if seq not in {s for s, _ in out}]
    assert lost and any("lost" in t for t in truncated)
    for seq, _ in out:
        wal.done(seq)
    assert wal.cursor == 9, "every record delivered or lost: the cursor reaches the end"
    assert len(list(tmp_path.glob("seg-*.wal"))) == 1, "and the delivered segments go"
    await wal.close()
