"""A route named wrong: a hint among the caller's own routes, and the same answer for the stream's next messages."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2

from bridge.dev import sample
from tests.grpc_helpers import error_info, status_of


def route_to(sink) -> dict:
    return {"dialect": "http", "url": sink.url + "/in", "batch": {"linger": "0s"}}


async def test_an_unknown_route_gets_a_did_you_mean(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"clicks": route_to(sink), "orders": route_to(sink)})
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await channel_factory(b).IngestBatch(sample.json_request("clikcs", 0, range(2)), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == "route 'clikcs' is not configured (did you mean 'clicks'?); configured: clicks, orders"
    assert error_info(status_of(e.value)).reason == "ROUTE_NOT_FOUND"


async def test_the_hint_names_only_the_callers_routes(sink, bridge_factory, channel_factory):
    access = {"tokens": [{"name": "x", "token": "tok-a", "routes": ["a"]}]}
    b = await bridge_factory({"clicks": route_to(sink), "a": route_to(sink)}, access=access)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await channel_factory(b).IngestBatch(sample.json_request("clikcs", 0, range(2)),
                                             metadata=(("authorization", "Bearer tok-a"),), timeout=10)
    assert e.value.details() == "route 'clikcs' is not configured; configured: a"


async def test_an_empty_route_after_an_unknown_one_gets_that_routes_not_found(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"clicks": route_to(sink)})
    stub = channel_factory(b)

    async def gen():
        yield sample.json_request("nope", 0, range(2))
        yield sample.json_request("", 1, range(2))  # "the same route as before"
        yield sample.json_request("clicks", 2, range(2))
        yield sample.json_request("", 3, range(2))

    acks = [a async for a in stub.IngestStream(gen())]
    assert [a.status.code for a in acks] == [code_pb2.NOT_FOUND, code_pb2.NOT_FOUND, code_pb2.OK, code_pb2.OK]
    for a in acks[:2]:
        info = error_info(a.status)
        assert (info.reason, info.metadata["route"]) == ("ROUTE_NOT_FOUND", "nope")
        assert a.rejected == 2
    assert [r["id"] for r in sink.rows] == [0, 1, 0, 1]


async def test_the_client_stream_call_fails_with_the_unknown_route_too(sink, bridge_factory, channel_factory):
    b = await bridge_factory({"clicks": route_to(sink)})

    async def gen():
        yield sample.json_request("clicks", 0, range(2))
        yield sample.json_request("nope", 1, range(2))
        yield sample.json_request("", 2, range(2))

    with pytest.raises(grpc.aio.AioRpcError) as e:
        await channel_factory(b).Ingest(gen(), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in e.value.details()
