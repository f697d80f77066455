"""The same rows through Feldera's own Python SDK (feldera 0.369) and through the bridge arrive the same."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bridge.dev import sample
from bridge.dev.emulators.feldera import FelderaEmulator

feldera = pytest.importorskip("feldera")
KEY = "apikey:" + "b" * 128


def records(update_format: str, n: int) -> list:
    rows = [sample.expected_json(i) for i in range(n)]
    if update_format == "raw":
        return rows
    if update_format == "debezium":
        return [{"payload": {"op": "c", "after": r}} for r in rows]
    return [{"insert": r} for r in rows]


@pytest.mark.parametrize("update_format", ["insert_delete", "raw", "debezium"])
async def test_the_feldera_sdk_and_the_bridge_send_the_same_request(bridge_factory, channel_factory, update_format):
    sent = records(update_format, 10)
    via_sdk, via_bridge = FelderaEmulator(api_key=KEY, inprogress_polls=0), FelderaEmulator(api_key=KEY,
                                                                                            inprogress_polls=0)
    await via_sdk.start()
    await via_bridge.start()
    try:
        def sdk_send() -> str:
            client = feldera.FelderaClient(via_sdk.url, api_key=KEY)
            return client.push_to_pipeline("shop", "clicks", "json", sent, array=True,
                                           update_format=update_format, wait=True)

        token = await asyncio.to_thread(sdk_send)
        assert token
        b = await bridge_factory({"r": {"dialect": "feldera", "url": via_bridge.url, "target": "clicks",
                                        "auth": {"api_key": KEY},
                                        "options": {"pipeline": "shop", "update_format": update_format,
                                                    "wait_for_completion": True},
                                        "batch": {"linger": "0s"}}})
        ack = await channel_factory(b).IngestBatch(sample.rows_request("r", 1, range(10)))
        assert ack.accepted == 10 and ack.upstream["token"] and ack.upstream["completion"] == "complete"

        sdk_post = next(c for c in via_sdk.requests if c.method == "POST")
        (bridge_post,) = via_bridge.requests
        assert sdk_post.path == bridge_post.path == "/v0/pipelines/shop/ingress/clicks"
        assert sdk_post.query == bridge_post.query  # same parameters, values and order
        assert orjson.loads(sdk_post.body) == orjson.loads(bridge_post.body) == sent
        for header in ("Authorization", "Content-Type"):
            assert sdk_post.headers[header] == bridge_post.headers[header]
        assert "Content-Encoding" not in sdk_post.headers and "Content-Encoding" not in bridge_post.headers
        assert via_sdk.rows == via_bridge.rows == [sample.expected_json(i) for i in range(10)]
        assert via_sdk.polls >= 1 and via_bridge.polls >= 1, "both waited on completion_status"
    finally:
        await via_sdk.stop()
        await via_bridge.stop()
