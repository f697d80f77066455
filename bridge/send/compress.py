"""Request body compression, off the event loop for large bodies.

One compressor per thread: a zstd compressor shared between threads is not
safe.
"""

from __future__ import annotations

import asyncio
import threading
import zlib

import zstandard

# Below this a thread hop costs more than compressing inline.
INLINE_BYTES = 64 * 1024
_local = threading.local()


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        c = zlib.compressobj(1, zlib.DEFLATED, 31)
        return c.compress(body) + c.flush()
    if encoding == "zstd":
        z = getattr(_local, "zstd", None)
        if z is None:
            z = _local.zstd = zstandard.ZstdCompressor(level=1)
        return z.compress(body)
    raise ValueError(f"unknown encoding {encoding!r}")


async def compress_async(body: bytes, encoding: str) -> bytes:
    if len(body) < INLINE_BYTES:
        return compress(body, encoding)
    return await asyncio.to_thread(compress, body, encoding)
