"""The write-ahead log under a spooled route: segment files of checksummed records, fsynced before any ack.

A segment ``seg-<first seq>.wal`` starts with an 8-byte magic; each record is
``length (u32) | crc32 of seq+payload (u32) | seq (u64) | payload``. Records
are numbered from 1 without gaps. ``cursor`` holds the highest seq below
which every record was delivered, so a restart resends little; it is a hint,
written by rename: losing it costs duplicates, never rows.

At start every segment is read through: a torn or corrupt record (a kill or
a power cut mid-write) ends its segment, which is truncated there and
reported; nothing after it in that segment is trusted. Appends share fsyncs
(group commit): an append returns once an fsync that began after its write
has finished.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from bridge.model.errors import SpoolError

MAGIC = b"IBWAL01\n"
HEADER = struct.Struct("<IIQ")
MAX_RECORD = 1 << 31
CURSOR_EVERY = 0.1  # seconds between cursor writes while records are being delivered


@dataclass(slots=True)
class Segment:
    first: int  # seq of its first record
    path: Path
    size: int
    last: int = 0  # seq of its last record (0: none yet)


@dataclass
class Recovery:
    """What opening the log found."""

    records: int = 0  # records still to deliver
    segments: int = 0
    truncated: list[str] = field(default_factory=list)  # one line per torn or corrupt place


def _crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(seq.to_bytes(8, "little")))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Wal:
    def __init__(self, directory: str | Path, segment_bytes: int = 16 << 20, fsync_interval: float = 0.0) -> None:
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.segments: list[Segment] = []
        self.pending: deque[tuple[int, Segment, int, int]] = deque()  # (seq, segment, offset, length) to hand out
        self.inflight: dict[int, tuple[int, Segment, int, int]] = {}  # handed out, not yet done
        self.next_seq = 1
        self.cursor = 0  # every seq <= cursor is delivered
        self._done: set[int] = set()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._written = 0  # appends written so far (a generation number for group commit)
        self._synced = 0
        self._sync_cond: asyncio.Condition | None = None
        self._syncer: asyncio.Task | None = None
        self._new_records = asyncio.Event()
        self._cursor_saved = 0
        self._cursor_time = 0.0
        self._retired: list[int] = []
        self.closed = False

    # -- open and recover ---------------------------------------------------------------
    def open(self) -> Recovery:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise SpoolError(f"cannot use spool directory {self.dir}: {e.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SpoolError(f"spool directory {self.dir} is in use by another process") from None
        self.cursor = self._read_cursor()
        report = Recovery()
        paths = sorted(self.dir.glob("seg-*.wal"))
        for path in paths:
            self._recover_segment(path, report)
        self.segments.sort(key=lambda s: s.first)
        self.next_seq = max([s.last + 1 for s in self.segments if s.last] + [self.cursor + 1, 1])
        self.pending = deque(sorted(self.pending, key=lambda r: r[0]))
        # Records cut out of a middle segment are gone: the cursor must not wait for them forever.
        present = {r[0] for r in self.pending}
        lost = [seq for seq in range(self.cursor + 1, self.next_seq) if seq not in present]
        if lost:
            report.truncated.append(f"{len(lost)} record(s) lost to the damage above (seq {lost[0]}..{lost[-1]})")
            self._done.update(lost)
            self._advance_cursor()
        self._drop_delivered_segments()
        report.records = len(self.pending)
        report.segments = len(self.segments)
        self._open_active()
        return report

    def _read_cursor(self) -> int:
        try:
            text = (self.dir / "cursor").read_text().strip()
            return int(text) if text.isdigit() else 0
        except OSError:
            return 0

    def _recover_segment(self, path: Path, report: Recovery) -> None:
        data = path.read_bytes()
        try:
            first = int(path.stem.split("-", 1)[1])
        except ValueError:
            report.truncated.append(f"{path.name}: not a segment name; left alone")
            return
        if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
            # Created but not yet written when the process died (or not ours): nothing in it was acknowledged.
            report.truncated.append(f"{path.name}: no segment header ({len(data)} bytes); removed")
            path.unlink()
            return
        seg = Segment(first, path, len(data))
        pos, expect = len(MAGIC), first
        while pos < len(data):
            problem = None
            if len(data) - pos < HEADER.size:
                problem = "torn record header"
            else:
                length, crc, seq = HEADER.unpack_from(data, pos)
                end = pos + HEADER.size + length
                if end > len(data):
                    problem = "torn record"
                elif seq != expect:
                    problem = f"record numbered {seq} where {expect} was due"
                elif _crc(seq, data[pos + HEADER.size:end]) != crc:
                    problem = "checksum mismatch"
            if problem is not None:
                report.truncated.append(f"{path.name}: {problem} at offset {pos}; "
                                        f"{len(data) - pos} bytes dropped")
                with open(path, "r+b") as f:
                    f.truncate(pos)
                    os.fsync(f.fileno())
                seg.size = pos
                break
            if seq > self.cursor:
                self.pending.append((seq, seg, pos + HEADER.size, length))
            seg.last = seq
            expect = seq + 1
            pos = end
        self.segments.append(seg)

    def _open_active(self) -> None:
        active = self.segments[-1] if self.segments else None
        if active is None or active.size >= self.segment_bytes:
            active = self._new_segment()
        self._fd = os.open(active.path, os.O_WRONLY | os.O_APPEND)

    def _new_segment(self) -> Segment:
        path = self.dir / f"seg-{self.next_seq:020d}.wal"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, MAGIC)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.dir)
        seg = Segment(self.next_seq, path, len(MAGIC))
        self.segments.append(seg)
        return seg

    # -- append ---------------------------------------------------------------------------
    @property
    def disk_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    async def append(self, payload: bytes) -> int:
        """Write one record; returns its seq once it is on disk (fsynced)."""
        if self.closed or self._fd is None:
            raise SpoolError("the spool is closed")
        if len(payload) >= MAX_RECORD:
            raise SpoolError(f"a record of {len(payload)} bytes is too large for the spool")
        seg = self.segments[-1]
        if seg.size >= self.segment_bytes and seg.last:
            os.fsync(self._fd)
            # Closed by the sync loop: an fsync of it may be running in a thread right now.
            self._retired.append(self._fd)
            seg = self._new_segment()
            self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        seq = self.next_seq
        self.next_seq += 1
        header = HEADER.pack(len(payload), _crc(seq, payload), seq)
        os.write(self._fd, header + payload)  # one write: a record is never interleaved with another
        offset = seg.size + HEADER.size
        seg.size += HEADER.size + len(payload)
        seg.last = seq
        self._written += 1
        # Deliverable at once, in seq order; only the caller's ack waits for the fsync.
        self.pending.append((seq, seg, offset, len(payload)))
        self._new_records.set()
        await self._wait_synced(self._written)
        return seq

    async def _wait_synced(self, generation: int) -> None:
        cond = self._cond()
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.create_task(self._sync_loop(), name=f"wal-sync-{self.dir.name}")
        async with cond:
            cond.notify_all()
            await cond.wait_for(lambda: self._synced >= generation or self.closed)
        if self._synced < generation:
            raise SpoolError("the spool closed before the record was synced")

    def _cond(self) -> asyncio.Condition:
        if self._sync_cond is None:
            self._sync_cond = asyncio.Condition()
        return self._sync_cond

    async def _sync_loop(self) -> None:
        cond = self._cond()
        while not self.closed:
            async with cond:
                await cond.wait_for(lambda: self._written > self._synced or self.closed)
            if self.closed:
                return
            if self.fsync_interval:
                await asyncio.sleep(self.fsync_interval)  # gather more appends into this fsync
            generation, fd = self._written, self._fd
            if fd is not None:
                await asyncio.to_thread(os.fsync, fd)
            self._close_retired()
            async with cond:
                self._synced = generation
                cond.notify_all()

    def _close_retired(self) -> None:
        while self._retired:
            with contextlib.suppress(OSError):
                os.close(self._retired.pop())

    # -- hand out and settle ------------------------------------------------------------------
    async def next_record(self) -> tuple[int, bytes]:
        """The next record to deliver, in order (waits for one)."""
        while not self.pending:
            self._new_records.clear()
            await self._new_records.wait()
        seq, seg, offset, length = item = self.pending.popleft()
        self.inflight[seq] = item
        with open(seg.path, "rb") as f:
            f.seek(offset)
            payload = f.read(length)
        return seq, payload

    def done(self, seq: int) -> None:
        """Record ``seq`` needs no more delivery (the target took it, or it went to the dead-letter file)."""
        self.inflight.pop(seq, None)
        self._done.add(seq)
        self._advance_cursor()
        self._drop_delivered_segments()
        if time.monotonic() - self._cursor_time >= CURSOR_EVERY:
            self.save_cursor()  # a fresh cursor keeps what a restart sends again small

    def _advance_cursor(self) -> None:
        while self.cursor + 1 in self._done:
            self.cursor += 1
            self._done.discard(self.cursor)

    def requeue(self, seq: int) -> None:
        """Record ``seq`` was not delivered (the target is away): hand it out again, before newer records."""
        item = self.inflight.pop(seq, None)
        if item is not None:
            bisect.insort(self.pending, item, key=lambda r: r[0])
            self._new_records.set()

    @property
    def undelivered(self) -> int:
        return len(self.pending) + len(self.inflight)

    def _drop_delivered_segments(self) -> None:
        removed = False
        while len(self.segments) > 1 and self.segments[0].last <= self.cursor:  # never the active one
            seg = self.segments.pop(0)
            with contextlib.suppress(FileNotFoundError):
                seg.path.unlink()
            removed = True
        if removed:
            self.save_cursor()

    def save_cursor(self) -> None:
        if self.cursor == self._cursor_saved or self._lock_fd is None:
            return
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(str(self.cursor))
        os.replace(tmp, self.dir / "cursor")
        self._cursor_saved = self.cursor
        self._cursor_time = time.monotonic()

    async def close(self) -> None:
        if self.closed:
            return
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            self._synced = self._written
        self.closed = True
        cond = self._cond()
        async with cond:
            cond.notify_all()
        if self._syncer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._syncer
        self._close_retired()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.save_cursor()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
