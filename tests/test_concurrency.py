"""delivery.concurrency: fixed and adaptive (AIMD on RTT and back pressure), against a target of limited capacity."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from bridge.config import describe, parse_config
from bridge.dev import sample
from bridge.dev.emulators.faulty import FaultyTarget
from bridge.model.errors import ConfigError
from bridge.send.concurrency import Limiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def busy(lim: Limiter, n: int) -> None:
    """n slots taken and sending (what n workers with batches do)."""
    for _ in range(n):
        assert lim.held < lim.limit
        lim.held += 1
        lim.start()


def interval(lim: Limiter, clock: Clock, rtt: float, answers: int = 4, back_pressure: bool = False) -> None:
    """One interval of answers at the given RTT, the route's slots full; the clock moves past its end."""
    for _ in range(answers):
        lim.observe(None if back_pressure else rtt, back_pressure)
    clock.now += rtt * 1.01


def adaptive(clock: Clock, minimum: int = 1, maximum: int = 64) -> Limiter:
    return Limiter(minimum, adaptive=True, minimum=minimum, maximum=maximum, clock=clock)


# -- the limiter --------------------------------------------------------------------------------------------
def test_a_fixed_limit_never_moves():
    clock = Clock()
    lim = Limiter(4, clock=clock)
    busy(lim, 4)
    for _ in range(20):
        interval(lim, clock, 0.01)
    interval(lim, clock, 0.01, back_pressure=True)
    assert lim.limit == 4 and lim.increases == lim.decreases == 0


def test_adaptive_grows_by_one_per_interval_while_the_limit_is_full_and_rtt_holds():
    clock = Clock()
    lim = adaptive(clock, maximum=6)
    limits = []
    for _ in range(10):
        busy(lim, lim.limit - lim.in_flight)
        interval(lim, clock, 0.05)
        limits.append(lim.limit)
    # The first interval only sets the RTT reference; then +1 an interval, never past max.
    assert limits == [1, 2, 3, 4, 5, 6, 6, 6, 6, 6]


def test_adaptive_does_not_grow_when_the_route_does_not_fill_its_limit():
    clock = Clock()
    lim = adaptive(clock, minimum=2)
    busy(lim, 1)  # one batch at a time: no evidence the target takes more
    for _ in range(10):
        interval(lim, clock, 0.05)
    assert lim.limit == 2


def test_back_pressure_decreases_at_once_and_once_per_interval():
    clock = Clock()
    lim = adaptive(clock, minimum=1)
    lim.limit = 20
    busy(lim, 20)
    interval(lim, clock, 0.1)
    lim.observe(None, True)
    assert lim.limit == 18  # x0.9, as it came
    for _ in range(10):
        lim.observe(None, True)  # the same burst of 503s
    assert lim.limit == 18
    clock.now += 0.2
    lim.observe(None, True)
    assert lim.limit == 16


def test_a_rising_rtt_decreases_the_limit():
    clock = Clock()
    lim = adaptive(clock)
    lim.limit = 30
    busy(lim, 30)
    for rtt in (0.10, 0.11, 0.10, 0.11, 0.10):
        interval(lim, clock, rtt)
    before = lim.limit
    interval(lim, clock, 0.5)  # the target is queueing
    interval(lim, clock, 0.5)
    assert lim.limit == int(before * 0.9)


def test_the_limit_stays_within_its_bounds():
    clock = Clock()
    lim = adaptive(clock, minimum=3, maximum=5)
    for _ in range(20):
        lim.observe(None, True)
        clock.now += 1
    assert lim.limit == 3
    for _ in range(20):
        busy(lim, lim.limit - lim.in_flight)
        interval(lim, clock, 0.01)
    assert lim.limit == 5


def test_a_refused_limit_is_probed_again_less_and_less_often():
    clock = Clock()
    lim = adaptive(clock)
    lim.limit = 10
    busy(lim, 10)
    interval(lim, clock, 0.05)
    waits = []
    for _ in range(4):
        lim.observe(None, True)  # refused at this limit
        clock.now += 0.06
        lim.observe(0.05, False)
        n = 0
        while lim.limit < 10 and n < 200:
            busy(lim, max(0, lim.limit - lim.in_flight))
            interval(lim, clock, 0.05)
            n += 1
        waits.append(n)
        lim.in_flight = lim.held = lim.limit
    assert waits[0] < waits[1] < waits[2] < waits[3] < 200


async def test_slots_are_given_up_to_the_limit_and_on_release():
    lim = Limiter(2)
    await lim.acquire()
    await lim.acquire()
    third = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()
    lim.release(started=False)
    await asyncio.wait_for(third, 1)
    assert lim.held == 2
    fourth = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0.01)
    fourth.cancel()  # a worker stopped while waiting gives nothing back and takes nothing
    await asyncio.gather(fourth, return_exceptions=True)
    assert lim.held == 2 and not lim._waiters


# -- configuration ------------------------------------------------------------------------------------------
def cfg(delivery: dict):
    doc = {"routes": {"r": {"dialect": "http", "url": "http://127.0.0.1:1/x", "delivery": delivery}}}
    return parse_config(yaml.safe_dump(doc), env={})


def test_config_forms_of_concurrency():
    fixed = cfg({"concurrency": 8}).routes["r"].delivery
    assert (fixed.concurrency, fixed.adaptive) == (8, None)
    a = cfg({"concurrency": "adaptive"}).routes["r"].delivery
    assert (a.adaptive.min, a.adaptive.max, a.concurrency) == (1, 64, 64)
    c = cfg({"concurrency": {"min": 2, "max": 32}, "timeout": "5s"})
    b = c.routes["r"].delivery
    assert (b.adaptive.min, b.adaptive.max, b.concurrency, b.timeout) == (2, 32, 32, 5.0)
    assert "concurrency=adaptive(2..32)" in describe(c)


@pytest.mark.parametrize(("value", "problem"), [
    ({"min": 8, "max": 2}, "routes.r.delivery.concurrency: min (8) is above max (2)"),
    ({"min": 0}, "routes.r.delivery.concurrency.min: expected a positive integer, got 0"),
    ({"mx": 3}, "routes.r.delivery.concurrency: unknown key 'mx' (did you mean 'max'?)"),
    ("adaptiv", "routes.r.delivery.concurrency: expected a positive integer, adaptive, or {min: N, max: N}"),
])
def test_config_refuses_bad_concurrency(value, problem):
    with pytest.raises(ConfigError) as ei:
        cfg({"concurrency": value})
    assert any(p.startswith(problem) for p in ei.value.problems), ei.value.problems


# -- against a target of limited capacity ------------------------------------------------------------------
CAPACITY = 8


async def drive(bridge_factory, channel_factory, concurrency, messages: int = 600, rows: int = 20):
    """Stream ``messages`` one-batch messages through a route to a target that serves CAPACITY at a time."""
    t = FaultyTarget()
    await t.start()
    try:
        t.script({"capacity": CAPACITY, "latency": 0.01, "per_request": 0.005})
        b = await bridge_factory({"r": {
            "dialect": "http", "url": t.url + "/in", "batch": {"max_rows": rows, "linger": "0s"},
            "delivery": {"concurrency": concurrency, "initial_backoff": "20ms", "max_backoff": "500ms",
                         "timeout": "10s", "max_elapsed": "120s"}}})
        stub = channel_factory(b)
        streams, per = 4, messages // 4
        acks = []

        async def stream(s: int) -> None:
            window = asyncio.Semaphore(32)

            async def gen():
                for m in range(per):
                    await window.acquire()
                    lo = (s * per + m) * rows
                    yield sample.json_request("r" if m == 0 else "", m, range(lo, lo + rows))

            async for ack in stub.IngestStream(gen()):
                window.release()
                acks.append(ack)

        await asyncio.gather(*(stream(s) for s in range(streams)))
        return t, b.routes["r"].limiter, acks
    finally:
        await t.stop()


async def test_adaptive_finds_the_capacity_of_the_target_without_a_storm_of_503s(bridge_factory, channel_factory):
    t, limiter, acks = await drive(bridge_factory, channel_factory, {"min": 1, "max": 64})
    assert [a.status.code for a in acks] == [0] * 600 and sum(a.accepted for a in acks) == 600 * 20
    assert sorted(r["id"] for r in t.rows) == list(range(600 * 20))
    requests = len(t.requests)
    assert t.refused <= 0.01 * requests, (t.refused, requests)
    assert t.peak_in_flight >= CAPACITY  # it reached the capacity ...
    # ... and served near it: this target's throughput is load / (10 ms + 5 ms x load), so a mean load of
    # 0.7 x capacity is 90 % of the best fixed limit's throughput (the capacity). Counted, not timed.
    assert t.served_load / t.served >= 0.7 * CAPACITY, t.served_load / t.served
    assert 1 <= limiter.limit <= CAPACITY + 1 and limiter.increases >= CAPACITY - 1


async def test_a_fixed_limit_over_capacity_meets_a_storm_of_503s(bridge_factory, channel_factory):
    t, limiter, acks = await drive(bridge_factory, channel_factory, 64, messages=200)
    assert [a.status.code for a in acks] == [0] * 200 and sum(a.accepted for a in acks) == 200 * 20
    assert limiter.limit == 64
    assert t.refused >= 0.2 * len(t.requests), (t.refused, len(t.requests))


async def test_the_limit_is_a_metric_per_route(sink, bridge_factory):
    b = await bridge_factory({
        "fixed": {"dialect": "http", "url": sink.url + "/in", "delivery": {"concurrency": 3}},
        "auto": {"dialect": "http", "url": sink.url + "/in", "delivery": {"concurrency": {"min": 2, "max": 9}}},
    })
    text = b.metrics.render().decode()
    assert 'ingest_bridge_concurrency_limit{route="fixed",target="http"} 3.0' in text
    assert 'ingest_bridge_concurrency_limit{route="auto",target="http"} 2.0' in text
    assert 'ingest_bridge_requests_in_flight{route="auto",target="http"} 0.0' in text
