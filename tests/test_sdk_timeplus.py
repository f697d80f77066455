"""The same rows through Timeplus' own Python SDK and through the bridge arrive the same."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bridge.dev import sample
from bridge.dev.emulators.timeplus import TimeplusEmulator

timeplus = pytest.importorskip("timeplus")
KEY = "k" * 60  # the SDK refuses keys that are not 60 characters long


async def test_the_timeplus_sdk_and_the_bridge_send_the_same_compact_body(bridge_factory, channel_factory):
    cols = list(sample.COLUMNS)
    rows = [list(sample.expected_json(i).values()) for i in range(20)]
    via_sdk, via_bridge = TimeplusEmulator(api_key=KEY), TimeplusEmulator(api_key=KEY)
    await via_sdk.start()
    await via_bridge.start()
    try:
        def sdk_send() -> None:
            env = timeplus.Environment().address(via_sdk.url).workspace("default").apikey(KEY)
            timeplus.Stream(env=env).name("clicks").ingest(cols, rows)

        await asyncio.to_thread(sdk_send)
        b = await bridge_factory({"r": {"dialect": "timeplus", "url": via_bridge.url + "/default", "target": "clicks",
                                        "auth": {"api_key": KEY}, "batch": {"linger": "0s"}}})
        ack = await channel_factory(b).IngestBatch(sample.columns_request("r", 1, range(20)))
        assert ack.accepted == 20

        (sdk_req,), (bridge_req,) = via_sdk.requests, via_bridge.requests
        assert sdk_req.path == bridge_req.path == "/default/api/v1beta2/streams/clicks/ingest"
        assert orjson.loads(sdk_req.body) == orjson.loads(bridge_req.body) == {"columns": cols, "data": rows}
        assert sdk_req.headers["X-Api-Key"] == bridge_req.headers["X-Api-Key"]
        assert sdk_req.headers["Content-Type"] == bridge_req.headers["Content-Type"] == "application/json"
        # The SDK leaves the format to the server's default; the bridge always says it.
        assert dict(sdk_req.query).get("format", "compact") == dict(bridge_req.query)["format"] == "compact"
        assert via_sdk.rows == via_bridge.rows
    finally:
        await via_sdk.stop()
        await via_bridge.stop()
