"""``ingest-bridge send``: files and stdin to a running bridge, with a summary and an honest exit code."""

from __future__ import annotations

import io

import orjson

from bridge.client import sendfile
from bridge.dev import sample


async def test_ndjson_file_arrives_whole(sink, bridge_factory, tmp_path):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "5ms"}}})
    path = tmp_path / "rows.ndjson"
    path.write_bytes(b"".join(orjson.dumps(sample.expected_json(i)) + b"\n" for i in range(20_000)))
    out = io.StringIO()
    with open(path, "rb") as f:
        rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", f, "ndjson", batch_rows=700, window=4,
                                 total_bytes=path.stat().st_size, out=out, tty=True)
    assert rc == 0, out.getvalue()
    assert sorted(r["id"] for r in sink.rows) == list(range(20_000))
    text = out.getvalue()
    assert "sent 29 batches: 20000 rows accepted, 0 rejected, 0 batches failed" in text
    assert "100.0%" in text and "rows/s" in text, "a progress bar on a terminal"


async def test_csv_values_are_typed_and_bad_rows_make_a_non_zero_exit(sink, bridge_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"},
                                    "columns": {"id": "int", "name": "string?", "ok": "bool"}}})
    data = io.BytesIO(b"id,name,ok\n1,ann,true\n2,,false\nthree,bob,true\n")
    out = io.StringIO()
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", data, "csv", out=out, tty=False)
    assert rc == 1
    assert sink.rows == [{"id": 1, "name": "ann", "ok": True}, {"id": 2, "name": None, "ok": False}]
    text = out.getvalue()
    assert "2 rows accepted, 1 rejected" in text and "line 4: column 'id' expects an integer" in text
    assert "\r" not in text, "no progress bar when not on a terminal"


async def test_a_failing_target_exits_non_zero_with_the_mapped_status(sink, bridge_factory):
    sink.status = 404
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}})
    out = io.StringIO()
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(b'{"a":1}\n'), "ndjson", out=out, tty=False)
    assert rc == 1
    assert "NOT_FOUND: target answered HTTP 404" in out.getvalue()
    assert "[TARGET_NOT_FOUND http_status=404" in out.getvalue()


async def test_an_unknown_route_is_reported(sink, bridge_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": sink.url + "/in"}})
    out = io.StringIO()
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "nope", io.BytesIO(b'{"a":1}\n'), "ndjson", out=out, tty=False)
    assert rc == 1 and "ROUTE_NOT_FOUND" in out.getvalue()


async def test_no_bridge_listening_is_exit_2(unused_tcp_port):
    out = io.StringIO()
    rc = await sendfile.send(f"127.0.0.1:{unused_tcp_port}", "r", io.BytesIO(b'{"a":1}\n'), "ndjson", retries=1,
                             out=out, tty=False)
    assert rc == 2 and "UNAVAILABLE" in out.getvalue()
