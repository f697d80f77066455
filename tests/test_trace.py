"""W3C trace context: a caller's ``traceparent`` goes out on the HTTP requests carrying its rows and into the
bridge's log lines for them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.proto import pb

A = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
B = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _req(seq: int, ids: range) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r", sequence=seq)
    req.json.objects.extend(b'{"id":%d}' % i for i in ids)
    return req


async def test_the_callers_traceparent_is_on_the_request_and_in_the_log(target, bridge_factory, channel_factory,
                                                                        caplog):
    caplog.set_level(logging.DEBUG, logger="bridge")
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"}}})
    stub = channel_factory(b)
    ack = await stub.IngestBatch(_req(0, range(3)), metadata=(("traceparent", A),))
    assert ack.accepted == 3
    assert target.requests[-1].headers.get("traceparent") == A
    assert f"rows=3 delivered: HTTP 200 traceparent={A}" in caplog.text

    await stub.IngestBatch(_req(1, range(3, 4)))
    assert "traceparent" not in {k.lower() for k in target.requests[-1].headers}, "none sent, none made up"


@pytest.mark.parametrize("bad", [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01;x-evil: 1",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
])
async def test_an_invalid_traceparent_is_not_forwarded(target, bridge_factory, channel_factory, bad):
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"}}})
    stub = channel_factory(b)
    ack = await stub.IngestBatch(_req(0, range(2)), metadata=(("traceparent", bad),))
    assert ack.accepted == 2
    assert "traceparent" not in {k.lower() for k in target.requests[-1].headers}


async def test_a_later_version_keeps_the_fields_this_version_defines(target, bridge_factory, channel_factory):
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"}}})
    stub = channel_factory(b)
    await stub.IngestBatch(_req(0, range(1)), metadata=(("traceparent", "01" + A[2:] + "-what-comes-next"),))
    assert target.requests[-1].headers.get("traceparent") == "01" + A[2:]


async def test_a_batch_of_two_callers_carries_the_first_ones_and_logs_both(target, bridge_factory,
                                                                         channel_factory, caplog):
    caplog.set_level(logging.DEBUG, logger="bridge")
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in",
                                    "batch": {"linger": "300ms", "max_rows": 100},
                                    "delivery": {"concurrency": 1}}})
    stub = channel_factory(b)
    first = asyncio.ensure_future(stub.IngestBatch(_req(0, range(0, 2)), metadata=(("traceparent", A),)))
    await asyncio.sleep(0.05)  # the second caller's rows join the batch the first one's wait in
    second = asyncio.ensure_future(stub.IngestBatch(_req(0, range(2, 4)), metadata=(("traceparent", B),)))
    await asyncio.gather(first, second)
    assert len(target.requests) == 1 and len(target.rows) == 4, "one batch with both callers' rows"
    assert target.requests[0].headers.get("traceparent") == A, "the first caller's rows come first"
    assert f"traceparent={A},{B}" in caplog.text


async def test_a_failed_batch_log_line_names_its_callers_traces(target, bridge_factory, channel_factory, caplog):
    target.script({"status": 404})
    b = await bridge_factory({"r": {"dialect": "http", "url": target.url + "/in", "batch": {"linger": "0s"}}})
    stub = channel_factory(b)
    with pytest.raises(Exception):  # noqa: B017 - the mapped status is checked elsewhere
        await stub.IngestBatch(_req(7, range(2)), metadata=(("traceparent", B),))
    assert target.requests[-1].headers.get("traceparent") == B
    failed = [r.getMessage() for r in caplog.records if "batch failed" in r.getMessage()]
    assert failed and failed[0].endswith(f"traceparent={B}")
