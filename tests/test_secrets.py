"""Known secrets through success and every failure path: none may show in logs, metrics, errors or details.

The target here is a sloppy one on purpose: every error it answers echoes the
request's headers and body back, as some real services do.
"""

from __future__ import annotations

import base64
import logging

import aiohttp
import grpc
import orjson
import pytest
import yaml
from aiohttp import web

from bridge.config import describe, parse_config
from bridge.dev import sample
from bridge.ingest.server import Bridge
from bridge.model.errors import ConfigError
from bridge.proto import pb, pb_grpc

SECRETS = {
    "HTTP_BEARER": "http-bearer-9f3a1c77e2",
    "HDR": "hdr-secret-51be0d2a",
    "TP_KEY": "tp-key-0c4e8b13f9d6",
    "TP_USER": "tp-user-a81",
    "TP_PASS": "tp-pass-7d20e6c4",
    "AXIOM": "xaat-axiom-2b9d7c1e44",
    "FELDERA": "apikey:feldera-6e0f3a98",
    "OBSRV": "obsrv-bearer-c3d58a07",
    "CALLER": "caller-token-4f71b9e2d0",
}
# What also travels: the Basic header's base64 of user:password.
WIRE = [base64.b64encode(f"{SECRETS['TP_USER']}:{SECRETS['TP_PASS']}".encode()).decode()]
ALL = list(SECRETS.values()) + WIRE


class EchoTarget:
    """Answers the status named in the path (…/s401…); an error answer echoes headers and body."""

    def __init__(self) -> None:
        self.echoed: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 200
        for part in request.path.replace("/", " ").split():
            if part.startswith("s") and part[1:].isdigit():
                status = int(part[1:])
        if status == 200:
            return web.json_response({"ingested": 1})
        echo = orjson.dumps({"message": f"refused: headers={dict(request.headers)} body={body[:200]!r}",
                             "error": {"code": f"E{status}", "message": str(dict(request.headers))}})
        self.echoed.append(echo)
        headers = {"Retry-After": "0"} if status in (429, 503) else {}
        return web.Response(body=echo, status=status, content_type="application/json", headers=headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


def config_text(url: str, dead: str) -> str:
    fast = {"initial_backoff": "10ms", "max_backoff": "20ms", "max_elapsed": "300ms", "timeout": "1s",
            "max_500_attempts": 2}

    def r(dialect: str, target_url: str, auth: dict, **more) -> dict:
        return {"dialect": dialect, "url": target_url, "auth": auth, "batch": {"linger": "0s"}, "delivery": fast,
                **more}

    routes = {}
    for status in (200, 400, 401, 403, 429, 500, 503):
        routes[f"http_{status}"] = r("http", f"{url}/s{status}", {"bearer": "${HTTP_BEARER}"})
        routes[f"hdr_{status}"] = r("http", f"{url}/s{status}", {"headers": {"X-Token": "${HDR}"}})
        routes[f"tpkey_{status}"] = r("timeplus", url, {"api_key": "${TP_KEY}"}, target=f"s{status}")
        routes[f"tpbasic_{status}"] = r("timeplus", url, {"username": "${TP_USER}", "password": "${TP_PASS}"},
                                        target=f"s{status}", options={"api": "v1beta2"})
        routes[f"axiom_{status}"] = r("axiom", url, {"token": "${AXIOM}"}, target=f"s{status}",
                                      options={"compression": "gzip"})
        routes[f"feldera_{status}"] = r("feldera", url, {"api_key": "${FELDERA}"}, target="t",
                                        options={"pipeline": f"s{status}"})
        routes[f"obsrv_{status}"] = r("obsrv", url, {"bearer": "${OBSRV}"}, target=f"s{status}")
    routes["dead"] = r("http", dead, {"bearer": "${HTTP_BEARER}"})
    doc = {"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "routes": routes,
           "access": {"tokens": [{"name": "app", "token": "${CALLER}", "routes": "*"}]}}
    return yaml.safe_dump(doc, sort_keys=False)


def leaked(text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [s for s in ALL if s.encode() in data]


async def test_no_secret_reaches_logs_metrics_errors_or_details(caplog, unused_tcp_port):
    caplog.set_level(logging.DEBUG)
    target = EchoTarget()
    url = await target.start()
    config = parse_config(config_text(url, f"http://127.0.0.1:{unused_tcp_port}"), env=SECRETS)
    bridge = Bridge(config, http="127.0.0.1:0")
    await bridge.start()
    seen: list[bytes] = []
    try:
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}")
        stub = pb_grpc.IngestServiceStub(ch)
        good = (("authorization", f"Bearer {SECRETS['CALLER']}"),)
        for name in config.routes:
            req = sample.json_request(name, 0, range(2))
            try:
                ack = await stub.IngestBatch(req, metadata=good, timeout=10)
                seen.append(ack.SerializeToString())
            except grpc.aio.AioRpcError as e:
                seen.append(e.details().encode())
                seen += [v if isinstance(v, bytes) else v.encode() for _, v in e.trailing_metadata() or ()]
            acks = [a async for a in stub.IngestStream(iter([req]), metadata=good, timeout=10)]
            seen += [a.SerializeToString() for a in acks]
        # The caller's side: a wrong token, and a right token over the Ingest call.
        for metadata in ((("authorization", f"Bearer {SECRETS['CALLER']}x"),), None):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.IngestBatch(sample.json_request("http_200", 0, range(1)), metadata=metadata)
            seen.append(e.value.details().encode() + repr(e.value.trailing_metadata()).encode())
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Ingest(iter([sample.json_request("http_401", 0, range(1))]), metadata=good)
        seen.append(e.value.details().encode() + repr(e.value.trailing_metadata()).encode())
        seen.append((await stub.ListRoutes(pb.ListRoutesRequest(), metadata=good)).SerializeToString())
        await ch.close()
        async with aiohttp.ClientSession() as s:
            for path in ("/metrics", "/readyz", "/healthz"):
                async with s.get(f"http://127.0.0.1:{bridge.http_port}{path}") as r:
                    seen.append(await r.read())
    finally:
        await bridge.stop(grace=1.0)
        await target.runner.cleanup()
    # `check` shows who the bridge logs in as (a user name is not a secret there), never a password or key.
    shown = describe(config)
    assert "'username': 'tp-user-a81'" in shown
    seen.append(shown.replace("'username': 'tp-user-a81'", "'username': (shown)").encode())
    seen.append(repr(config).encode())
    logs = "\n".join(r.getMessage() + " " + str(r.exc_info or "") for r in caplog.records)

    # The test means something: the target did echo credentials, the bridge did fail and log.
    assert any(leaked(body) for body in target.echoed)
    assert len(target.echoed) >= 6 * 7
    assert "target answered HTTP 401" in logs
    assert b"refused: headers=" in b"".join(seen), "the target's own message reaches the caller, scrubbed"
    for text in seen:
        assert not leaked(text), text[:300]
    assert not leaked(logs)


@pytest.mark.parametrize("auth", [
    {"api_key": "${HTTP_BEARER}"},  # a key this dialect does not take
    {"bearer": ["${HTTP_BEARER}"]},  # the wrong type
    {"headers": {"X-K": "${HTTP_BEARER}\r\nX-Evil: 1"}},  # header injection
])
def test_config_errors_do_not_show_secret_values(auth):
    doc = {"routes": {"r": {"dialect": "http", "url": "http://127.0.0.1:1/", "auth": auth}},
           "access": {"tokens": [{"name": "a", "token": "${CALLER}", "routes": ["nope"]}]}}
    with pytest.raises(ConfigError) as e:
        parse_config(yaml.safe_dump(doc), env=SECRETS)
    assert not leaked(str(e.value)), str(e.value)
    assert "routes.r.auth" in str(e.value)
