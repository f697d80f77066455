"""``columns: discover``: a route reads its target's schema (Timeplus' streams API, Feldera's program schema,
ClickHouse's ``DESCRIBE TABLE``) and validates rows at the edge against it; a target away at start leaves the
route NOT_SERVING and callers UNAVAILABLE (SCHEMA_UNKNOWN) until it can read the schema."""

from __future__ import annotations

import socket

import aiohttp
import grpc
import orjson
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bridge.config import load_config, parse_config
from bridge.dev.emulators.feldera import FelderaEmulator
from bridge.dev.emulators.timeplus import TimeplusEmulator
from bridge.ingest.server import Bridge
from bridge.model.errors import ConfigError
from bridge.proto import pb, pb_grpc
from tests import ch_server
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of
from tests.waiting import wait_until

GOOD = {"id": 1, "user": "ann", "price": 2.5, "ok": True, "ts": "2026-01-01T00:00:00Z", "category": "books",
        "count": 3, "message": None}
ROWS = [
    GOOD,
    {**GOOD, "id": "two"},  # a wrong type
    {k: v for k, v in GOOD.items() if k != "user"},  # a non-nullable column missing
    {**GOOD, "id": 4, "extra": "x"},  # a column the target does not have
    {k: v for k, v in GOOD.items() if k != "message"} | {"id": 5},  # a nullable one may be left out
]


def json_request(route: str, rows: list[dict], seq: int = 1) -> pb.IngestRequest:
    req = pb.IngestRequest(route=route, sequence=seq)
    req.json.objects.extend(orjson.dumps(r) for r in rows)
    return req


def by_index(ack: pb.BatchAck) -> dict[int, tuple[str, str]]:
    return {e.index: (e.column, e.reason) for e in ack.errors}


def check_rejections(ack: pb.BatchAck, dropped: bool) -> None:
    """The ack of ROWS: the wrong type and the missing column named with the type expected; the unknown column
    refused, or (``dropped``) left out and the row taken."""
    errors = by_index(ack)
    assert errors[1] == ("id", "column 'id' expects an integer in int64, got \"two\"")
    assert errors[2] == ("user", "column 'user' is missing: it is not nullable and expects a string")
    if dropped:
        assert set(errors) == {1, 2} and ack.accepted == 3
    else:
        assert errors[3] == ("extra", "key 'extra' is not in the target's schema")
        assert set(errors) == {1, 2, 3} and ack.accepted == 2


async def health_of(bridge: Bridge, route: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}") as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=f"ingestbridge.v1.route/{route}"))
        return resp.status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_bridge(routes: dict) -> Bridge:
    doc = {"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "routes": routes}
    b = Bridge(parse_config(yaml.safe_dump(doc, sort_keys=False), env={}))
    await b.start()
    return b


async def check_down_then_up(route: dict, bring_up, rows: list[dict]) -> None:
    """The target is away at start: NOT_SERVING, /readyz says why, callers get UNAVAILABLE with RetryInfo and
    SCHEMA_UNKNOWN; once ``bring_up()`` has run, the route serves and validates."""
    b = await start_bridge({"r": route})
    try:
        assert await health_of(b, "r") == health_pb2.HealthCheckResponse.NOT_SERVING
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{b.http_port}/readyz") as resp:
            ready = (await resp.json())["routes"]["r"]
        assert ready["serving"] is False and ready["columns"] == 0
        assert ready["schema_error"].startswith("cannot read the target's schema: cannot reach the target")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch:
            stub = pb_grpc.IngestServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.IngestBatch(json_request("r", rows))
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
            st = status_of(exc.value)
            assert error_info(st).reason == "SCHEMA_UNKNOWN"
            assert details(st)["RetryInfo"][0].retry_delay.ToTimedelta().total_seconds() > 0
            assert len((await stub.ListRoutes(pb.ListRoutesRequest())).routes[0].columns) == 0
            await bring_up()

            async def serving() -> bool:
                return await health_of(b, "r") == health_pb2.HealthCheckResponse.SERVING

            await wait_until(serving, timeout=60, interval=0.1, what="the route serves")
            ack = await stub.IngestBatch(json_request("r", rows, seq=2))
            check_rejections(ack, dropped=False)
            assert len((await stub.ListRoutes(pb.ListRoutesRequest())).routes[0].columns) > 0
    finally:
        await b.stop(grace=1.0)


# -- Timeplus ----------------------------------------------------------------------------------------------
@pytest.fixture
async def tp():
    e = TimeplusEmulator()
    await e.start()
    yield e
    await e.stop()


def tp_route(url: str, **extra) -> dict:
    return {"dialect": "timeplus", "url": url + "/default", "target": "clicks", "columns": "discover",
            "auth": {"username": "ingest", "password": "secret"}, "batch": {"linger": "0s"},
            "delivery": fast_delivery(), **extra}


async def test_timeplus_stream_columns_validate_rows(tp, bridge_factory, channel_factory):
    b = await bridge_factory({"r": tp_route(tp.url)})
    stub = channel_factory(b)
    (schema_get,) = tp.requests
    assert (schema_get.method, schema_get.path, schema_get.query) == ("GET", "/default/api/v1beta2/streams/clicks", [])
    assert schema_get.headers["Authorization"] == "Basic aW5nZXN0OnNlY3JldA=="
    ack = await stub.IngestBatch(json_request("r", ROWS))
    check_rejections(ack, dropped=False)
    assert [r["id"] for r in tp.rows] == [1, 5]
    (info,) = (await stub.ListRoutes(pb.ListRoutesRequest())).routes
    assert [(c.name, c.type) for c in info.columns] == [
        ("_tp_time", "timestamp?"), ("id", "int"), ("user", "string"), ("price", "double"), ("ok", "bool"),
        ("ts", "timestamp"), ("category", "string"), ("count", "int"), ("message", "string?")]


async def test_timeplus_unknown_columns_drop(tp, bridge_factory, channel_factory):
    b = await bridge_factory({"r": tp_route(tp.url, unknown_columns="drop")})
    ack = await channel_factory(b).IngestBatch(json_request("r", ROWS))
    check_rejections(ack, dropped=True)
    assert [r["id"] for r in tp.rows] == [1, 4, 5]
    assert "extra" not in tp.rows[1] and tp.rows[1]["user"] == "ann"


async def test_timeplus_table_rows_unknown_column_refused_or_dropped(tp, bridge_factory, channel_factory):
    req = pb.IngestRequest(route="r", sequence=1)
    req.rows.columns.extend(["id", "user", "ok", "ts", "category", "count", "price", "extra"])
    v = req.rows.rows.add().values
    for value in (pb.Value(int=7), pb.Value(string="bo"), pb.Value(bool=False), pb.Value(string="2026-01-01T00:00:00Z"),
                  pb.Value(string="games"), pb.Value(int=1), pb.Value(double=1.0), pb.Value(string="x")):
        v.add().CopyFrom(value)
    b = await bridge_factory({"r": tp_route(tp.url), "d": tp_route(tp.url, unknown_columns="drop")})
    stub = channel_factory(b)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.IngestBatch(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(status_of(exc.value)).reason == "UNKNOWN_COLUMN"
    assert "column 'extra' is not in the target's schema" in exc.value.details()
    req.route = "d"
    ack = await stub.IngestBatch(req)
    assert ack.accepted == 1 and tp.rows == [{"id": 7, "user": "bo", "ok": False, "ts": "2026-01-01T00:00:00Z",
                                              "category": "games", "count": 1, "price": 1.0}]


async def test_timeplus_down_at_start_then_serving():
    port = free_port()
    e = TimeplusEmulator()

    async def up() -> None:
        await e.start(port=port)

    try:
        await check_down_then_up(tp_route(f"http://127.0.0.1:{port}"), up, ROWS)
        assert [r["id"] for r in e.rows] == [1, 5]
    finally:
        await e.stop()


def test_discover_is_refused_where_no_schema_can_be_read():
    def problems(route: dict) -> list[str]:
        with pytest.raises(ConfigError) as exc:
            parse_config(yaml.safe_dump({"routes": {"r": route}}), env={})
        return exc.value.problems

    proton = {"dialect": "timeplus", "url": "http://127.0.0.1:1", "target": "s", "columns": "discover",
              "options": {"api": "proton"}}
    assert problems(proton) == ["routes.r.columns: Proton's ingest port serves no streams API: declare the columns "
                                "(or use api v1beta2)"]
    plain = {"dialect": "http", "url": "http://127.0.0.1:1/in", "columns": "discover"}
    assert problems(plain) == ["routes.r.columns: columns: discover on an http route reads ClickHouse's schema: "
                               "its query must name `INSERT INTO table`"]
    axiom = {"dialect": "axiom", "url": "http://127.0.0.1:1", "target": "d", "auth": {"token": "t"},
             "columns": "discover"}
    assert problems(axiom) == ["routes.r.columns: the axiom dialect cannot read its target's schema: declare the "
                               "columns"]
    assert problems({**tp_route("http://127.0.0.1:1"), "unknown_columns": "ignore"}) == [
        "routes.r.unknown_columns: expected reject or drop, got 'ignore'"]


# -- Feldera -----------------------------------------------------------------------------------------------
def feldera_route(url: str, **extra) -> dict:
    return {"dialect": "feldera", "url": url, "target": "clicks", "columns": "discover", "auth": {"api_key": "k1"},
            "options": {"pipeline": "shop"}, "batch": {"linger": "0s"}, "delivery": fast_delivery(), **extra}


@pytest.fixture
async def fd():
    e = FelderaEmulator(api_key="k1")
    await e.start()
    yield e
    await e.stop()


async def test_feldera_program_schema_validates_rows(fd, bridge_factory, channel_factory):
    b = await bridge_factory({"r": feldera_route(fd.url), "d": feldera_route(fd.url, unknown_columns="drop")})
    stub = channel_factory(b)
    gets = [c for c in fd.requests if c.method == "GET"]
    assert [(c.path, c.query, c.headers["Authorization"]) for c in gets] == [
        ("/v0/pipelines/shop", [], "Bearer k1")] * 2
    check_rejections(await stub.IngestBatch(json_request("r", ROWS)), dropped=False)
    assert [row["id"] for _, row in fd.changes] == [1, 5]
    check_rejections(await stub.IngestBatch(json_request("d", ROWS)), dropped=True)
    assert [row["id"] for _, row in fd.changes] == [1, 5, 1, 4, 5] and "extra" not in fd.changes[3][1]
    routes = {r.name: r for r in (await stub.ListRoutes(pb.ListRoutesRequest())).routes}
    assert [(c.name, c.type) for c in routes["r"].columns] == [
        ("id", "int"), ("user", "string"), ("price", "double?"), ("ok", "bool?"), ("ts", "timestamp?"),
        ("category", "string?"), ("count", "int?"), ("message", "string?")]


async def test_feldera_down_at_start_then_serving():
    port = free_port()
    e = FelderaEmulator(api_key="k1")

    async def up() -> None:
        await e.start(port=port)

    try:
        await check_down_then_up(feldera_route(f"http://127.0.0.1:{port}"), up, ROWS)
        assert [row["id"] for _, row in e.changes] == [1, 5]
    finally:
        await e.stop()


# -- ClickHouse --------------------------------------------------------------------------------------------
TABLE = """CREATE TABLE {name} (id Int64, user String, price Nullable(Float64), ok UInt8, ts String,
category Nullable(String), count Int64 DEFAULT 0, message Nullable(String), twice Int64 MATERIALIZED id * 2)
ENGINE = MergeTree ORDER BY id"""
CH_ROWS = [{**r, "ok": 1 if r.get("ok") else 0} if "ok" in r else r for r in ROWS]


def ch_route(url: str, table: str, **extra) -> dict:
    return {"dialect": "http", "url": url, "columns": "discover", "batch": {"linger": "0s"},
            "options": {"query": {"query": f"INSERT INTO {table} FORMAT JSONEachRow"}},
            "delivery": fast_delivery(), **extra}


def ids(ch, table: str) -> list[int]:
    return [r["id"] for r in ch.rows(table, "id")]


@pytest.mark.clickhouse
async def test_clickhouse_describe_validates_rows(clickhouse, bridge_factory, channel_factory):
    clickhouse.query(TABLE.format(name="disc"))
    clickhouse.query(TABLE.format(name="disc_drop"))
    b = await bridge_factory({"r": ch_route(clickhouse.http_url, "disc"),
                              "d": ch_route(clickhouse.http_url, "disc_drop", unknown_columns="drop")})
    stub = channel_factory(b)
    check_rejections(await stub.IngestBatch(json_request("r", CH_ROWS)), dropped=False)
    assert ids(clickhouse, "disc") == [1, 5]
    check_rejections(await stub.IngestBatch(json_request("d", CH_ROWS)), dropped=True)
    assert ids(clickhouse, "disc_drop") == [1, 4, 5]
    routes = {r.name: r for r in (await stub.ListRoutes(pb.ListRoutesRequest())).routes}
    # UInt8 is the bridge's uint; a DEFAULT column may be left out; a MATERIALIZED one takes no value.
    assert [(c.name, c.type) for c in routes["r"].columns] == [
        ("id", "int"), ("user", "string"), ("price", "double?"), ("ok", "uint"), ("ts", "string"),
        ("category", "string?"), ("count", "int?"), ("message", "string?")]


@pytest.mark.clickhouse
async def test_clickhouse_down_at_start_then_serving(clickhouse):
    port = free_port()
    later = ch_server.ClickHouse()

    async def up() -> None:
        later.start(http_port=port)
        later.query(TABLE.format(name="late"))

    try:
        await check_down_then_up(ch_route(f"http://127.0.0.1:{port}/", "late"), up, CH_ROWS)
        assert ids(later, "late") == [1, 5]
    finally:
        later.stop()


async def test_reload_reads_the_schema_again_and_a_changed_route_reads_it_before_it_takes_rows(tp, tmp_path):
    path = tmp_path / "bridge.yaml"
    doc = {"listen": "127.0.0.1:0", "routes": {"r": tp_route(tp.url), "d": tp_route(tp.url)}}
    path.write_text(yaml.safe_dump(doc))
    b = Bridge(load_config(path), http=False)
    await b.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch:
            stub = pb_grpc.IngestServiceStub(ch)
            row = {**GOOD, "region": "eu"}
            ack = await stub.IngestBatch(json_request("r", [row]))
            assert by_index(ack) == {0: ("region", "key 'region' is not in the target's schema")}
            # The stream gains a column; route r is unchanged, route d changes (drop).
            tp.streams["clicks"].append("region")
            tp.types["clicks"]["region"] = "low_cardinality(string)"
            doc["routes"]["d"] = tp_route(tp.url, unknown_columns="drop")
            path.write_text(yaml.safe_dump(doc))
            assert await b.reload(path)
            for name in ("r", "d"):
                ack = await stub.IngestBatch(json_request(name, [row, {**row, "region": 5}]))
                assert ack.accepted == 1, name
                assert by_index(ack) == {1: ("region", "column 'region' expects a string, got 5")}
            # The target away at a reload: the known columns stay (never a guess).
            await tp.stop()
            assert await b.reload(path)
            assert [c.name for c in b.routes["r"].columns][-1] == "region"
            assert await health_of(b, "r") == health_pb2.HealthCheckResponse.SERVING
    finally:
        await b.stop(grace=1.0)
