"""``Joined`` (the native transcoder's rows in one buffer) behaves as the list of row bytes it stands for.

Every way the pipeline cuts and joins rows (parts of a request, batches of several requests, a load split for a
413 or by caller, rows left out by a row check, spool records) must give the same rows and the same bodies
as a plain list would.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.model.rows import Joined, Rows
from bridge.spool.records import leave_out
from bridge.transcode import formats

objects = st.lists(st.builds(lambda n, s: b'{"id":%d,"s":"%s"}' % (n, s.encode()), st.integers(0, 10**6),
                             st.text("ab\u00e9", max_size=5)), max_size=12)


def joined(rows: list[bytes]) -> Joined:
    """What the native transcoder returns: each row and a newline, and the offset past each newline."""
    ends, at = [], 0
    for r in rows:
        at += len(r) + 1
        ends.append(at)
    return Joined.of(b"".join(r + b"\n" for r in rows), struct.pack(f"={len(ends)}Q", *ends))


@settings(max_examples=300, deadline=None)
@given(rows=objects, data=st.data())
def test_a_joined_run_is_the_list_of_its_rows(rows: list[bytes], data) -> None:
    j = joined(rows)
    assert len(j) == len(rows) and list(j) == rows and j == rows
    for i in range(-len(rows), len(rows)):
        assert j[i] == rows[i]
    a = data.draw(st.integers(-15, 15))
    b = data.draw(st.integers(-15, 15))
    assert list(j[a:b]) == rows[a:b]
    assert list(j[a:b][1:]) == rows[a:b][1:]
    assert formats.ndjson(Rows(None, j[a:b])) == formats.ndjson(Rows(None, rows[a:b]))
    assert formats.json_array(Rows(None, j)) == formats.json_array(Rows(None, rows))


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(objects, min_size=1, max_size=5), data=st.data())
def test_requests_batched_and_cut_give_the_same_rows_and_body(requests: list[list[bytes]], data) -> None:
    # Parts of several requests joined into one batch (Load.rows), then cut (a 413 halves a load).
    mine = [Rows(None, joined(r)) for r in requests]
    theirs = [Rows(None, list(r)) for r in requests]
    for k in range(len(requests)):
        a = data.draw(st.integers(0, len(requests[k])))
        b = data.draw(st.integers(a, len(requests[k])))
        mine[k], theirs[k] = mine[k].slice(a, b), theirs[k].slice(a, b)
        assert mine[k].index == theirs[k].index
    batch, expected = Rows.concat(mine), Rows.concat(theirs)
    assert type(batch.data) is Joined
    assert list(batch.data) == expected.data and len(batch) == len(expected)
    assert formats.ndjson(batch) == formats.ndjson(expected)
    at = data.draw(st.integers(0, len(expected)))
    assert formats.ndjson(batch.slice(0, at)) + formats.ndjson(batch.slice(at, len(batch))) == formats.ndjson(expected)
    keep = sorted(data.draw(st.sets(st.integers(0, max(0, len(expected) - 1)))) & set(range(len(expected))))
    assert batch.select(keep).data == expected.select(keep).data


def test_a_whole_buffer_is_sent_as_it_is_and_python_rows_mix_in() -> None:
    j = joined([b'{"a":1}', b'{"a":2}'])
    body = formats.ndjson(Rows(None, j))
    assert body == b'{"a":1}\n{"a":2}\n' and body is formats.ndjson(Rows(None, j))  # no copy of a whole buffer
    # Rows of the Python transcoder (a request it decided) in the same batch: a plain list again.
    mixed = Rows.concat([Rows(None, j), Rows(None, [b'{"a":3}'])])
    assert mixed.data == [b'{"a":1}', b'{"a":2}', b'{"a":3}']
    assert formats.ndjson(Rows(None, joined([]))) == b""
    rows, errors = leave_out(Rows(None, joined([b"{}", b'{"b":1}', b"[]"])), [], [1])
    assert list(rows.data) == [b"{}", b"[]"] and rows.index == [0, 2] and errors == []


def test_a_row_that_holds_a_newline_is_still_one_row() -> None:
    rows = [b'{"a":\n1}', b"{}", b'{"b":\r\n2}']
    j = joined(rows)
    assert list(j) == rows and list(j[1:]) == rows[1:] and formats.ndjson(Rows(None, j)) == b"".join(
        r + b"\n" for r in rows)
