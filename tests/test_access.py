"""Inbound access: bearer tokens per route, TLS and mTLS on the gRPC port, with certificates made here."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bridge.client import Connection, IngestClient
from bridge.config import parse_config
from bridge.dev import sample
from bridge.model.errors import ConfigError
from bridge.proto import pb, pb_grpc
from tests.certs import CA
from tests.grpc_helpers import error_info, status_of

TOKEN_A = "tok-a-7c1e9d5b2f"  # may use route a
TOKEN_ALL = "tok-all-4be80a13"  # may use every route


def routes(sink) -> dict:
    return {name: {"dialect": "http", "url": f"{sink.url}/{name}", "batch": {"linger": "0s"}} for name in ("a", "b")}


ACCESS = {"tokens": [{"name": "svc-a", "token": TOKEN_A, "routes": ["a"]},
                     {"name": "ops", "token": TOKEN_ALL, "routes": "*"}]}


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def guarded(sink, bridge_factory):
    return await bridge_factory(routes(sink), access=ACCESS)


async def expect(code: grpc.StatusCode, call) -> object:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == code, e.value.details()
    return error_info(status_of(e.value))


@pytest.mark.parametrize("metadata, reason", [
    (None, "TOKEN_REQUIRED"),
    ((("authorization", "Basic dXNlcjpwdw=="),), "TOKEN_REQUIRED"),
    (bearer("not-a-token"), "TOKEN_INVALID"),
    (bearer(TOKEN_A + "x"), "TOKEN_INVALID"),
])
async def test_every_rpc_needs_a_valid_token(guarded, sink, channel_factory, metadata, reason):
    stub = channel_factory(guarded)
    req = sample.json_request("a", 0, range(3))
    for call in (stub.IngestBatch(req, metadata=metadata),
                 stub.Ingest(iter([req]), metadata=metadata),
                 stub.ListRoutes(pb.ListRoutesRequest(), metadata=metadata)):
        info = await expect(grpc.StatusCode.UNAUTHENTICATED, call)
        assert info.reason == reason
    stream = stub.IngestStream(iter([req]), metadata=metadata)
    info = await expect(grpc.StatusCode.UNAUTHENTICATED, stream.read())
    assert info.reason == reason
    assert not sink.requests
    assert "not-a-token" not in str(info) and TOKEN_A not in str(info)


async def test_a_token_reaches_only_its_routes(guarded, sink, channel_factory):
    stub = channel_factory(guarded)
    ack = await stub.IngestBatch(sample.json_request("a", 0, range(3)), metadata=bearer(TOKEN_A))
    assert ack.accepted == 3
    info = await expect(grpc.StatusCode.PERMISSION_DENIED,
                        stub.IngestBatch(sample.json_request("b", 1, range(3)), metadata=bearer(TOKEN_A)))
    assert info.reason == "ROUTE_NOT_ALLOWED" and info.metadata["route"] == "b"
    # An unknown route names only the caller's own routes: the list is no way to find the others.
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.IngestBatch(sample.json_request("zz", 2, range(1)), metadata=bearer(TOKEN_A))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "configured: a" in e.value.details()
    assert "b" not in e.value.details().split("configured:")[1]
    listed = await stub.ListRoutes(pb.ListRoutesRequest(), metadata=bearer(TOKEN_A))
    assert [r.name for r in listed.routes] == ["a"]
    listed = await stub.ListRoutes(pb.ListRoutesRequest(), metadata=bearer(TOKEN_ALL))
    assert [r.name for r in listed.routes] == ["a", "b"]
    assert [r.path for r in sink.requests] == ["/a"]


async def test_a_stream_answers_a_forbidden_route_per_message_and_goes_on(guarded, sink, channel_factory):
    stub = channel_factory(guarded)
    reqs = [sample.json_request("a", 0, range(2)), sample.json_request("b", 1, range(2)),
            sample.json_request("a", 2, range(2))]
    acks = [a async for a in stub.IngestStream(iter(reqs), metadata=bearer(TOKEN_A))]
    assert [(a.sequence, a.status.code) for a in acks] == [
        (0, 0), (1, grpc.StatusCode.PERMISSION_DENIED.value[0]), (2, 0)]
    assert [r.path for r in sink.requests] == ["/a", "/a"]


async def test_health_needs_no_token(guarded, channel_factory):
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}")
    try:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await ch.close()


async def test_the_client_sends_its_token(guarded, sink):
    async with IngestClient(f"127.0.0.1:{guarded.port}", "a", batch_rows=10,
                            connection=Connection(token=TOKEN_A)) as c:
        for i in range(25):
            await c.add({"id": i})
    assert c.accepted == 25 and len(sink.rows) == 25
    assert TOKEN_A not in repr(Connection(token=TOKEN_A))


@pytest.mark.parametrize("tokens, problem", [
    ([{"name": "x", "token": "t1", "routes": ["nope"]}], "access.tokens[0].routes: route 'nope' is not configured"),
    ([{"name": "x", "token": "t1"}], "access.tokens[0].routes: is required"),
    ([{"name": "x", "token": "", "routes": "*"}], "access.tokens[0].token: is required"),
    ([{"name": "x", "token": "t 1", "routes": "*"}], "access.tokens[0].token: must be printable"),
    ([{"name": "x", "token": "t1", "routes": "*"}, {"name": "y", "token": "t1", "routes": "*"}],
     "access.tokens[1].token: the same token is given twice"),
])
def test_access_config_errors_name_the_key_and_hide_the_token(tokens, problem):
    import yaml

    doc = {"access": {"tokens": tokens}, "routes": {"a": {"dialect": "http", "url": "http://127.0.0.1:1/"}}}
    with pytest.raises(ConfigError) as e:
        parse_config(yaml.safe_dump(doc), env={})
    text = str(e.value)
    assert problem in text
    assert "t1" not in text.replace("tokens[1]", "")


# -- TLS ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, other = CA(d / "ca"), CA(d / "other", "some other CA")
    return {"ca": ca, "server": ca.issue("server", server=True), "client": ca.issue("client", server=False),
            "stranger": other.issue("stranger", server=False)}


def secure_stub(port: int, ca, client=None) -> tuple[grpc.aio.Channel, pb_grpc.IngestServiceStub]:
    conn = Connection(ca=str(ca), cert=str(client.cert) if client else None, key=str(client.key) if client else None)
    ch = conn.channel(f"127.0.0.1:{port}")
    return ch, pb_grpc.IngestServiceStub(ch)


async def test_tls_serves_callers_that_trust_the_ca_and_only_over_tls(sink, bridge_factory, pki):
    server = pki["server"]
    b = await bridge_factory(routes(sink), tls={"cert": str(server.cert), "key": str(server.key)})
    ch, stub = secure_stub(b.port, pki["ca"].files.cert)
    try:
        ack = await stub.IngestBatch(sample.json_request("a", 0, range(4)), timeout=10)
        assert ack.accepted == 4
    finally:
        await ch.close()
    plain = grpc.aio.insecure_channel(f"127.0.0.1:{b.port}")
    try:
        stub = pb_grpc.IngestServiceStub(plain)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.IngestBatch(sample.json_request("a", 1, range(1)), timeout=3)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await plain.close()
    assert len(sink.requests) == 1


async def test_mtls_refuses_callers_without_a_certificate_from_the_client_ca(sink, bridge_factory, pki):
    server = pki["server"]
    b = await bridge_factory(routes(sink), tls={"cert": str(server.cert), "key": str(server.key),
                                                "client_ca": str(pki["ca"].files.cert)})
    for client, ok in ((pki["client"], True), (None, False), (pki["stranger"], False)):
        ch, stub = secure_stub(b.port, pki["ca"].files.cert, client)
        try:
            call = stub.IngestBatch(sample.json_request("a", 0, range(2)), timeout=5)
            if ok:
                assert (await call).accepted == 2
            else:
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await ch.close()
    assert len(sink.requests) == 1


async def test_tls_and_tokens_together(sink, bridge_factory, pki):
    server = pki["server"]
    b = await bridge_factory(routes(sink), access=ACCESS, tls={"cert": str(server.cert), "key": str(server.key)})
    ch, stub = secure_stub(b.port, pki["ca"].files.cert)
    try:
        await expect(grpc.StatusCode.UNAUTHENTICATED, stub.IngestBatch(sample.json_request("a", 0, range(1))))
        ack = await stub.IngestBatch(sample.json_request("a", 0, range(1)), metadata=bearer(TOKEN_A))
        assert ack.accepted == 1
    finally:
        await ch.close()


def test_tls_config_errors(tmp_path):
    not_pem = tmp_path / "x.pem"
    not_pem.write_text("hello")
    text = f"""
tls: {{cert: {not_pem}, key: {tmp_path}/missing.pem, client_ca: {not_pem}}}
routes: {{a: {{dialect: http, url: "http://127.0.0.1:1/"}}}}
"""
    with pytest.raises(ConfigError) as e:
        parse_config(text, env={})
    problems = e.value.problems
    assert f"tls.cert: {not_pem} is not a PEM file (no -----BEGIN line)" in problems
    assert any(p.startswith("tls.key: cannot read") and "No such file" in p for p in problems)
    assert any(p.startswith("tls.client_ca:") for p in problems)
