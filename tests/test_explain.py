"""``ingest-bridge explain`` against the truth: what a live bridge sends an emulated target for the same rows.

Each case writes one config and one rows file, runs ``explain --json`` on them (a separate process), then
streams the same file with ``ingest-bridge send`` through a live bridge into the target's emulator and
compares request by request: method, path and query, every header explain shows, and the body.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from bridge.dev import sample
from bridge.dev.emulators.axiom import AxiomEmulator
from bridge.dev.emulators.feldera import FelderaEmulator
from bridge.dev.emulators.http_sink import HttpSink
from bridge.dev.emulators.obsrv import ObsrvEmulator
from bridge.dev.emulators.timeplus import TimeplusEmulator

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OBSRV_TS = re.compile(rb'"ts":"[0-9]+"')
TP_SECRETS = ["secret", base64.b64encode(b"ingest:secret").decode()]


async def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out.decode(), err.decode()


def rows_file(tmp_path: Path, n: int, bad: dict[int, dict] | None = None) -> Path:
    lines = [orjson.dumps((bad or {}).get(i, sample.expected_json(i))) for i in range(n)]
    path = tmp_path / "rows.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def normal(body: bytes) -> bytes:
    """Values a target gets fresh on each request (batch ids, send time) as placeholders."""
    return OBSRV_TS.sub(b'"ts":"T"', UUID.sub(b"UUID", body))


def masked(value: str, secrets: list[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        value = value.replace(s, "***")
    return value


CASES = {
    "http-ndjson-gzip-max_rows": (HttpSink, {"options": {"format": "ndjson", "compression": "gzip",
                                                         "headers": {"X-Team": "shop"}},
                                             "batch": {"max_rows": 3}}, 8, None, []),
    "http-csv-max_bytes-split": (HttpSink, {"options": {"format": "csv"}, "batch": {"max_bytes": 700}}, 9,
                                 None, []),
    "timeplus-compact-columns": (TimeplusEmulator, {"columns": {
        "id": "int", "user": "string", "price": "double", "ok": "bool", "ts": "timestamp", "category": "string",
        "count": "int", "message": "string"}}, 6, {2: {"id": "two"}, 4: {"id": 4, "nope": 1}}, TP_SECRETS),
    "timeplus-ndjson-zstd": (TimeplusEmulator, {"options": {"format": "ndjson", "compression": "zstd"}}, 4,
                             None, TP_SECRETS),
    "proton": (TimeplusEmulator, {"options": {"api": "proton"}, "auth": {"username": "default"}, "url": ""}, 4,
               None, []),
    "obsrv": (ObsrvEmulator, {}, 5, None, []),
    "feldera": (FelderaEmulator, {"batch": {"max_rows": 4}}, 7, None, []),
    "axiom-zstd": (AxiomEmulator, {"options": {"format": "ndjson"}}, 5, None, ["xaat-demo-token"]),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_explain_shows_exactly_what_a_live_bridge_sends(case, tmp_path, bridge_factory):
    cls, over, n, bad, secrets = CASES[case]
    target = cls()
    await target.start()
    try:
        route = {**target.demo_route()}
        for key, value in over.items():
            route[key] = {**route.get(key, {}), **value} if key in ("options", "batch") else value
        route["url"] = route["url"] or target.url  # "": the emulator's root
        config = tmp_path / "bridge.yaml"
        config.write_text(yaml.safe_dump({"listen": "127.0.0.1:0", "http": None, "routes": {"r": route}}))
        rows = rows_file(tmp_path, n, bad)

        rc, out, err = await run("explain", "--config", str(config), "--route", "r", "--json", str(rows))
        assert rc == (1 if bad else 0), err
        for s in secrets:
            assert s not in out
        explained = orjson.loads(out)

        # The same rows through a live bridge, as a user streams them; one linger gathers them all.
        routes = yaml.safe_load(config.read_text())["routes"]
        routes["r"]["batch"] = {**routes["r"].get("batch", {}), "linger": "1s"}
        b = await bridge_factory(routes)
        rc, _, sent = await run("send", "--target", f"127.0.0.1:{b.port}", "--route", "r", str(rows))
        assert rc == (1 if bad else 0), sent
    finally:
        await target.stop()

    got = target.requests
    assert len(got) == len(explained["requests"]) >= 1
    shown = sorted(explained["requests"], key=lambda r: normal(r["body"].encode()))
    for want, cap in zip(shown, sorted(got, key=lambda c: normal(c.body)), strict=True):
        assert want["method"] == cap.method
        assert want["url"].removeprefix(target.url) == masked(cap.raw_path, secrets)
        for name, value in want["headers"].items():
            got_value = masked(cap.headers.get(name, "<absent>"), secrets)
            assert normal(got_value.encode()) == normal(value.encode()), name
        # Every header the bridge chose is shown; the HTTP client adds only these.
        added = {"Host", "Accept", "Accept-Encoding"}
        assert set(cap.headers) - added <= set(want["headers"]), set(cap.headers) - added - set(want["headers"])
        assert normal(want["body"].encode()) == normal(cap.body)
    assert sum(r["rows"] for r in explained["requests"]) == n - len(bad or {})
    if bad:
        assert [e["row"] for e in explained["row_errors"]] == sorted(bad)
        for e in explained["row_errors"]:
            # send names a rejected row by its line in the file (here one row a line, from line 1).
            assert f"line {e['row'] + 1}: {e['reason']}" in sent


async def test_explain_text_sample_rows_masks_secrets_and_names_bad_rows(tmp_path):
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"routes": {"clicks": {
        "dialect": "timeplus", "url": "https://tp.example.com/default", "target": "clicks",
        "auth": {"api_key": "tp-key-0123456789"}, "columns": {"id": "int", "user": "string"},
    }}}))
    rc, out, err = await run("explain", "--config", str(config), "--route", "clicks")
    # The sample rows have eight columns; this route declares two: the whole request is refused, and says why.
    assert rc == 1, err
    assert "requests refused whole:" in out and "UNKNOWN_COLUMN" in out and "0 to send in 0 HTTP" in out

    rows = b'{"id": 1, "user": "a"}\n{"id": "x", "user": "b"}\n{"id": 3}\n' + b'{"id": 4, "user": "d"}\n' * 30
    rc, out, err = await run("explain", "--config", str(config), "--route", "clicks", "--lines", "1", "-",
                             stdin=rows)
    assert rc == 1, err
    assert "tp-key-0123456789" not in out
    lines = out.splitlines()
    assert lines[0] == "route 'clicks' (timeplus): 33 row(s) in, 31 to send in 1 HTTP request(s), 2 rejected"
    assert "  row 1 (request 0 index 1) column 'id': column 'id' expects an integer in int64, got \"x\"" in lines
    assert "  row 2 (request 0 index 2) column 'user': declared column 'user' is missing" in lines
    assert "POST https://tp.example.com/default/api/v1beta2/streams/clicks/ingest?format=compact" in lines
    assert "X-Api-Key: ***" in lines
    body = lines[lines.index("X-Api-Key: ***") + 4:]
    assert body[0].startswith('{"columns":["id","user"],"data":[[1,"a"],[4,"d"]')
    assert len(body) == 1 and "characters)" not in body[0]  # one line, under the width

    rc, out, err = await run("explain", "--config", str(config), "--route", "nope")
    assert rc == 2 and "route 'nope' is not in" in err and "clicks" in err
    rc, out, err = await run("explain", "--config", str(config), "--route", "clicks", str(tmp_path / "none.ndjson"))
    assert rc == 2 and "none.ndjson" in err
