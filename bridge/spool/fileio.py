"""The spool's system calls in one small object, so tests can inject a short write or a failing fsync.

The write-ahead log and the dead-letter file do all their file I/O through a
``FileIO``; the default one is a thin layer over ``os``. ``write_all`` is the
only way they write: every byte, or an ``OSError``.
"""

from __future__ import annotations

import errno
import os


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
