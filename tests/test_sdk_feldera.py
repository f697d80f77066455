"""The same rows through Feldera's own Python SDK and through the bridge arrive the same."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bridge import sample
from bridge.emulators.feldera import FelderaEmulator

feldera = pytest.importorskip("feldera")
KEY = "apikey:" + "b" * 128


async def test_the_feldera_sdk_and_the_bridge_send_the_same_request(bridge_factory, channel_factory):
    records = [{"insert": sample.expected_json(i)} for i in range(10)]
    via_sdk, via_bridge = FelderaEmulator(api_key=KEY, inprogress_polls=0), FelderaEmulator(api_key=KEY)
    await via_sdk.start()
    await via_bridge.start()
    try:
        def sdk_send() -> str:
            client = feldera.FelderaClient(via_sdk.url, api_key=KEY)
            return client.push_to_pipeline("shop", "clicks", "json", records, array=True,
                                           update_format="insert_delete", wait=True)

        token = await asyncio.to_thread(sdk_send)
        assert token
        b = await bridge_factory({"r": {"dialect": "feldera", "url": via_bridge.url, "target": "clicks",
                                        "auth": {"api_key": KEY}, "options": {"pipeline": "shop"},
                                        "batch": {"linger": "0s"}}})
        ack = await channel_factory(b).IngestBatch(sample.rows_request("r", 1, range(10)))
        assert ack.accepted == 10 and ack.upstream["token"]

        sdk_req = next(c for c in via_sdk.requests if c.method == "POST")
        (bridge_req,) = via_bridge.requests
        assert sdk_req.path == bridge_req.path == "/v0/pipelines/shop/ingress/clicks"
        assert dict(sdk_req.query) == dict(bridge_req.query)
        assert orjson.loads(sdk_req.body) == orjson.loads(bridge_req.body) == records
        for header in ("Authorization", "Content-Type"):
            assert sdk_req.headers[header] == bridge_req.headers[header]
        assert via_sdk.rows == via_bridge.rows
    finally:
        await via_sdk.stop()
        await via_bridge.stop()
