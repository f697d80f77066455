"""One segment file of the write-ahead log: its record format, reading it back at start, and the log's errors.

A segment ``seg-<first seq>.wal`` starts with an 8-byte magic; each record is
``length (u32) | crc32 of seq+payload (u32) | seq (u64) | payload``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.model.errors import SpoolError

MAGIC = b"IBWAL01\n"
HEADER = struct.Struct("<IIQ")
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class SpoolWriteError(SpoolError):
    """A record was not written or not synced: it is not in the log and must not be acknowledged."""

    def __init__(self, message: str, err: int | None, op: str = "write") -> None:
        super().__init__(message)
        self.errno = err
        self.op = op  # write | fsync | segment (starting a new segment file)

    @property
    def full(self) -> bool:
        return self.errno in FULL_ERRNOS


class CorruptRecord(SpoolError):
    """A record read for delivery is not what was written (length, number or checksum): never delivered."""

    def __init__(self, seq: int, segment: str, offset: int, problem: str) -> None:
        super().__init__(f"record {seq} in {segment} at offset {offset}: {problem}")
        self.seq, self.segment, self.offset, self.problem = seq, segment, offset, problem


@dataclass(slots=True)
class Segment:
    first: int  # seq of its first record
    path: Path
    size: int
    last: int = 0  # seq of its last record (0: none yet)
    synced: int = 0  # bytes known to be on disk (fsynced)
    synced_last: int = 0  # seq of the last record known to be on disk


Item = tuple[int, Segment, int, int]  # (seq, segment, payload offset, payload length)


@dataclass(slots=True)
class Unsynced:
    fd: int
    item: Item
    future: asyncio.Future


@dataclass
class Recovery:
    """What opening the log found."""

    records: int = 0  # records still to deliver
    segments: int = 0
    truncated: list[str] = field(default_factory=list)  # one line per torn or corrupt place
    cursors: list[str] = field(default_factory=list)  # one line per cursor added, dropped or inherited
    disk_full: str | None = None  # the disk was full at start (opened anyway: there are records to deliver)


def crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(seq.to_bytes(8, "little")))


def check_record(data: bytes, seq: int, length: int) -> str | None:
    """What is wrong with the bytes read for record ``seq`` (header and payload), or None."""
    if len(data) < HEADER.size + length:
        return f"short read: {len(data)} of {HEADER.size + length} bytes"
    got_length, got_crc, got_seq = HEADER.unpack_from(data, 0)
    if got_length != length or got_seq != seq:
        return f"header says record {got_seq} of {got_length} bytes"
    if crc(seq, data[HEADER.size:HEADER.size + length]) != got_crc:
        return "checksum mismatch"
    return None


def recover_segment(path: Path, cursor: int, report: Recovery, keep: Callable[[Item], None]) -> Segment | None:
    """Read a segment through at start; ``keep`` gets each record after ``cursor``. A torn or corrupt record
    ends the segment: the file is cut there and the place reported. None: not a segment (or removed)."""
    data = path.read_bytes()
    try:
        first = int(path.stem.split("-", 1)[1])
    except ValueError:
        report.truncated.append(f"{path.name}: not a segment name; left alone")
        return None
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        # Created but not yet written when the process died (or not ours): nothing in it was acknowledged.
        report.truncated.append(f"{path.name}: no segment header ({len(data)} bytes); removed")
        path.unlink()
        return None
    seg = Segment(first, path, len(data))
    pos, expect = len(MAGIC), first
    while pos < len(data):
        problem = None
        if len(data) - pos < HEADER.size:
            problem = "torn record header"
        else:
            length, got_crc, seq = HEADER.unpack_from(data, pos)
            end = pos + HEADER.size + length
            if end > len(data):
                problem = "torn record"
            elif seq != expect:
                problem = f"record numbered {seq} where {expect} was due"
            elif crc(seq, data[pos + HEADER.size:end]) != got_crc:
                problem = "checksum mismatch"
        if problem is not None:
            report.truncated.append(f"{path.name}: {problem} at offset {pos}; {len(data) - pos} bytes dropped")
            with open(path, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
            seg.size = pos
            break
        if seq > cursor:
            keep((seq, seg, pos + HEADER.size, length))
        seg.last = seq
        expect = seq + 1
        pos = end
    seg.synced, seg.synced_last = seg.size, seg.last
    return seg
