"""``ingest-bridge emulate`` as a user runs it: its rules in --help, settings by flags or YAML, bounded memory,
and the faulty target's script API."""

from __future__ import annotations

import base64
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import orjson
import pytest

from bridge.dev import sample
from bridge.dev.emulators import rules
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.dev.emulators.http_sink import HttpSink


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=60)


@contextmanager
def emulate(*args: str) -> Iterator[tuple[str, list[str]]]:
    """A running ``emulate`` on a free port: (its URL, the lines it printed, filled in when it stops)."""
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "emulate", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        first = proc.stdout.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert m, first + proc.stderr.read()
        lines.append(first)
        yield m.group(1), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        lines += out.splitlines()


def test_help_says_what_each_emulator_accepts():
    text = " ".join(run("emulate", "--help").stdout.split())
    for needle in ("api_key=demo-api-key, user=ingest, password=secret", "streams={clicks: [id, user, price",
                   "token=xaat-demo-token, org_id=demo-org, datasets=[events]", "pipeline=shop",
                   "DELETE /_script clears them", "default: 8080", "--keep N"):
        assert needle in text, needle


def test_the_documented_columns_are_the_samples():
    assert rules.RULES["timeplus"].defaults["streams"] == {"clicks": list(sample.COLUMNS)}


async def test_timeplus_credentials_and_streams_set_by_flags():
    with emulate("timeplus", "--api-key", "k-123", "--user", "u1", "--password", "p1", "--target", "events=a,b") \
            as (url, _):
        body = orjson.dumps({"columns": ["a", "b"], "data": [[1, 2]]})
        path = f"{url}/ws/api/v1beta2/streams/events/ingest?format=compact"
        basic = "Basic " + base64.b64encode(b"u1:p1").decode()
        async with aiohttp.ClientSession() as s:
            for headers, status in [({"X-Api-Key": "k-123"}, 200), ({"Authorization": basic}, 200),
                                    ({"X-Api-Key": "demo-api-key"}, 401)]:
                async with s.post(path, data=body, headers=headers) as r:
                    assert r.status == status, (headers, await r.text())
            async with s.post(path.replace("/events/", "/clicks/"), data=body, headers={"X-Api-Key": "k-123"}) as r:
                assert r.status == 400 and "clicks" in await r.text()  # Timeplus' answer: no such stream


async def test_feldera_settings_from_a_yaml_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("api_key: fk-1\npipeline: p\ntables: {t: [x]}\n")
    with emulate("feldera", "--rules", str(path)) as (url, lines):
        ingress = f"{url}/v0/pipelines/p/ingress/t?format=json&update_format=raw"
        async with aiohttp.ClientSession() as s:
            async with s.post(ingress, data=b'{"x": 1}') as r:
                assert r.status == 401
            async with s.post(ingress, data=b'{"x": 1}', headers={"Authorization": "Bearer fk-1"}) as r:
                assert r.status == 200, await r.text()
    assert "pipeline=p" in lines[0] and "tables={t: [x]}" in lines[0]
    assert "accepted 1 rows in 2 requests" in lines[-1]


@pytest.mark.parametrize(("args", "message"), [
    (["axiom", "--user", "x"], "--user 'user' is not a setting of the axiom emulator"),
    (["timeplus", "--target", "events"], "--target 'events': expected NAME=COLUMN,COLUMN"),
    (["obsrv", "--target", "d=a"], "give a name; obsrv datasets have no declared columns"),
    (["http", "--target", "x"], "the http emulator takes any path"),
])
def test_settings_that_do_not_fit_are_refused(args, message):
    p = run("emulate", *args)
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_a_rules_file_with_a_typo_gets_a_hint(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("api_kye: x\n")
    p = run("emulate", "timeplus", "--rules", str(path))
    assert p.returncode == 2 and "'api_kye' is not a setting of the timeplus emulator (did you mean 'api_key'?)" \
        in p.stderr
    path.write_text("streams: [clicks]\n")
    p = run("emulate", "timeplus", "--rules", str(path))
    assert p.returncode == 2 and "streams: expected a mapping of names to lists of columns" in p.stderr


async def test_keep_bounds_the_rows_held_and_counts_them_all():
    sink = HttpSink()
    sink.keep(5)
    await sink.start()
    try:
        async with aiohttp.ClientSession() as s:
            for i in range(4):
                body = b"".join(orjson.dumps({"id": i * 10 + j}) + b"\n" for j in range(4))
                async with s.post(sink.url + "/in", data=body) as r:
                    assert r.status == 200
    finally:
        await sink.stop()
    assert [r["id"] for r in sink.rows] == [23, 30, 31, 32, 33]
    assert (sink.rows.total, sink.requests.total, len(sink.requests)) == (16, 4, 4)


async def test_keep_from_the_command_line_counts_every_row():
    with emulate("http", "--keep", "3") as (url, lines):
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                async with s.post(url + "/x", data=b'{"a":1}\n{"a":2}\n') as r:
                    assert r.status == 200
    assert lines[-1] == "accepted 10 rows in 5 requests"


async def test_faulty_takes_one_step_as_an_object_and_clears_its_script():
    f = FaultyTarget()
    await f.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f.url + "/_script", json={"status": 503, "times": 3}) as r:
                assert r.status == 200 and (await r.json()) == {"steps": 3}
            async with s.post(f.url + "/_script", json=[{"reset": True}, {"max_rows": 1}]) as r:
                assert (await r.json()) == {"steps": 4}
            async with s.post(f.url + "/in", data=b'{"a":1}\n') as r:
                assert r.status == 503
            async with s.delete(f.url + "/_script") as r:
                assert (await r.json()) == {"steps": 0}
            async with s.post(f.url + "/in", data=b'{"a":1}\n{"a":2}\n') as r:
                assert r.status == 200  # the 503s, the reset and the max_rows rule are gone
            for bad, msg in [({"stauts": 503}, "unknown key(s) stauts"), ({"status": "503"}, "status must be"),
                             ({"times": 2}, "says nothing to do"), ("503", "expected a step")]:
                async with s.post(f.url + "/_script", json=bad) as r:
                    assert r.status == 400 and msg in (await r.json())["message"]
            async with s.get(f.url + "/_state") as r:
                assert (await r.json())["faults"] == 1 and (await r.json())["steps"] == 0
    finally:
        await f.stop()


def test_the_demo_against_the_faulty_target_shows_retries():
    p = run("demo", "--dialect", "faulty", "--rows", "4000")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "the target failed 5 requests on purpose (two 503s, a reset, 429, 500)" in p.stdout
    assert "all 4000 rows arrived intact" in p.stdout
    retries = re.search(r"retries (\d+)", p.stdout)
    assert retries and int(retries.group(1)) >= 5
