"""The write-ahead log under a spooled route: segment files of checksummed records, fsynced before any ack.

Segments hold checksummed, numbered records (format in ``segment.py``). Records
are numbered from 1; numbers left out by a failed fsync are skipped. Each
target reads the log through its own ``Cursor`` (``cursor.py``): a
single-target log has one, unnamed, saved in ``cursor``; a log opened with
``cursors=("a", "b")`` has one per name, saved in ``cursor.a``, ``cursor.b``.
A cursor file holds the highest seq below which every record was delivered to
that target, so a restart resends little; it is a hint, written by rename:
losing it costs duplicates, never rows. A segment is deleted once every
cursor passed it, so ``disk_bytes`` is what the slowest target still needs.

Cursors at open: a configured name with a file resumes there. A name without
one is a target added to the route: it starts at the log's end (history is
not replayed to it) and its file is written at once. If no configured name
has a file (a new spool, or a route whose targets were all renamed or turned
from one into several), every cursor starts where the slowest of the files
left behind did (or at the start), so no acknowledged record is dropped. A
file no configured name owns (a removed target's) is deleted and reported.

At start every segment is read through: a torn or corrupt record (a kill or
a power cut mid-write) ends its segment, which is truncated there and
reported; nothing after it in that segment is trusted. Appends share fsyncs
(group commit): an append returns once an fsync that began after its write
has succeeded, and only then is its record handed out for delivery. A write
that does not complete is cut off the segment before anything else is
appended; an fsync that fails fails every append waiting on that file and the
log moves on to a fresh segment (see ARCHITECTURE.md, "The spool").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from collections import deque
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from bridge.model.errors import SpoolError
from bridge.spool.cursor import Cursor, start_positions
from bridge.spool.fileio import FileIO, fsync_dir, replace_text, write_all
from bridge.spool.segment import (
    HEADER,
    MAGIC,
    CorruptRecord,
    Item,
    Recovery,
    Segment,
    SpoolWriteError,
    Unsynced,
    crc,
    recover_segment,
)

MAX_RECORD = 1 << 31
MIN_FREE = 64 << 10  # at start, a disk with less free than this is full

__all__ = ["HEADER", "MAGIC", "CorruptRecord", "Cursor", "Recovery", "SpoolWriteError", "Wal"]


class Wal:
    def __init__(self, directory: str | Path, segment_bytes: int = 16 << 20, fsync_interval: float = 0.0,
                 io: FileIO | None = None, cursors: Sequence[str] = (), optional: Collection[str] = ()) -> None:
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.io = io or FileIO()
        # Called with (operation, OSError) when a cursor write fails: the owner logs and counts it.
        self.on_error: Callable[[str, OSError], None] = lambda op, e: None
        self.segments: list[Segment] = []
        names = tuple(cursors) or ("",)
        if len(set(names)) != len(names) or (len(names) > 1 and "" in names):
            raise ValueError(f"cursor names must be distinct and named: {names}")
        self.cursors: dict[str, Cursor] = {
            n: Cursor(n, self.dir, self.io, optional=n in optional) for n in names}
        for c in self.cursors.values():
            c.on_move = self._drop_delivered_segments
            c.on_error = lambda op, e: self.on_error(op, e)
        self.next_seq = 1
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._unsynced: deque[Unsynced] = deque()  # written, waiting for an fsync
        self._wake = asyncio.Event()
        self._syncer: asyncio.Task | None = None
        self._rotate = False  # the active segment cannot be trusted for more appends
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
            self._release_lock()
            raise SpoolError(f"spool directory {self.dir} is in use by another process") from None
        try:
            return self._open_locked()
        except OSError as e:
            self._release_lock()
            raise SpoolError(f"cannot use spool directory {self.dir}: {e.strerror or e}") from None
        except SpoolError:
            self._release_lock()
            raise

    def _open_locked(self) -> Recovery:
        report = Recovery()
        start, added, orphans = start_positions(self.dir, list(self.cursors), report.cursors)
        floor = min(start.values(), default=0)
        found: list = []
        for path in sorted(self.dir.glob("seg-*.wal")):
            seg = recover_segment(path, floor, report, found.append)
            if seg is not None:
                self.segments.append(seg)
        self.segments.sort(key=lambda s: s.first)
        self.next_seq = max([s.last + 1 for s in self.segments if s.last] + [p + 1 for p in start.values()] + [1])
        for name in added:  # a target new to the route starts at the log's end
            start[name] = self.next_seq - 1
        found.sort(key=lambda r: r[0])
        for name, c in self.cursors.items():
            c.position = c._saved = start[name]
            for item in found:
                c.offer(item)
        # Records cut out of a middle segment are gone: the cursors must not wait for them forever.
        present = {r[0] for r in found}
        lost = [seq for seq in range(floor + 1, self.next_seq) if seq not in present]
        if lost:
            report.truncated.append(f"{len(lost)} record(s) lost to the damage above (seq {lost[0]}..{lost[-1]})")
            for c in self.cursors.values():
                c.passed(lost)
        if len(self.cursors) > 1:  # written now: a file present is how the next start knows the target
            for c in self.cursors.values():
                if not c.path.is_file():
                    replace_text(c.path, str(c.position))
        for f in orphans:
            (self.dir / f).unlink(missing_ok=True)
        self._drop_delivered_segments()
        report.records = self.undelivered
        report.segments = len(self.segments)
        # A full disk with records to deliver opens (delivering them frees it); an empty spool on a full disk
        # could never take a row, and any other write failure is a broken directory: both are errors.
        try:
            self._probe()
            self._open_active()
        except SpoolWriteError as e:
            if not (e.full and report.records):
                raise SpoolError(f"spool directory {self.dir}: {e}") from None
            report.disk_full = str(e)
            self._rotate = True  # the first append that finds room starts a segment
        return report

    def _probe(self) -> None:
        """Prove the directory takes a write and an fsync now, not at the first caller's request."""
        fd = self._lock_fd
        assert fd is not None
        try:
            self.io.ftruncate(fd, 0)
            write_all(self.io, fd, b"%d\n" % os.getpid())
            self.io.fsync(fd)
        except OSError as e:
            raise SpoolWriteError(f"cannot write {self.dir / 'lock'}: {e.strerror or e}", e.errno) from None
        st = os.statvfs(self.dir)
        free = st.f_bavail * st.f_frsize
        if free < MIN_FREE:
            raise SpoolWriteError(f"the disk holding it is full ({free} bytes free)", errno.ENOSPC)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _open_active(self) -> None:
        active = self.segments[-1] if self.segments else None
        if active is None or active.size >= self.segment_bytes:
            active = self._new_segment()
        self._fd = self.io.open(active.path, os.O_WRONLY | os.O_APPEND)

    def _new_segment(self) -> Segment:
        path = self.dir / f"seg-{self.next_seq:020d}.wal"
        try:
            fd = self.io.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(self.io, fd, MAGIC)
                self.io.fsync(fd)
            finally:
                self.io.close(fd)
            fsync_dir(self.dir)
        except OSError as e:
            with contextlib.suppress(OSError):
                path.unlink()  # a segment without its header holds nothing
            raise SpoolWriteError(f"cannot start segment {path}: {e.strerror or e}", e.errno, "segment") from None
        seg = Segment(self.next_seq, path, len(MAGIC), synced=len(MAGIC))
        self.segments.append(seg)
        return seg

    # -- append ---------------------------------------------------------------------------
    @property
    def disk_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def _rotate_now(self) -> Segment:
        """A fresh active segment; the old file is closed once nothing waits for its fsync."""
        old = self.segments[-1] if self.segments else None
        seg = self._new_segment()  # SpoolWriteError: the old segment stays active
        if old is not None and old.last == 0 and old.path == seg.path:  # it held nothing: the new one took its name
            self.segments.remove(old)
        if self._fd is not None:
            self._retired.append(self._fd)
        self._fd = self.io.open(seg.path, os.O_WRONLY | os.O_APPEND)
        self._rotate = False
        return seg

    async def append(self, payload: bytes) -> int:
        """Write one record; returns its seq once it is on disk (fsynced). SpoolWriteError if it is not."""
        if self.closed or self._lock_fd is None:
            raise SpoolError("the spool is closed")
        if len(payload) >= MAX_RECORD:
            raise SpoolError(f"a record of {len(payload)} bytes is too large for the spool")
        if self._rotate or self._fd is None or (self.segments[-1].size >= self.segment_bytes
                                                  and self.segments[-1].last):
            self._rotate_now()
        seg = self.segments[-1]
        seq = self.next_seq
        fd = self._fd
        assert fd is not None
        try:
            write_all(self.io, fd, HEADER.pack(len(payload), crc(seq, payload), seq) + payload)
        except OSError as e:
            # Cut what was written of it before anything else is appended: the segment ends on a whole record.
            try:
                self.io.ftruncate(fd, seg.size)
            except OSError:
                self._rotate = True  # a torn tail stays (cut at the next start); append no more behind it
            raise SpoolWriteError(f"cannot write to {seg.path}: {e.strerror or e}", e.errno) from None
        self.next_seq += 1
        offset = seg.size + HEADER.size
        seg.size += HEADER.size + len(payload)
        seg.last = seq
        future = asyncio.get_running_loop().create_future()
        self._unsynced.append(Unsynced(fd, (seq, seg, offset, len(payload)), future))
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.create_task(self._sync_loop(), name=f"wal-sync-{self.dir.name}")
        self._wake.set()
        await future
        return seq

    async def _sync_loop(self) -> None:
        while True:
            if not self._unsynced:
                if self.closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.fsync_interval and not self.closed:
                await asyncio.sleep(self.fsync_interval)  # gather more appends into this fsync
            await self._sync_once()

    async def _sync_once(self) -> None:
        batch = list(self._unsynced)
        self._unsynced.clear()
        fds = list(dict.fromkeys(u.fd for u in batch))
        failed: dict[int, OSError] = {}
        for fd in fds:
            try:
                await asyncio.to_thread(self.io.fsync, fd)
            except OSError as e:
                failed[fd] = e
        for u in batch:
            if u.fd in failed:
                continue
            seq, seg, offset, length = u.item
            seg.synced, seg.synced_last = offset + length, seq
            for c in self.cursors.values():
                c.offer(u.item)  # deliverable only now: never a record that might not be on disk
            if not u.future.done():
                u.future.set_result(seq)
        for fd, e in failed.items():
            self._fsync_failed(fd, e, [u for u in batch if u.fd == fd])
        self._close_retired()

    def _fsync_failed(self, fd: int, e: OSError, batch: list[Unsynced]) -> None:
        """After a failed fsync the file's unsynced pages may be lost whatever later fsyncs say: every record
        written to it since the last good fsync fails, the file is cut back to that point, and appends go on
        in a fresh segment."""
        later = [u for u in self._unsynced if u.fd == fd]
        self._unsynced = deque(u for u in self._unsynced if u.fd != fd)
        seg = batch[0].item[1]
        err = SpoolWriteError(f"cannot sync {seg.path}: {e.strerror or e}", e.errno, "fsync")
        for u in batch + later:
            if not u.future.done():
                u.future.set_exception(err)
        never = [u.item[0] for u in batch + later]  # never acknowledged, never handed out: nothing to deliver
        for c in self.cursors.values():
            c.passed(never)
        seg.size, seg.last = seg.synced, seg.synced_last
        with contextlib.suppress(OSError):
            self.io.ftruncate(fd, seg.synced)  # best effort: else a restart may deliver them (duplicates)
        if fd == self._fd:
            self._rotate = True
        self._drop_delivered_segments()
        self.on_error("fsync", e)

    def _close_retired(self) -> None:
        busy = {u.fd for u in self._unsynced}
        for fd in [fd for fd in self._retired if fd not in busy]:
            self._retired.remove(fd)
            with contextlib.suppress(OSError):
                self.io.close(fd)

    # -- hand out and settle ------------------------------------------------------------------
    @property
    def cursor(self) -> int:
        """Every seq at or below this is done for every cursor: the segments holding only such records go."""
        return min(c.position for c in self.cursors.values())

    @property
    def only(self) -> Cursor:
        """The cursor of a single-target log (the methods below are its shorthands)."""
        if len(self.cursors) != 1:
            raise ValueError("a log with several cursors is read through wal.cursors[name]")
        return next(iter(self.cursors.values()))

    @property
    def pending(self) -> deque[Item]:
        return self.only.pending

    @property
    def inflight(self) -> dict[int, Item]:
        return self.only.inflight

    async def next_record(self) -> tuple[int, bytes]:
        return await self.only.next_record()

    def done(self, seq: int) -> None:
        self.only.done(seq)

    def requeue(self, seq: int) -> None:
        self.only.requeue(seq)

    @property
    def undelivered(self) -> int:
        """Records the slowest cursor has yet to deliver."""
        return max(c.undelivered for c in self.cursors.values())

    def _drop_delivered_segments(self) -> None:
        removed = False
        floor = self.cursor
        while len(self.segments) > 1 and self.segments[0].last <= floor:  # never the active one
            seg = self.segments.pop(0)
            with contextlib.suppress(OSError):  # a file left behind holds only delivered records
                seg.path.unlink()
            removed = True
        if removed and self._lock_fd is not None:
            self.save_cursor()

    def save_cursor(self) -> None:
        """Write every cursor that moved (hints: if one cannot be written, a restart resends more)."""
        if self._lock_fd is None:
            return
        for c in self.cursors.values():
            c.save()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._wake.set()
        if self._syncer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._syncer  # syncs what is written, then ends
        elif self._unsynced:
            await self._sync_once()
        for u in self._unsynced:  # the sync task was cancelled: these were never synced
            if not u.future.done():
                u.future.set_exception(SpoolError("the spool closed before the record was synced"))
        self._unsynced.clear()
        self._close_retired()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.io.close(self._fd)
            self._fd = None
        self.save_cursor()
        self._release_lock()
