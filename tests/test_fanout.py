"""Fan-out: one route, several targets (required and optional), through a real bridge and the emulators."""

from __future__ import annotations

import asyncio
import base64
import os

import aiohttp
import grpc
import orjson
import pytest
import yaml

from bridge.config import load_config, parse_config
from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.ingest.server import Bridge
from bridge.model.errors import ConfigError
from bridge.proto import pb, pb_grpc
from tests.conftest import fast_delivery
from tests.waiting import wait_until

FAST = {"linger": "0s"}


@pytest.fixture
async def tp():
    e = TimeplusEmulator(streams={"kv": ["k", "v"]}, changelog=("kv",))
    await e.start()
    yield e
    await e.stop()


def sink_target(sink, name: str = "sink", **over) -> dict:
    return {"name": name, "dialect": "http", "url": sink.url + f"/{name}", "batch": FAST,
            "delivery": fast_delivery(max_elapsed="500ms"), **over}


def tp_target(tp, **over) -> dict:
    return {"name": "tp", "dialect": "timeplus", "url": tp.url + "/default", "target": "kv",
            "auth": {"username": "ingest", "password": "secret"}, "options": {"changelog": True},
            "batch": FAST, "delivery": fast_delivery(max_elapsed="500ms"), **over}


def kv(seq: int, keys: list[str], ops: list[int] | None = None) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r", sequence=seq)
    req.rows.columns.extend(["k", "v"])
    for i, k in enumerate(keys):
        req.rows.rows.add(op=ops[i] if ops else pb.OP_INSERT).values.extend([pb.Value(string=k), pb.Value(int=i)])
    return req


def sample_value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_two_required_targets_of_different_dialects_each_get_every_row(sink, tp, bridge_factory,
                                                                              channel_factory):
    b = await bridge_factory({"r": {"targets": [sink_target(sink), tp_target(tp)]}})
    stub = channel_factory(b)
    ack = await stub.IngestBatch(kv(7, ["a", "b", "c"]))
    assert (ack.sequence, ack.accepted, ack.rejected, ack.status.code) == (7, 3, 0, 0)
    (cap,) = sink.requests
    assert cap.path == "/sink" and cap.headers["Content-Type"] == "application/x-ndjson"
    assert cap.body == b'{"k":"a","v":0}\n{"k":"b","v":1}\n{"k":"c","v":2}\n'
    (tcap,) = tp.requests
    assert tcap.path == "/default/api/v1beta2/streams/kv/ingest" and tcap.query == [("format", "compact")]
    assert tcap.headers["Authorization"] == "Basic " + base64.b64encode(b"ingest:secret").decode()
    assert orjson.loads(tcap.body) == {"columns": ["k", "v", "_tp_delta"],
                                       "data": [["a", 0, 1], ["b", 1, 1], ["c", 2, 1]]}
    # Each target's answer by name, and its own keys under its name.
    assert ack.upstream["sink"] == "OK" and ack.upstream["tp"] == "OK"
    assert all(k.split(".")[0] in ("sink", "tp") for k in ack.upstream)


async def test_a_row_one_required_target_cannot_express_is_rejected_and_sent_to_neither(sink, tp, bridge_factory,
                                                                                       channel_factory):
    b = await bridge_factory({"r": {"targets": [sink_target(sink), tp_target(tp)]}})
    stub = channel_factory(b)
    # A delete: Timeplus (changelog) takes it, the http target cannot express it; an upsert: neither can.
    ack = await stub.IngestBatch(kv(1, ["a", "b", "c"], [pb.OP_INSERT, pb.OP_DELETE, pb.OP_UPSERT]))
    assert (ack.accepted, ack.rejected, ack.status.code) == (1, 2, 0)
    errors = {e.index: e.reason for e in ack.errors}
    assert sorted(errors) == [1, 2]
    assert errors[1].startswith("target sink: ") and "tp" not in errors[1].split(":")[0]
    assert "UPSERT" in errors[2]
    assert [r["k"] for r in sink.rows] == ["a"]
    assert orjson.loads(tp.requests[0].body)["data"] == [["a", 0, 1]]


async def test_a_required_target_refusing_fails_the_ack_and_the_other_still_got_the_rows(sink, tp, bridge_factory,
                                                                                        channel_factory):
    b = await bridge_factory({"r": {"targets": [sink_target(sink), tp_target(tp)]}})
    stub = channel_factory(b)
    sink.fail_next(400, {"message": "bad rows"})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(kv(1, ["a", "b"]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target sink" in ei.value.details() and "bad rows" in ei.value.details()
    assert len(tp.requests) == 1 and orjson.loads(tp.requests[0].body)["data"] == [["a", 0, 1], ["b", 1, 1]]
    assert sink.rows == []
    # The caller contract: the batch was not acknowledged, so the caller sends it again; every target gets it
    # again (the one that took it, twice).
    ack = await stub.IngestBatch(kv(1, ["a", "b"]))
    assert (ack.accepted, ack.status.code) == (2, 0)
    assert len(tp.requests) == 2 and [r["k"] for r in sink.rows] == ["a", "b"]


async def test_a_503_then_ok_is_retried_and_acknowledged(sink, tp, bridge_factory, channel_factory):
    b = await bridge_factory({"r": {"targets": [sink_target(sink), tp_target(tp)]}})
    stub = channel_factory(b)
    tp.fail_next(503, {"code": 503, "error_msg": "busy"})
    ack = await stub.IngestBatch(kv(1, ["a"]))
    assert (ack.accepted, ack.status.code) == (1, 0)
    assert len(tp.requests) == 2 and len(sink.requests) == 1
    assert ack.upstream["tp"] == "OK" and ack.upstream["sink"] == "OK"


async def test_when_both_fail_the_status_is_the_one_resending_cannot_cure(sink, tp, bridge_factory, channel_factory):
    b = await bridge_factory({"r": {"targets": [tp_target(tp), sink_target(sink)]}})
    stub = channel_factory(b)
    tp.fail_next(503, {"code": 503, "error_msg": "busy"}, times=100)
    sink.fail_next(400, {"message": "bad rows"})
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(kv(1, ["a"]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "target sink" in ei.value.details()
    # Through a stream, the ack lists both answers.
    tp.fail_next(503, {"code": 503, "error_msg": "busy"}, times=100)
    sink.fail_next(400, {"message": "bad rows"})
    acks = [a async for a in stub.IngestStream(iter([kv(2, ["b"])]))]
    (ack,) = acks
    assert ack.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert ack.upstream["tp"].startswith("UNAVAILABLE ") and ack.upstream["sink"].startswith("INVALID_ARGUMENT ")


@pytest.mark.parametrize("how", ["down", "refusing"])
async def test_an_optional_target_that_fails_holds_no_ack_and_its_drops_are_counted(how, sink, target,
                                                                                    bridge_factory, channel_factory):
    url = "http://127.0.0.1:9/in" if how == "down" else target.url + "/in"
    optional = {"name": "spare", "dialect": "http", "url": url, "required": False, "batch": FAST,
                "delivery": fast_delivery(max_elapsed="200ms")}
    if how == "refusing":
        target.script({"status": 400, "times": 1000})
    b = await bridge_factory({"r": {"targets": [sink_target(sink, "main"), optional]}})
    stub = channel_factory(b)
    for seq in range(5):
        ack = await stub.IngestBatch(kv(seq, ["a", "b"]))
        assert (ack.accepted, ack.status.code, ack.upstream["main"]) == (2, 0, "OK")
        assert ack.upstream["spare"] == "QUEUED"
    route = b.routes["r"]
    await wait_until(lambda: route.lanes[1].stats.rows_dropped == 10)
    text = b.metrics.render().decode()
    assert sample_value(text, "ingest_bridge_dropped_rows_total", route="r", target="spare", reason="failed") == 10
    assert sample_value(text, "ingest_bridge_sent_rows_total", route="r", target="main", outcome="ok") == 10
    assert sample_value(text, "ingest_bridge_sent_rows_total", route="r", target="spare", outcome="failed") == 10
    assert [r["k"] for r in sink.rows] == ["a", "b"] * 5


async def test_a_stalled_optional_target_drops_what_its_buffer_cannot_hold(sink, target, bridge_factory,
                                                                          channel_factory):
    target.script({"stall": True, "times": 1000})
    optional = {"name": "slow", "dialect": "http", "url": target.url + "/in", "required": False,
                "batch": {"linger": "0s", "max_buffered_bytes": "2KiB"},
                "delivery": {"concurrency": 1, "timeout": "60s", "max_elapsed": "60s"}}
    b = await bridge_factory({"r": {"targets": [sink_target(sink, "main"), optional]}})
    stub = channel_factory(b)
    lane = b.routes["r"].lanes[1]
    try:
        answers = []
        for seq in range(30):
            ack = await stub.IngestBatch(kv(seq, ["a", "b", "c"]))
            assert (ack.accepted, ack.status.code) == (3, 0)
            answers.append(ack.upstream["slow"])
            assert lane.budget.used <= lane.budget.cap
        assert "DROPPED buffer full" in answers and answers[0] == "QUEUED"
        assert len(sink.rows) == 90
        text = b.metrics.render().decode()
        dropped = sample_value(text, "ingest_bridge_dropped_rows_total", route="r", target="slow",
                               reason="buffer_full")
        assert dropped == 3 * answers.count("DROPPED buffer full") > 0
    finally:
        target.release()


async def test_metrics_readyz_and_list_routes_show_the_targets(sink, tp):
    doc = {"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "routes": {
        "r": {"targets": [sink_target(sink), tp_target(tp), sink_target(sink, "spare", required=False)]},
        "single": {"dialect": "http", "url": sink.url + "/single", "batch": FAST}}}
    b = Bridge(parse_config(yaml.safe_dump(doc), env={}))
    await b.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch:
            stub = pb_grpc.IngestServiceStub(ch)
            await stub.IngestBatch(kv(1, ["a"]))
            routes = {r.name: r for r in (await stub.ListRoutes(pb.ListRoutesRequest())).routes}
        r = routes["r"]
        assert r.dialect == "" and [(t.name, t.dialect, t.required) for t in r.targets] == [
            ("sink", "http", True), ("tp", "timeplus", True), ("spare", "http", False)]
        assert list(r.ops) == [pb.OP_INSERT]  # what every required target can express
        assert list(r.targets[1].ops) == [pb.OP_INSERT, pb.OP_DELETE]
        assert [(t.name, t.dialect, t.required) for t in routes["single"].targets] == [("http", "http", True)]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{b.http_port}/readyz") as resp:
                ready = await resp.json()
            async with s.get(f"http://127.0.0.1:{b.http_port}/metrics") as resp:
                text = await resp.text()
        targets = ready["routes"]["r"]["targets"]
        assert {k: (v["required"], v["full"]) for k, v in targets.items()} == {
            "sink": (True, False), "tp": (True, False), "spare": (False, False)}
        assert targets["spare"]["dropped_rows"] == 0
        for name in ("sink", "tp"):
            assert sample_value(text, "ingest_bridge_sent_rows_total", route="r", target=name, outcome="ok") == 1
        await wait_until(lambda: b.routes["r"].lanes[2].stats.rows_delivered == 1)
        assert sample_value(text, "ingest_bridge_buffered_bytes_limit", route="r", target="tp") > 0
    finally:
        await b.stop(grace=1.0)


def check(targets, **route) -> list[str]:
    doc = {"routes": {"r": {"targets": targets, **route}}}
    with pytest.raises(ConfigError) as ei:
        parse_config(yaml.safe_dump(doc), env={})
    return ei.value.problems


def test_config_errors_name_the_problem(tmp_path):
    one = {"name": "a", "dialect": "http", "url": "http://x/in"}
    assert any("'a' is used twice" in p for p in check([one, one]))
    assert any(p.startswith("routes.r.targets[0].name: is required") for p in check([{**one, "name": None}]))
    assert any("targets[0].name" in p for p in check([{**one, "name": "Bad Name"}]))
    assert any("give either targets: or the single-target keys" in p and "url" in p
               for p in check([one], url="http://x/in"))
    assert any(p.startswith("routes.r.targets: expected a non-empty list") for p in check([]))
    assert any("columns: discover is not supported on a route with several targets" in p
               for p in check([one], columns="discover"))
    assert any("at least one target must be required" in p for p in check([{**one, "required": False}]))
    assert any(p.startswith("routes.r.targets[1].dialect: unknown dialect") for p in
               check([one, {"name": "b", "dialect": "nope", "url": "http://x/in"}]))
    assert any(p.startswith("routes.r.targets[0].required: expected true or false") for p in
               check([{**one, "required": "maybe"}]))


async def test_the_caller_leaving_withdraws_required_rows_and_the_bridge_stays_well(sink, target, bridge_factory,
                                                                                     channel_factory):
    target.script({"status": 503, "times": 1000})
    slow = {"name": "busy", "dialect": "http", "url": target.url + "/in", "batch": FAST,
            "delivery": {"initial_backoff": "50ms", "max_backoff": "50ms", "max_elapsed": "30s"}}
    b = await bridge_factory({"r": {"targets": [sink_target(sink), slow]}})
    stub = channel_factory(b)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(kv(1, ["a"]), timeout=0.5)
    # Retries stop at the caller's deadline: its answer is the last one, or the deadline.
    assert ei.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    route = b.routes["r"]
    await wait_until(lambda: all(lane.budget.used == 0 for lane in route.lanes))
    target.clear()
    ack = await stub.IngestBatch(kv(2, ["b"]))
    assert (ack.accepted, ack.status.code) == (1, 0)


async def test_a_reload_turns_a_single_target_route_into_a_fan_out_one_without_losing_rows(sink, tmp_path):
    path = tmp_path / "bridge.yaml"

    def write(routes: dict) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump({"listen": "127.0.0.1:0", "http": None, "routes": routes}))
        os.replace(tmp, path)

    single = {"r": {"dialect": "http", "url": sink.url + "/main", "batch": {"linger": "2ms"},
                    "delivery": fast_delivery(max_elapsed="10s")}}
    write(single)
    bridge = Bridge(load_config(path), http=False)
    await bridge.start()
    acks: list[pb.BatchAck] = []
    sent: list[str] = []
    reloaded = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}") as ch:
            stub = pb_grpc.IngestServiceStub(ch)

            async def gen():
                for m in range(400):  # bounded; ends soon after the reload
                    if reloaded and m >= len(acks) + 20:
                        return
                    keys = [f"{m}-{i}" for i in range(5)]
                    sent.extend(keys)
                    yield kv(m, keys) if m == 0 else pb.IngestRequest(route="", sequence=m, rows=kv(m, keys).rows)
                    await asyncio.sleep(0.002)

            call = stub.IngestStream(gen())

            async def read() -> None:
                async for ack in call:
                    acks.append(ack)

            reader = asyncio.ensure_future(read())
            await wait_until(lambda: len(acks) >= 10, what="acks before the reload")
            write({"r": {"targets": [
                {"name": "main", "dialect": "http", "url": sink.url + "/main", "batch": {"linger": "2ms"},
                 "delivery": fast_delivery(max_elapsed="10s")},
                {"name": "copy", "dialect": "http", "url": sink.url + "/copy", "batch": {"linger": "2ms"},
                 "delivery": fast_delivery(max_elapsed="10s")}]}})
            assert await bridge.reload(path) is True
            reloaded = True
            await asyncio.wait_for(reader, 60)
        await wait_until(lambda: not bridge.switching, what="the switch done", timeout=30)
    finally:
        await bridge.stop(grace=2.0)
    assert [a.sequence for a in acks] == list(range(len(acks)))
    assert [(a.status.code, a.accepted) for a in acks] == [(0, 5)] * len(acks)
    assert len(acks) * 5 == len(sent)
    main = [r["k"] for req in sink.requests if req.path == "/main" for r in req.rows]
    copy = [r["k"] for req in sink.requests if req.path == "/copy" for r in req.rows]
    assert sorted(main) == sorted(sent) and len(set(main)) == len(main)  # every row once, none lost
    # After the switch, rows went to both; the acks of the fan-out version name both targets.
    assert copy and set(copy) <= set(main)
    assert any("copy" in a.upstream and a.upstream["main"] == "OK" for a in acks)


def test_check_explain_and_schema_show_each_target(tmp_path, capsys):
    from bridge.cli import main

    path = tmp_path / "fan.yaml"
    path.write_text(yaml.safe_dump({"routes": {"r": {"columns": {"k": "string", "v": "int"}, "targets": [
        {"name": "sink", "dialect": "http", "url": "http://127.0.0.1:9/in"},
        {"name": "tp", "dialect": "timeplus", "url": "http://127.0.0.1:9/default", "target": "kv",
         "auth": {"username": "ingest", "password": "s3cret-pw"}},
        {"name": "spare", "dialect": "http", "url": "http://127.0.0.1:9/spare", "required": False}]}}}))
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "route r: 3 targets" in out and "target tp (required): dialect=timeplus" in out
    assert "target spare (optional): dialect=http url=http://127.0.0.1:9/spare" in out
    assert "s3cret-pw" not in out and "'password': '***'" in out
    rows = tmp_path / "rows.ndjson"
    rows.write_text('{"k": "a", "v": 1}\n{"k": "b", "v": 2}\n')
    assert main(["explain", "--config", str(path), "--route", "r", str(rows)]) == 0
    out = capsys.readouterr().out
    assert "== target sink (required)" in out and "== target spare (optional)" in out
    assert "POST http://127.0.0.1:9/in" in out and "/default/api/v1beta2/streams/kv/ingest" in out
    assert "route 'r' (timeplus): 2 row(s) in, 2 to send in 1 HTTP request(s), 0 rejected" in out
    assert "s3cret-pw" not in out
    # The http targets are not ClickHouse's (no INSERT INTO): schema says so for them and writes the others.
    assert main(["schema", "--config", str(path), "--route", "r"]) == 2
    out, err = capsys.readouterr()
    assert "-- target 'tp'" in out and "CREATE STREAM" in out
    assert "target 'sink': route 'r' is an http route without INSERT INTO" in err


async def test_each_lane_reads_a_neutral_spool_record_with_its_own_transcoder(sink, tp, bridge_factory):
    # What a spool with one cursor per target will hand each lane (its Downstream): the caller's request bytes.
    b = await bridge_factory({"r": {"targets": [sink_target(sink), tp_target(tp)]}})
    sink_lane, tp_lane = b.routes["r"].lanes
    request = kv(1, ["a", "b", "c"], [pb.OP_INSERT, pb.OP_DELETE, pb.OP_INSERT]).SerializeToString()
    rows, errors = sink_lane.rows_of(request, [2])
    assert [rows.caller_index(p) for p in range(len(rows))] == [0] and [e.index for e in errors] == [1]
    rows, errors = tp_lane.rows_of(request, [2])
    assert [rows.caller_index(p) for p in range(len(rows))] == [0, 1] and errors == []


async def test_targets_with_the_same_plan_share_one_transcode_per_request(sink, tp, bridge_factory, channel_factory):
    b = await bridge_factory({"r": {"targets": [sink_target(sink, "one"), sink_target(sink, "two"), tp_target(tp)]}})
    calls: list[str] = []
    for lane in b.routes["r"].lanes:
        def counted(*args, _real=lane.transcoder.transcode, _name=lane.name):
            calls.append(_name)
            return _real(*args)
        lane.transcoder.transcode = counted
    stub = channel_factory(b)
    ack = await stub.IngestBatch(kv(1, ["a", "b"]))
    assert (ack.accepted, ack.status.code) == (2, 0)
    assert calls == ["one", "tp"], "the two http targets read the request once; Timeplus has its own plan"
    assert sorted((req.path, r["k"]) for req in sink.requests for r in req.rows) == [
        ("/one", "a"), ("/one", "b"), ("/two", "a"), ("/two", "b")]
