"""The same rows through Axiom's own Python SDK and through the bridge arrive the same."""

from __future__ import annotations

import asyncio

import pytest

from bridge import sample
from bridge.emulators.axiom import AxiomEmulator

axiom_py = pytest.importorskip("axiom_py")
TOKEN = "xaat-sdk-compare"


async def test_axiom_py_and_the_bridge_deliver_the_same_events(bridge_factory, channel_factory):
    events = [sample.expected_json(i) for i in range(50)]
    via_sdk, via_bridge = AxiomEmulator(tokens=(TOKEN,)), AxiomEmulator(tokens=(TOKEN,))
    await via_sdk.start()
    await via_bridge.start()
    try:
        client = axiom_py.Client(TOKEN, edge_url=via_sdk.url)
        status = await asyncio.to_thread(client.ingest_events, "events", events)
        assert status.ingested == 50 and status.failed == 0

        b = await bridge_factory({"r": {"dialect": "axiom", "url": via_bridge.url, "target": "events",
                                        "auth": {"token": TOKEN}, "batch": {"linger": "0s"},
                                        "options": {"format": "ndjson", "compression": "gzip"}}})
        ack = await channel_factory(b).IngestBatch(sample.rows_request("r", 1, range(50)))
        assert ack.accepted == 50 and ack.upstream["ingested"] == "50"

        assert via_bridge.rows == via_sdk.rows == events
        (sdk_req,), (bridge_req,) = via_sdk.requests, via_bridge.requests
        assert sdk_req.path == bridge_req.path == "/v1/ingest/events"
        for header in ("Authorization", "Content-Type", "Content-Encoding"):
            assert sdk_req.headers[header] == bridge_req.headers[header], header
    finally:
        await via_sdk.stop()
        await via_bridge.stop()
