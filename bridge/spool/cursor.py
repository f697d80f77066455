"""One reader of the write-ahead log: a target's place in it, and the records it has yet to deliver.

A log has one cursor per target (one, unnamed, on a single-target route). Each
hands out the log's synced records in order, on its own: a record a target
took, or set aside, is ``done`` for that cursor only; one it could not deliver
yet is ``requeue``d for it only. ``position`` is the highest seq below which
every record is done for this cursor; it is saved (by rename) to the cursor's
file as a hint: a file that cannot be written costs resends, never rows. The
log deletes a segment once every cursor's position passed its last record.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from bridge.spool.fileio import FileIO, read_number, replace_text
from bridge.spool.segment import HEADER, CorruptRecord, Item, check_record

CURSOR_EVERY = 0.1  # seconds between cursor writes while records are being delivered


def cursor_file(name: str) -> str:
    """``cursor`` for the single-target route's cursor (the layout before targets), ``cursor.<name>`` else."""
    return "cursor" if not name else f"cursor.{name}"


def start_positions(directory: Path, names: list[str], notes: list[str]
                    ) -> tuple[dict[str, int], list[str], list[str]]:
    """Where each named cursor starts, from the cursor files in ``directory``: (positions of the names that
    resume, the names new to the route, the files no name owns). A new name starts at the log's end (the
    caller knows where that is) unless no name has a file: then every name starts where the slowest file
    left behind was (or at 0), so renaming or adding targets all at once drops no acknowledged record.
    What was decided about whom goes to ``notes``, for the log."""
    files = {p.name for p in directory.glob("cursor*") if not p.name.endswith(".tmp") and p.is_file()}
    owner = {cursor_file(n): n for n in names}
    known = {owner[f]: read_number(directory / f) for f in files if f in owner}
    orphans = sorted(f for f in files if f not in owner)
    left = {f: read_number(directory / f) for f in orphans}
    for f in orphans:
        notes.append(f"{f} (at record {left[f]}) belongs to no target of the route: dropped")
    if known:
        added = [n for n in names if n not in known]
        for n in added:
            notes.append(f"target {n!r} is new: it starts at the log's end (history is not replayed to it)")
        return known, added, orphans
    base = min(left.values(), default=0)
    if left:
        notes.append(f"every target starts after record {base}, where the slowest of {', '.join(orphans)} was")
    return dict.fromkeys(names, base), [], orphans


class Cursor:
    def __init__(self, name: str, directory: Path, io: FileIO, position: int = 0, optional: bool = False) -> None:
        self.name = name
        self.path = directory / cursor_file(name)
        self.io = io
        self.optional = optional  # it may be moved ahead, past records it never delivered, to free the log
        self.position = position  # every seq <= position is done for this cursor
        self.pending: deque[Item] = deque()  # synced records to hand out
        self.inflight: dict[int, Item] = {}  # handed out, not yet done
        self.skipped = 0  # records passed over by skip_to (never delivered through this cursor)
        self._done: set[int] = set()
        self._new_records = asyncio.Event()
        self._saved = position
        self._saved_time = 0.0
        # Called after the position moved (the log drops segments every cursor passed).
        self.on_move: Callable[[], None] = lambda: None
        # Called with (operation, OSError) when the cursor's file cannot be written: the owner logs and counts.
        self.on_error: Callable[[str, OSError], None] = lambda op, e: None

    def offer(self, item: Item) -> None:
        """A record is synced: this cursor hands it out in turn (unless it already passed it)."""
        if item[0] > self.position:
            self.pending.append(item)
            self._new_records.set()

    @property
    def undelivered(self) -> int:
        return len(self.pending) + len(self.inflight)

    async def next_record(self) -> tuple[int, bytes]:
        """The next record to deliver, in order (waits for one), checked against its length and checksum.

        CorruptRecord if its bytes on disk are not what was written (the record is then in flight: the
        caller settles it with ``done``); OSError if the file cannot be read (it is requeued).
        """
        while not self.pending:
            self._new_records.clear()
            await self._new_records.wait()
        seq, seg, offset, length = item = self.pending.popleft()
        self.inflight[seq] = item
        start = offset - HEADER.size
        try:
            fd = self.io.open(seg.path, os.O_RDONLY)
            try:
                data = self.io.pread(fd, HEADER.size + length, start)
            finally:
                self.io.close(fd)
        except OSError:
            self.requeue(seq)  # not read, not judged: it stays for another try
            raise
        problem = check_record(data, seq, length)
        if problem is not None:
            raise CorruptRecord(seq, seg.path.name, start, problem)
        return seq, data[HEADER.size:]

    def done(self, seq: int) -> None:
        """Record ``seq`` needs no more delivery through this cursor (taken, or set aside)."""
        self.inflight.pop(seq, None)
        if seq <= self.position:
            return  # skipped past while in flight
        self._done.add(seq)
        if self.advance():
            self.on_move()
        if time.monotonic() - self._saved_time >= CURSOR_EVERY:
            self.save()  # a fresh cursor keeps what a restart sends again small

    def passed(self, seqs: list[int]) -> None:
        """Records that will never be handed out (lost at start, or their fsync failed): not waited for."""
        self._done.update(s for s in seqs if s > self.position)
        self.advance()

    def advance(self) -> bool:
        moved = False
        while self.position + 1 in self._done:
            self.position += 1
            self._done.discard(self.position)
            moved = True
        return moved

    def requeue(self, seq: int) -> None:
        """Record ``seq`` was not delivered (the target is away): hand it out again, before newer records."""
        item = self.inflight.pop(seq, None)
        if item is not None and seq > self.position:
            bisect.insort(self.pending, item, key=lambda r: r[0])
            self._new_records.set()

    def skip_to(self, seq: int) -> int:
        """Move past every record up to ``seq``, delivered or not; how many were never handed out."""
        if seq <= self.position:
            return 0
        skipped = 0
        while self.pending and self.pending[0][0] <= seq:
            self.pending.popleft()
            skipped += 1
        # Records in flight are being delivered already: their answer no longer moves the cursor.
        for s in [s for s in self.inflight if s <= seq]:
            del self.inflight[s]
        self._done = {s for s in self._done if s > seq}
        self.position = seq
        self.advance()
        self.skipped += skipped
        self.on_move()
        return skipped

    def save(self, force: bool = False) -> None:
        """Write the position (a hint: if it cannot be written, a restart resends more, and nothing is lost)."""
        if self.position == self._saved and not force:
            return
        self._saved_time = time.monotonic()  # a failing disk is not tried again at every delivered record
        try:
            replace_text(self.path, str(self.position))
        except OSError as e:
            self.on_error("cursor", e)
            return
        self._saved = self.position
