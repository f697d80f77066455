"""Write a small spool directory with the spool code of the checkout it runs from (test data for upgrades).

    python scripts/make_spool_fixture.py tests/data/spool-v1/r

tests/data/spool-v1/r was made so by main at 1c40466 (the single-target spool, before several cursors): the
upgrade test (tests/test_spool_upgrade.py) opens it with today's code and checks that exactly the rows not
yet delivered come out. Run it again only to make data for a newer on-disk format, in a new directory.

What it holds: four records — table rows, JSON rows, table rows with ops (an upsert and a delete), JSON rows
with ops — of which the first is delivered (the cursor is past it), and a dead-letter file with one line.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from bridge.model.outcome import Outcome
from bridge.model.rows import Rows
from bridge.spool import records
from bridge.spool.deadletter import DeadLetter
from bridge.spool.wal import Wal

RECORDS = [
    Rows(("id", "name"), [(1, "delivered before the upgrade"), (2, "also delivered")]),
    Rows(None, [b'{"id":3,"name":"json three"}', b'{"id":4,"name":"json four"}']),
    Rows(("id", "name"), [(5, "upserted"), (6, None)], [2, 1]),
    Rows(None, [b'{"id":7,"name":"json upsert"}', b'{"id":8}'], [2, 1]),
]


async def write(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    wal = Wal(directory)
    wal.open()
    for rows in RECORDS:
        await wal.append(records.dump(rows))
    seq, _ = await wal.next_record()  # the first record was delivered: the cursor moves past it
    wal.done(seq)
    wal.save_cursor()
    await wal.close()
    (directory / "lock").unlink()  # made again at open; the pid in it says nothing
    dead = DeadLetter(directory / "dead-letter.ndjson")
    dead.write(directory.name, 0, Rows(None, [b'{"id":0,"name":"refused earlier"}']),
               Outcome(code="INVALID_ARGUMENT", reason="BAD_ROW", http_status=400, message="refused by the target"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_spool_fixture.py DIRECTORY")
    asyncio.run(write(Path(sys.argv[1])))
