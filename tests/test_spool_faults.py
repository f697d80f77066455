"""The spool on a full or failing disk: no acknowledged row is lost, no half record is delivered.

Faults are real where they can be (a small tmpfs, mounted here when running as
root, filled while rows arrive) and injected at the log's I/O seam where they
cannot (a short write, a failing fsync).
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys

import grpc
import orjson
import pytest

from bridge.dev import sample
from bridge.dev.emulators.http_sink import HttpSink
from bridge.spool.deadletter import DeadLetter
from bridge.spool.fileio import FileIO
from bridge.spool.wal import HEADER, MAGIC, CorruptRecord, SpoolWriteError, Wal
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until


class FaultyIO(FileIO):
    """Real system calls, except the faults asked for: ``short`` writes that stop halfway and then find the
    disk full, ``fsync_errors`` fsyncs that fail with EIO, ``truncate_errors`` ftruncates that fail."""

    def __init__(self, short: int = 0, fsync_errors: int = 0, truncate_errors: int = 0,
                 fsync_errno: int = errno.EIO) -> None:
        self.short, self.fsync_errors, self.truncate_errors = short, fsync_errors, truncate_errors
        self.fsync_errno = fsync_errno
        self._full_next = False
        self.truncates: list[tuple[int, int]] = []

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self._full_next:
            self._full_next = False
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if self.short and len(data) > 1:
            self.short -= 1
            self._full_next = True
            return os.write(fd, data[: len(data) // 2])
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.fsync_errors:
            self.fsync_errors -= 1
            raise OSError(self.fsync_errno, os.strerror(self.fsync_errno))
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        if self.truncate_errors:
            self.truncate_errors -= 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.truncates.append((fd, size))
        os.ftruncate(fd, size)


async def opened(directory, io: FileIO | None = None, **kw) -> Wal:
    wal = Wal(directory, io=io, **kw)
    wal.open()
    return wal


async def replay(directory, **kw) -> tuple[list[tuple[int, bytes]], list[str]]:
    wal = Wal(directory, **kw)
    report = wal.open()
    out = []
    while wal.pending:
        out.append(await wal.next_record())
    await wal.close()
    return out, report.truncated


def segment_bytes(directory) -> int:
    return sum(p.stat().st_size for p in directory.glob("seg-*.wal"))


# -- writes --------------------------------------------------------------------------------------
async def test_a_short_write_is_cut_off_and_fails_the_append_and_the_next_one_goes_on(tmp_path):
    io = FaultyIO()
    wal = await opened(tmp_path, io)
    assert await wal.append(b"a" * 100) == 1
    size = segment_bytes(tmp_path)
    io.short = 1
    with pytest.raises(SpoolWriteError) as e:
        await wal.append(b"b" * 100)
    assert e.value.full and e.value.errno == errno.ENOSPC
    assert segment_bytes(tmp_path) == size == wal.disk_bytes, "the half record is cut before anything else"
    assert await wal.append(b"c" * 100) == 2, "the refused record took no number"
    assert [seq for seq, _ in [await wal.next_record(), await wal.next_record()]] == [1, 2]
    await wal.close()
    out, truncated = await replay(tmp_path)
    assert out == [(1, b"a" * 100), (2, b"c" * 100)] and truncated == []


async def test_a_short_write_that_cannot_be_cut_moves_the_log_to_a_fresh_segment(tmp_path):
    io = FaultyIO()
    wal = await opened(tmp_path, io)
    await wal.append(b"a" * 100)
    io.short, io.truncate_errors = 1, 1
    with pytest.raises(SpoolWriteError):
        await wal.append(b"b" * 100)
    assert await wal.append(b"c" * 100) == 2
    assert len(list(tmp_path.glob("seg-*.wal"))) == 2, "nothing more is appended behind the torn tail"
    await wal.close()
    out, truncated = await replay(tmp_path)
    assert out == [(1, b"a" * 100), (2, b"c" * 100)]
    assert len(truncated) == 1 and "torn record" in truncated[0], "the tail is cut at the next start"


# -- fsync failures ---------------------------------------------------------------------------------
async def test_a_failed_fsync_fails_every_append_waiting_on_it_and_never_acks_them_later(tmp_path):
    io = FaultyIO()
    wal = await opened(tmp_path, io)
    assert await wal.append(b"kept") == 1
    io.fsync_errors = 1
    results = await asyncio.gather(*(wal.append(b"lost%d" % i) for i in range(5)), return_exceptions=True)
    assert results and all(isinstance(r, SpoolWriteError) and r.op == "fsync" for r in results), results
    assert [seq for seq, _ in [await wal.next_record()]] == [1] and not wal.pending, \
        "records whose fsync failed are never handed out"
    later = await wal.append(b"after")
    assert later > 1
    assert len(list(tmp_path.glob("seg-*.wal"))) == 2, "appends go on in a fresh segment"
    wal.done(1)
    assert (await wal.next_record())[1] == b"after"
    wal.done(later)
    assert wal.cursor == later, "the numbers of the failed records do not hold the cursor"
    await wal.close()
    out, truncated = await replay(tmp_path)
    assert out == [] and truncated == [], "the failed records were cut off their segment: not resent later"


async def test_an_fsync_failure_with_enospc_is_a_full_spool(tmp_path):
    io = FaultyIO(fsync_errno=errno.ENOSPC)
    wal = await opened(tmp_path, io)
    io.fsync_errors = 1
    with pytest.raises(SpoolWriteError) as e:
        await wal.append(b"x")
    assert e.value.full
    assert await wal.append(b"y") == 2
    await wal.close()


# -- reads ---------------------------------------------------------------------------------------
async def test_a_record_damaged_after_it_was_written_is_never_handed_out(tmp_path):
    wal = await opened(tmp_path)
    for p in (b"a" * 40, b"b" * 40, b"c" * 40):
        await wal.append(p)
    seg = next(tmp_path.glob("seg-*.wal"))
    with open(seg, "r+b") as f:  # a bit flips on disk under the running log
        f.seek(len(MAGIC) + HEADER.size + 40 + HEADER.size + 3)
        f.write(b"X")
    assert await wal.next_record() == (1, b"a" * 40)
    with pytest.raises(CorruptRecord) as e:
        await wal.next_record()
    assert e.value.seq == 2 and "checksum" in e.value.problem and e.value.segment == seg.name
    assert await wal.next_record() == (3, b"c" * 40), "the records after it are read at their own offsets"
    await wal.close()


def spooled(url: str, directory, **spool) -> dict:
    return {"dialect": "http", "url": url, "batch": {"linger": "0s", "max_rows": 1000},
            "delivery": fast_delivery(max_elapsed="300ms"), "spool": {"dir": str(directory), **spool}}


def metric(bridge, name: str, **labels: str) -> float:
    value = bridge.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_a_damaged_record_is_listed_in_the_dead_letter_file_counted_and_the_rest_delivered(
        tmp_path, bridge_factory, channel_factory):
    sink = HttpSink(status=503)  # away while the record is damaged
    await sink.start()
    try:
        b = await bridge_factory({"r": spooled(sink.url + "/in", tmp_path)})
        route = b.routes["r"]
        route.spool.pause = 0.3
        stub = channel_factory(b)
        for s in range(3):
            assert (await stub.IngestBatch(sample.json_request("r", s, range(s * 10, s * 10 + 10)))).accepted == 10
        # Tried once and put back: all three wait in the log, to be read from disk again.
        await wait_until(lambda: len(route.spool.wal.pending) == 3 and sink.requests, 20)
        seg = next((tmp_path / "r").glob("seg-*.wal"))
        data = bytearray(seg.read_bytes())
        second = len(MAGIC) + HEADER.size + HEADER.unpack_from(data, len(MAGIC))[0]
        data[second + HEADER.size + 5] ^= 0x20
        seg.write_bytes(bytes(data))
        sink.status = 200
        await wait_until(lambda: route.spool.wal.undelivered == 0, 20)
        assert sorted(r["id"] for r in sink.rows) == list(range(10)) + list(range(20, 30))
        lines = [orjson.loads(x) for x in (tmp_path / "r" / "dead-letter.ndjson").read_bytes().splitlines()]
        assert len(lines) == 1
        assert lines[0]["spool_seq"] == 2 and lines[0]["rows"] == [] and lines[0]["segment"] == seg.name
        assert lines[0]["offset"] == second and lines[0]["status"]["reason"] == "SPOOL_CORRUPT_RECORD"
        assert metric(b, "ingest_bridge_spool_errors_total", route="r", op="read", error="corrupt") == 1
    finally:
        await sink.stop()


# -- the dead-letter file and the cursor -----------------------------------------------------------
def test_a_dead_letter_line_is_whole_or_absent(tmp_path):
    from bridge.model.outcome import Outcome
    from bridge.model.rows import Rows

    path = tmp_path / "dead-letter.ndjson"
    io = FaultyIO()
    dead = DeadLetter(path, io)
    rows = Rows(None, [b'{"id":1}', b'{"id":2}'], None)
    bad = Outcome(code="INVALID_ARGUMENT", reason="BAD", message="no")
    dead.write("r", 1, rows, bad)
    whole = path.read_bytes()
    io.short = 1
    with pytest.raises(OSError) as e:
        dead.write("r", 2, rows, bad)
    assert e.value.errno == errno.ENOSPC and path.read_bytes() == whole, "the half line is cut back off"
    io.short, io.truncate_errors = 1, 1
    with pytest.raises(OSError):
        dead.write("r", 3, rows, bad)
    assert path.read_bytes() != whole, "a half line is left when the cut itself fails"
    dead.write("r", 4, rows, bad)
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert [x["spool_seq"] for x in lines] == [1, 4], "and cut before the next line is written"
    assert dead.rows == 4


async def test_a_dead_letter_file_that_cannot_be_written_keeps_the_record_in_the_log(
        tmp_path, bridge_factory, channel_factory):
    sink = HttpSink(status=400)
    await sink.start()
    try:
        b = await bridge_factory({"r": spooled(sink.url + "/in", tmp_path)})
        route = b.routes["r"]
        route.spool.pause = 0.05
        io = route.spool.dead.io = FaultyIO(short=3)  # the disk is full for the first three tries
        assert (await channel_factory(b).IngestBatch(sample.json_request("r", 0, range(5)))).accepted == 5
        await wait_until(lambda: route.spool.wal.undelivered == 0, 20)
        assert io.short == 0
        lines = (tmp_path / "r" / "dead-letter.ndjson").read_bytes().splitlines()
        assert [[r["row"]["id"] for r in orjson.loads(x)["rows"]] for x in lines] == [[0, 1, 2, 3, 4]]
        assert metric(b, "ingest_bridge_spool_errors_total", route="r", op="dead_letter", error="ENOSPC") == 3
    finally:
        await sink.stop()


async def test_a_cursor_that_cannot_be_written_is_counted_and_costs_nothing_else(tmp_path, bridge_factory,
                                                                                channel_factory, sink):
    b = await bridge_factory({"r": spooled(sink.url + "/in", tmp_path)})
    (tmp_path / "r" / "cursor.tmp").mkdir()  # every cursor write now fails (EISDIR)
    stub = channel_factory(b)
    for s in range(3):
        assert (await stub.IngestBatch(sample.json_request("r", s, range(s * 5, s * 5 + 5)))).accepted == 5
    await wait_until(lambda: len(sink.rows) == 15 and b.routes["r"].spool.wal.undelivered == 0, 20)
    await b.stop(grace=0.5)  # the cursor is written at close too: no crash
    assert metric(b, "ingest_bridge_spool_errors_total", route="r", op="cursor", error="EISDIR") >= 1
    assert not (tmp_path / "r" / "cursor").exists()


# -- start-up --------------------------------------------------------------------------------------
def serve_error(tmp_path, spool_dir) -> tuple[int, str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(orjson.dumps({"listen": "127.0.0.1:0", "routes": {"clicks": {
        "dialect": "http", "url": "http://127.0.0.1:1/", "spool": {"dir": str(spool_dir)}}}}).decode())
    run = subprocess.run([sys.executable, "-m", "bridge", "serve", "--config", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    return run.returncode, run.stderr


def test_a_spool_directory_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "clicks").write_text("a file where the route's directory goes")
    rc, err = serve_error(tmp_path, tmp_path)
    assert rc == 2
    assert err.strip().splitlines() == [
        f"ingest-bridge: route 'clicks': cannot use spool directory {tmp_path}/clicks: File exists"]


# -- a real full disk ------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs, mounted for the test (root only, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True,
                         text=True)
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {run.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory) -> None:
    with open(directory / "filler", "wb") as f:
        try:
            for _ in range(1024):  # bounded: 16 MiB at most, the disk is 3 MiB
                f.write(b"\0" * (16 << 10))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_a_disk_already_full_at_start_is_one_clear_error(tmp_path, small_disk):
    fill(small_disk)
    rc, err = serve_error(tmp_path, small_disk)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ingest-bridge: route 'clicks': ")
    assert str(small_disk / "clicks") in lines[0] and ("full" in lines[0] or "No space" in lines[0])


async def test_a_disk_filling_under_load_loses_no_acknowledged_row(small_disk, bridge_factory, channel_factory):
    sink = HttpSink(status=503)  # the target is away while the disk fills
    await sink.start()
    try:
        b = await bridge_factory({"r": spooled(sink.url + "/in", small_disk, max_bytes="1GiB",
                                               segment_bytes="1MiB", fsync="always")})
        route = b.routes["r"]
        route.spool.pause = 0.05
        stub = channel_factory(b)
        acked: list[int] = []
        refusals: list[tuple] = []
        pad = "x" * 200
        next_id = 0

        async def caller(n_requests: int) -> None:
            nonlocal next_id
            for _ in range(n_requests):  # bounded
                if len(refusals) >= 40:
                    return
                ids = range(next_id, next_id + 50)
                next_id += 50
                req = sample.json_request("r", ids[0], [])
                req.json.objects.extend(b'{"id":%d,"pad":"%s"}' % (i, pad.encode()) for i in ids)
                try:
                    ack = await stub.IngestBatch(req)
                except grpc.aio.AioRpcError as e:
                    st = status_of(e)
                    refusals.append((e.code(), error_info(st).reason, "RetryInfo" in details(st)))
                    continue
                assert ack.accepted == 50 and ack.status.code == 0
                acked.extend(ids)

        await asyncio.gather(*(caller(400) for _ in range(4)))  # four callers: appends share fsyncs
        assert len(acked) > 5000 and refusals, (len(acked), len(refusals))
        assert set(refusals) == {(grpc.StatusCode.UNAVAILABLE, "SPOOL_FULL", True)}, "every refusal retryable"
        assert route.full and "SPOOL_FULL" in route.spool.problem, "the route's health says why"
        assert metric(b, "ingest_bridge_spool_errors_total", route="r", op="write", error="ENOSPC") >= 1

        sink.status = 200  # the target is back
        await wait_until(lambda: set(acked) <= {r["id"] for r in sink.rows}, 60)
        await wait_until(lambda: route.spool.wal.undelivered == 0, 20)
        assert all(r == {"id": r["id"], "pad": pad} for r in sink.rows), "every row intact"
        assert not (small_disk / "r" / "dead-letter.ndjson").exists(), "nothing acknowledged was set aside"
        assert {r["id"] for r in sink.rows} == set(acked), "a refused request left nothing in the log"

        await wait_until(lambda: not route.full, 20)  # delivered segments freed the disk: the route recovers by itself
        ack = await stub.IngestBatch(sample.json_request("r", 10**6, range(10**6, 10**6 + 5)))
        assert ack.accepted == 5 and route.spool.problem is None
    finally:
        await sink.stop()


async def test_a_bridge_restarted_on_a_full_disk_delivers_its_spool_and_takes_rows_again(
        small_disk, bridge_factory, channel_factory, sink):
    from bridge.model.rows import Rows
    from bridge.spool import records

    wal = await opened(small_disk / "r", segment_bytes=1 << 20)
    ids = []
    with pytest.raises(SpoolWriteError) as e:
        for n in range(10_000):  # bounded: the disk is full long before
            batch = range(n * 20, n * 20 + 20)
            await wal.append(records.dump(Rows(None, [b'{"id":%d,"pad":"%s"}' % (i, b"y" * 300) for i in batch],
                                               None)))
            ids += batch
    assert e.value.full
    await wal.close()
    b = await bridge_factory({"r": spooled(sink.url + "/in", small_disk, segment_bytes="1MiB")})
    route = b.routes["r"]
    assert route.spool.problem.startswith("SPOOL_FULL"), "it opened to deliver, and says the disk is full"
    await wait_until(lambda: route.spool.wal.undelivered == 0, 60)
    assert sorted(r["id"] for r in sink.rows) == ids
    await wait_until(lambda: not route.full, 20)
    ack = await channel_factory(b).IngestBatch(sample.json_request("r", 0, range(-5, 0)))
    assert ack.accepted == 5
