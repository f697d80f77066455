"""The spool's system calls in one small object, so tests can inject a short write or a failing fsync.

The write-ahead log and the dead-letter file do all their file I/O through a
``FileIO``; the default one is a thin layer over ``os``. ``write_all`` is the
only way they write: every byte, or an ``OSError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


class FileIO:
    def open(self, path: str | os.PathLike, flags: int, mode: int = 0o600) -> int:
        return os.open(path, flags, mode)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        return os.pread(fd, n, offset)

    def fstat_size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def close(self, fd: int) -> None:
        os.close(fd)


def write_all(io: FileIO, fd: int, data: bytes) -> None:
    """Write every byte of ``data`` or raise OSError; a short write is continued, a write of nothing is ENOSPC."""
    view = memoryview(data)
    done = 0
    while done < len(data):
        n = io.write(fd, view[done:])
        if n <= 0:  # a regular file that takes nothing is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += n


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_number(path: Path) -> int:
    """A small file holding one number; 0 when it is missing or unreadable (such files are hints)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def replace_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temporary file, then a rename); OSError when it cannot."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
