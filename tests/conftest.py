"""Fixtures: real servers on loopback, started and stopped by the tests; and the unit/integration/slow markers."""

from __future__ import annotations

import inspect
import os

import grpc
import pytest
import yaml

from bridge.config import parse_config
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.dev.emulators.http_sink import HttpSink
from bridge.ingest.server import Bridge
from bridge.proto import pb_grpc
from tests import ch_server


@pytest.fixture
async def sink():
    s = HttpSink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def bridge_factory():
    """make(routes, **top_level) -> a started Bridge on a free loopback port."""
    started: list[Bridge] = []

    async def make(routes: dict, **top) -> Bridge:
        doc = {"listen": "127.0.0.1:0", "http": None, "routes": routes, **top}
        config = parse_config(yaml.safe_dump(doc, sort_keys=False), env={})
        b = Bridge(config, http=False)
        await b.start()
        started.append(b)
        return b

    yield make
    for b in started:
        await b.stop(grace=1.0)


@pytest.fixture
async def channel_factory():
    channels: list[grpc.aio.Channel] = []

    def make(bridge: Bridge, **options) -> pb_grpc.IngestServiceStub:
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}", options=list(options.items()))
        channels.append(ch)
        return pb_grpc.IngestServiceStub(ch)

    yield make
    for ch in channels:
        await ch.close()


def fast_delivery(**over) -> dict:
    """Delivery settings that keep retry tests short."""
    d = {"initial_backoff": "10ms", "max_backoff": "50ms", "max_elapsed": "2s", "timeout": "2s"}
    d.update(over)
    return d


# Tests that talk to a live server: through these fixtures, or (every async test here) over loopback.
LIVE_FIXTURES = frozenset({"bridge_factory", "channel_factory", "sink", "clickhouse", "unused_tcp_port"})
# Modules whose tests start processes (the bridge's CLI, grpcurl, ClickHouse, the examples).
PROCESS_MODULES = frozenset({"test_cli", "test_clickhouse", "test_crash", "test_examples", "test_grpcurl"})
SLOW_MODULES = frozenset({"test_crash", "test_fuzz"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test unit or integration (and slow), by what it uses, so no test file has to say it."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
        live = (inspect.iscoroutinefunction(getattr(item, "function", None))
                or not LIVE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
                or module in PROCESS_MODULES)
        item.add_marker(pytest.mark.integration if live else pytest.mark.unit)
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# One real ClickHouse per test module that asks for it (from Debian's packages; scripts/test.sh installs it).
@pytest.fixture(scope="module")
def clickhouse():
    if not ch_server.available():
        if os.environ.get("CI"):
            pytest.fail("clickhouse-server is not installed; scripts/test.sh installs it from Debian's packages")
        pytest.skip("clickhouse-server is not installed (apt-get install clickhouse-server)")
    with ch_server.ClickHouse() as ch:
        yield ch


# A target that fails on purpose, request by request; a module with its own ``target`` fixture overrides it.
@pytest.fixture
async def target():
    t = FaultyTarget()
    await t.start()
    yield t
    t.release()
    await t.stop()
