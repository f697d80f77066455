"""A process that spools requests for two targets, for tests/test_spool_crash.py to kill (SIGKILL) mid-way.

    python -m tests.spool_child DIR OUT write N   # accept N requests; a takes all, b takes 10 records then hangs
    python -m tests.spool_child DIR OUT drain     # deliver what is left to both, then exit 0

Each target's rows go to OUT/<target>.<mode> as "seq id" lines the moment it takes them; OUT/acked lists the
ids acknowledged (after the fsync).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bridge.model.config import SpoolConfig
from bridge.spool.spool import Spool
from tests.spool_targets import Recording, accept

ROWS = 5
B_TAKES = 10


def writer(path: Path):
    f = open(path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process

    def on_row(seq: int, row: dict) -> None:
        f.write(f"{seq} {row['id']}\n")
        os.fsync(f.fileno())

    return on_row


async def main(directory: str, out: str, mode: str, n: int = 0) -> None:
    out_dir = Path(out)
    spool = Spool("r", SpoolConfig(directory, segment_bytes=400), targets=("a", "b"))
    spool.open()
    spool.pause = 0.02
    a = Recording("a", on_row=writer(out_dir / f"a.{mode}"))
    b = Recording("b", mode="blocked" if mode == "write" else "ok", on_row=writer(out_dir / f"b.{mode}"))
    if mode == "write":
        taken = 0

        async def b_then_hang(ticket, rows, nbytes, wire_bytes=0) -> None:
            nonlocal taken
            taken += 1
            if taken <= B_TAKES:
                b.open.set()
            else:
                b.open.clear()
            await Recording.enqueue_rows(b, ticket, rows, nbytes, wire_bytes)

        b.enqueue_rows = b_then_hang  # type: ignore[method-assign]
    spool.start({"a": a, "b": b})
    if mode == "write":
        with open(out_dir / "acked", "a", buffering=1) as acked:
            for s in range(n):
                await accept(spool, s, range(s * ROWS, s * ROWS + ROWS))
                acked.write("".join(f"{i}\n" for i in range(s * ROWS, s * ROWS + ROWS)))
                os.fsync(acked.fileno())
        print("written", flush=True)
        await asyncio.Event().wait()  # until killed
    while spool.wal.undelivered:
        await asyncio.sleep(0.02)
    await spool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(x) for x in sys.argv[4:])))
