"""The same rows through Axiom's own Python SDK (axiom-py) and through the bridge arrive the same.

Each side posts to its own emulator; what arrived (parsed events, what Axiom
would store, the path, query and the headers that matter) is compared.
"""

from __future__ import annotations

import asyncio
import gzip

import orjson
import pytest

from bridge.dev import sample
from bridge.dev.emulators.axiom import AxiomEmulator
from tests.conftest import fast_delivery

axiom_py = pytest.importorskip("axiom_py")
TOKEN = "xaat-sdk-compare"
HEADERS = ("Authorization", "Content-Type", "Content-Encoding")


@pytest.fixture
async def pair():
    """Two emulators: one for the SDK, one for the bridge."""
    emus = AxiomEmulator(tokens=(TOKEN,)), AxiomEmulator(tokens=(TOKEN,))
    for e in emus:
        await e.start()
    yield emus
    for e in emus:
        await e.stop()


async def through_bridge(bridge_factory, channel_factory, e: AxiomEmulator, n: int, **options):
    b = await bridge_factory({"r": {"dialect": "axiom", "url": e.url, "target": "events", "auth": {"token": TOKEN},
                                    "batch": {"linger": "0s"}, "options": options,
                                    "delivery": fast_delivery()}})
    ack = await channel_factory(b).IngestBatch(sample.rows_request("r", 1, range(n)))
    assert ack.accepted == n and ack.upstream["ingested"] == str(n)
    (cap,) = e.requests
    return cap


def same_request(sdk_req, bridge_req, headers=HEADERS) -> None:
    assert sdk_req.path == bridge_req.path == "/v1/ingest/events"
    for header in headers:
        assert sdk_req.headers.get(header) == bridge_req.headers.get(header), header


async def test_ingest_events_and_the_bridge_deliver_the_same_events(pair, bridge_factory, channel_factory):
    via_sdk, via_bridge = pair
    events = [sample.expected_json(i) for i in range(50)]
    client = axiom_py.Client(TOKEN, edge_url=via_sdk.url)
    status = await asyncio.to_thread(client.ingest_events, "events", events)
    assert (status.ingested, status.failed) == (50, 0)

    bridge_req = await through_bridge(bridge_factory, channel_factory, via_bridge, 50,
                                      format="ndjson", compression="gzip")
    assert via_bridge.rows == via_sdk.rows == events
    (sdk_req,) = via_sdk.requests
    same_request(sdk_req, bridge_req)
    assert sdk_req.headers["Content-Encoding"] == "gzip" and gzip.decompress(sdk_req.raw) == sdk_req.body
    # The SDK sends no query here; the bridge neither (Axiom's default time field is _time either way).
    assert sdk_req.query == bridge_req.query == []


async def test_ingest_json_with_options_matches_the_bridges_json_array(pair, bridge_factory, channel_factory):
    via_sdk, via_bridge = pair
    layout = "2006-01-02T15:04:05Z07:00"
    events = [sample.expected_json(i) for i in range(20)]
    client = axiom_py.Client(TOKEN, edge_url=via_sdk.url)
    opts = axiom_py.IngestOptions(timestamp_field="ts", timestamp_format=layout)
    payload = gzip.compress(orjson.dumps(events))
    status = await asyncio.to_thread(client.ingest, "events", payload, axiom_py.ContentType.JSON,
                                     axiom_py.ContentEncoding.GZIP, opts)
    assert status.ingested == 20

    bridge_req = await through_bridge(bridge_factory, channel_factory, via_bridge, 20, format="json",
                                      compression="gzip", timestamp_field="ts", timestamp_format=layout)
    same_request(via_sdk.requests[0], bridge_req)
    assert dict(via_sdk.requests[0].query) == dict(bridge_req.query) == {"timestamp-field": "ts",
                                                                         "timestamp-format": layout}
    assert via_bridge.rows == via_sdk.rows == events
    # The time Axiom keeps comes from `ts` on both sides.
    assert via_bridge.stored == via_sdk.stored
    assert via_bridge.time_fields == via_sdk.time_fields == ["ts"]


async def test_ingest_csv_with_a_delimiter_matches_the_bridge(pair, bridge_factory, channel_factory):
    via_sdk, via_bridge = pair
    bridge_req = await through_bridge(bridge_factory, channel_factory, via_bridge, 10, format="csv",
                                      csv_delimiter=";", compression="gzip")
    client = axiom_py.Client(TOKEN, edge_url=via_sdk.url)
    opts = axiom_py.IngestOptions(CSV_delimiter=";")
    await asyncio.to_thread(client.ingest, "events", gzip.compress(bridge_req.body), axiom_py.ContentType.CSV,
                            axiom_py.ContentEncoding.GZIP, opts)
    sdk_req = via_sdk.requests[0]
    same_request(sdk_req, bridge_req)
    # axiom-py always adds timestamp-field=_time, which is Axiom's own default: the bridge leaves it out.
    assert sdk_req.query == [("timestamp-field", "_time"), ("csv-delimiter", ";")]
    assert bridge_req.query == [("csv-delimiter", ";")]
    assert via_bridge.rows == via_sdk.rows and via_bridge.rows[3]["user"] == "user-0003"


async def test_identity_is_content_encoding_1_in_axiom_py_and_absent_in_the_bridge(
        pair, bridge_factory, channel_factory):
    via_sdk, via_bridge = pair
    client = axiom_py.Client(TOKEN, edge_url=via_sdk.url)
    payload = b"\n".join(orjson.dumps(sample.expected_json(i)) for i in range(3))
    with pytest.raises(axiom_py.AxiomError) as ei:
        await asyncio.to_thread(client.ingest, "events", payload, axiom_py.ContentType.NDJSON,
                                axiom_py.ContentEncoding.IDENTITY)
    assert ei.value.status == 415 and via_sdk.requests[0].headers["Content-Encoding"] == "1"
    assert via_sdk.rows == []

    bridge_req = await through_bridge(bridge_factory, channel_factory, via_bridge, 3, format="ndjson",
                                      compression="none")
    assert "Content-Encoding" not in bridge_req.headers
    assert via_bridge.rows == [sample.expected_json(i) for i in range(3)]
