"""``ingest-bridge send`` as a new user meets it: CSV values kept as written, lines named, wrong ports explained."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys

import orjson
import pytest
import yaml

from bridge.client import sendfile
from bridge.config import parse_config
from bridge.dev import sample
from bridge.ingest.server import Bridge


def route_to(sink, **over) -> dict:
    return {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}, **over}


def bodies(sink) -> list[bytes]:
    """Each row as the target received its bytes (parsing would hide how numbers were written)."""
    return [line for r in sink.requests for line in r.body.splitlines() if line.strip()]


async def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command in a thread, so that a bridge on this test's loop can answer it."""
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bridge", *args], capture_output=True,
                                   text=True, timeout=60, env={**os.environ, **(env or {})})


CSV = (b'id,zip,price,neg,exp,flag,big,text,empty\n'
       b'1,01234,1.50,-0,1e3,true,100000000000000000000000,1_000,\n'
       b'2, 42 ,NaN,+5,1.,True,-9223372036854775809,"a ""q"", b",x\n')


async def test_csv_infers_a_type_only_where_the_text_is_kept_exactly(sink, bridge_factory):
    b = await bridge_factory({"r": route_to(sink)})
    out = io.StringIO()
    assert await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(CSV), "csv", out=out, tty=False) == 0
    assert bodies(sink) == [
        b'{"id":1,"zip":"01234","price":1.50,"neg":-0,"exp":1e3,"flag":true,"big":100000000000000000000000,'
        b'"text":"1_000","empty":null}',
        b'{"id":2,"zip":" 42 ","price":"NaN","neg":"+5","exp":"1.","flag":"True","big":-9223372036854775809,'
        b'"text":"a \\"q\\", b","empty":"x"}',
    ]


async def test_csv_types_string_keeps_every_cell_a_string(sink, bridge_factory):
    b = await bridge_factory({"r": route_to(sink)})
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(CSV), "csv", out=io.StringIO(), tty=False,
                             csv_types="string")
    assert rc == 0
    assert sink.rows[0] == {"id": "1", "zip": "01234", "price": "1.50", "neg": "-0", "exp": "1e3", "flag": "true",
                            "big": "100000000000000000000000", "text": "1_000", "empty": ""}


async def test_column_types_convert_and_a_wrong_cell_names_its_line_and_column(sink, bridge_factory):
    b = await bridge_factory({"r": route_to(sink)})
    cols = {"id": "string", "zip": "int", "price": "double", "flag": "bool", "text": "json"}
    data = b'id,zip,price,flag,text\n7,01234,1.,TRUE,"{""a"": [1]}"\n8,,2,false,null\n'
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(data), "csv", out=io.StringIO(), tty=False,
                             columns=cols)
    assert rc == 0
    assert bodies(sink) == [b'{"id":"7","zip":1234,"price":1.0,"flag":true,"text":{"a": [1]}}',
                            b'{"id":"8","zip":null,"price":2,"flag":false,"text":null}']
    out = io.StringIO()
    data = b'id,zip\n1,2\n"multi\nline",3\n4,1_000\n'
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(data), "csv", out=out, tty=False,
                             columns={"zip": "int"})
    assert rc == 2
    assert "line 5, column 'zip': '1_000' is not an int" in out.getvalue()


@pytest.mark.parametrize(("data", "columns", "message"), [
    (b"a,b,a\n1,2,3\n", None, "line 1: the header names the column 'a' twice"),
    (b"a,b\n1,2\n1,2,3\n", None, "line 3: 3 fields, the header has 2"),
    (b"a,b\n1,2\n", {"c": "int"}, "--column names 'c', not in the header (a, b)"),
])
async def test_a_csv_file_that_is_not_right_is_named(sink, bridge_factory, data, columns, message):
    b = await bridge_factory({"r": route_to(sink)})
    out = io.StringIO()
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(data), "csv", out=out, tty=False,
                             columns=columns)
    assert rc == 2 and message in out.getvalue()
    assert "\n\n" not in out.getvalue() and not out.getvalue().startswith("\n")


async def test_a_byte_order_mark_is_not_part_of_the_first_column(sink, bridge_factory):
    b = await bridge_factory({"r": route_to(sink)})
    data = "\ufeffid,name\n1,a\n".encode()
    assert await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(data), "csv", out=io.StringIO(),
                               tty=False) == 0
    assert sink.rows == [{"id": 1, "name": "a"}]


async def test_rejected_rows_are_named_by_their_line_in_the_file(sink, bridge_factory):
    b = await bridge_factory({"r": route_to(sink, columns={"id": "int", "note": "string?"})})
    ndjson = b'{"id": 1}\n\n{"id": "x"}\n' + b"".join(b'{"id": %d}\n' % i for i in range(5)) + b'{"id": 1.5}\n'
    out = io.StringIO()
    rc = await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(ndjson), "ndjson", batch_rows=3, out=out,
                             tty=False)
    assert rc == 1
    text = out.getvalue()
    assert "  line 3: column 'id' expects an integer" in text and "  line 9: column 'id'" in text
    csv_text = b'id,note\n1,a\n"x","two\nlines"\n2,b\n'
    out = io.StringIO()
    await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(csv_text), "csv", out=out, tty=False)
    assert out.getvalue().splitlines()[1:] == ["  line 3: column 'id' expects an integer in int64, got \"x\""]
    csv_text = b'id,note\n1,"two\nlines"\n"x",b\n'
    out = io.StringIO()
    await sendfile.send(f"127.0.0.1:{b.port}", "r", io.BytesIO(csv_text), "csv", out=out, tty=False)
    assert out.getvalue().splitlines()[1:] == ["  line 4: column 'id' expects an integer in int64, got \"x\""]


async def test_a_dead_letter_file_under_another_name_is_known_by_its_content(sink, bridge_factory, tmp_path):
    b = await bridge_factory({"r": route_to(sink)})
    record = {"time": "2026-01-01T00:00:00Z", "route": "r", "spool_seq": 3,
              "status": {"code": 3, "reason": "X", "http_status": 422, "upstream_code": "", "message": "m"},
              "rows": [{"row": sample.expected_json(i)} for i in range(3)]}
    path = tmp_path / "retry-me.ndjson"
    path.write_bytes(orjson.dumps(record) + b"\n")
    p = await cli("send", "--target", f"127.0.0.1:{b.port}", "--route", "r", str(path))
    assert p.returncode == 0, p.stderr
    assert "holds dead-letter records" in p.stderr
    assert sorted(r["id"] for r in sink.rows) == [0, 1, 2]
    # Asked for as NDJSON, the records go as they are.
    p = await cli("send", "--target", f"127.0.0.1:{b.port}", "--route", "r", "--format", "ndjson", str(path))
    assert p.returncode == 0 and sink.rows[-1]["spool_seq"] == 3


async def test_sending_to_the_ops_http_port_names_the_grpc_port(sink):
    config = parse_config(yaml.safe_dump({"listen": "127.0.0.1:0", "routes": {"r": route_to(sink)}}), env={})
    b = Bridge(config, http="127.0.0.1:0")
    await b.start()
    try:
        p = await cli("send", "--target", f"127.0.0.1:{b.http_port}", "--route", "r", "-")
        ok = await cli("send", "--target", f"http://127.0.0.1:{b.port}/", "--route", "r", "--format", "ndjson",
                       os.devnull)
    finally:
        await b.stop(grace=1.0)
    assert p.returncode == 2
    assert p.stderr == (f"ingest-bridge send: 127.0.0.1:{b.http_port} is the bridge's ops HTTP port (/healthz, "
                        f"/metrics); its gRPC port is {b.port}: --target 127.0.0.1:{b.port}\n")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("target", ["https://127.0.0.1:1", "127.0.0.1", "http://host/path:1"])
async def test_a_target_that_is_no_grpc_address_is_explained(target):
    p = await cli("send", "--target", target, "--route", "r", os.devnull)
    assert p.returncode == 2 and ("expected HOST:PORT" in p.stderr or "give HOST:PORT" in p.stderr)
    assert "Misformatted" not in p.stderr


async def test_unauthenticated_names_the_token_variable(sink, bridge_factory):
    access = {"tokens": [{"name": "x", "token": "tok-1", "routes": "*"}]}
    b = await bridge_factory({"r": route_to(sink)}, access=access)
    env = {k: v for k, v in os.environ.items() if k != "INGEST_BRIDGE_TOKEN"}
    p = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bridge", "send", "--target",
                                f"127.0.0.1:{b.port}", "--route", "r", "-"], input='{"a":1}\n',
                                capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode in (1, 2) and "UNAUTHENTICATED" in p.stderr and "$INGEST_BRIDGE_TOKEN" in p.stderr
    assert "" not in p.stderr.splitlines(), "no blank line"
    p = await cli("send", "--target", f"127.0.0.1:{b.port}", "--route", "r", os.devnull,
                  env={"INGEST_BRIDGE_TOKEN": "tok-1"})
    assert p.returncode == 0, p.stderr


def test_send_help_shows_the_default_target():
    p = subprocess.run([sys.executable, "-m", "bridge", "send", "--help"], capture_output=True, text=True, timeout=60)
    assert "(default: 127.0.0.1:50051)" in " ".join(p.stdout.split())
