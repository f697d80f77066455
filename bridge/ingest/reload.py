"""Reloading the configuration of a running bridge (SIGHUP, or ``serve --watch``) without dropping a stream.

The new file is checked as fully as at start (parsed, every route built) before anything changes; when it
is bad the running configuration stays, the log says why and ``config_reloads_total{result="error"}``
counts it. Then, by route:

* unchanged: the same pipeline goes on (its buffer, batches, spool and callers' streams are untouched);
* added: a new pipeline, started;
* changed: new messages go to a new pipeline at once; it starts sending (and a spooled one opens its log)
  once the old one has delivered what it held, so rows of the route do not overtake each other;
* removed: new messages get NOT_FOUND; the old pipeline delivers what it holds, then stops.

Tokens and the call limits apply to new calls and messages; the transcode limits to new requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Protocol

from bridge.config import load_config
from bridge.ingest.access import Access
from bridge.ingest.service import IngestService
from bridge.model.config import BridgeConfig
from bridge.model.errors import ConfigError, SpoolError
from bridge.ops.metrics import Metrics
from bridge.route.budget import ByteBudget
from bridge.route.pipeline import RoutePipeline
from bridge.send.transport import Transport


class Bridge(Protocol):
    """What a reload changes of the running bridge (``bridge.ingest.server.Bridge``; declared here, one-way)."""

    config: BridgeConfig
    routes: dict[str, RoutePipeline]
    service: IngestService
    transport: Transport
    budget: ByteBudget
    metrics: Metrics
    switching: dict[str, asyncio.Task]

    async def reload(self, path: str | Path) -> bool: ...

    async def routes_changed(self) -> None: ...

log = logging.getLogger("bridge.ingest.reload")


def _drain_timeout(route: RoutePipeline) -> float:
    return max(lane.cfg.delivery.max_elapsed + lane.cfg.delivery.timeout for lane in route.lanes)


def _fixed_settings(old: BridgeConfig, new: BridgeConfig) -> list[str]:
    """Settings a reload cannot change (they need a restart)."""
    out = [key for key in ("listen", "http", "tls") if getattr(old, key) != getattr(new, key)]
    for key in ("max_message_bytes", "max_streams_per_connection", "handshake_timeout", "idle_timeout"):
        if getattr(old.limits, key) != getattr(new.limits, key):
            out.append(f"limits.{key}")
    return out


async def reload(bridge: Bridge, path: str | Path) -> bool:
    """Apply the configuration in ``path``; False (and the running one stays) when it is bad."""
    metrics = bridge.metrics
    try:
        new = load_config(path)
        old = bridge.config
        changed = {n: rc for n, rc in new.routes.items() if n not in old.routes or old.routes[n] != rc}
        # Built once without side effects first (no metrics, no transport): every problem before any change.
        problems = []
        for rc in changed.values():
            try:
                RoutePipeline(rc, None, None, None, new.limits)  # type: ignore[arg-type]
            except ConfigError as e:
                problems += e.problems
        if problems:
            raise ConfigError(problems)
    except ConfigError as e:
        metrics.config_reloads.labels("error").inc()
        log.error("config reload: %s is invalid, the running configuration stays: %s", path,
                  "; ".join(e.problems))
        return False
    except OSError as e:
        metrics.config_reloads.labels("error").inc()
        log.error("config reload: cannot read %s, the running configuration stays: %s", path, e)
        return False
    await _apply(bridge, old, new, changed)
    metrics.config_reloads.labels("ok").inc()
    return True


async def _apply(bridge: Bridge, old: BridgeConfig, new: BridgeConfig, changed: dict) -> None:
    service, routes = bridge.service, bridge.routes
    fixed = _fixed_settings(old, new)
    if fixed:
        log.warning("config reload: %s changed; that needs a restart, the running value stays", ", ".join(fixed))
    limits = new.limits
    bridge.budget.cap = limits.max_buffered_bytes
    service.max_pending_acks, service.max_rows, service.max_calls = (
        limits.max_pending_acks, limits.max_rows_per_message, limits.max_calls)
    service.access = Access(new.access)
    if limits != old.limits:
        for name, route in routes.items():
            if name not in changed:
                route.apply_limits(limits)
    removed = [n for n in routes if n not in new.routes]
    for name in removed:
        route = routes.pop(name)
        service.retired[name] = route
        _switch(bridge, name, route, None)
    # Discover routes read their target's schema again: a new or changed one before it takes rows (a first
    # attempt; it keeps trying if that fails), an unchanged one keeps its columns if the target cannot answer.
    fresh_routes = {name: RoutePipeline(rc, bridge.transport, bridge.budget, bridge.metrics, limits)
                    for name, rc in changed.items()}
    reading = [r.discovery for r in fresh_routes.values() if r.discovery is not None]
    for d in reading:
        d.start()
    await asyncio.gather(*(d.first_attempt(d.timeout + 1.0) for d in reading),
                         *(r.discovery.refresh() for n, r in routes.items()
                           if n not in changed and n in new.routes and r.discovery is not None))
    for name, fresh in fresh_routes.items():
        before = routes.get(name)
        routes[name] = fresh  # new messages go here from now on
        if before is None and name not in bridge.switching:
            _start(fresh)
        else:
            _switch(bridge, name, before, fresh)
    bridge.config = new
    await bridge.routes_changed()
    log.info("config reloaded: %d route(s); added %s, changed %s, removed %s", len(routes),
             sorted(set(changed) - set(old.routes)) or "none", sorted(set(changed) & set(old.routes)) or "none",
             sorted(removed) or "none")


def _start(route: RoutePipeline) -> None:
    try:
        route.start()
    except SpoolError as e:
        # Its callers are refused (UNAVAILABLE, retryable) rather than left waiting.
        log.error("config reload: route %r cannot start: %s", route.name, e)
        route._closing = True
        route._started.set()


def _switch(bridge: Bridge, name: str, old: RoutePipeline | None, fresh: RoutePipeline | None) -> None:
    """Retire ``old`` then start ``fresh``, after any switch of the same route still under way (its ``old``
    is then the pipeline that switch is yet to start): versions of a route send one after the other."""
    previous = bridge.switching.get(name)
    task = asyncio.create_task(_retire(bridge, name, previous, old, fresh))
    bridge.switching[name] = task

    def done(t: asyncio.Task) -> None:
        if bridge.switching.get(name) is t:
            del bridge.switching[name]

    task.add_done_callback(done)


async def _retire(bridge: Bridge, name: str, previous: asyncio.Task | None, old: RoutePipeline | None,
                  fresh: RoutePipeline | None) -> None:
    try:
        if previous is not None:
            await asyncio.shield(previous)
        if old is not None:
            await old.retire(_drain_timeout(old))
            old.drop_gauges(bridge.service.routes.get(name))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("config reload: route %r did not stop cleanly", name)
    finally:
        if fresh is not None:
            _start(fresh)
        elif bridge.service.retired.get(name) is old:
            del bridge.service.retired[name]
    log.info("config reload: the previous version of route %r has delivered what it held", name)


def file_digest(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


async def watch(bridge: Bridge, path: str | Path, interval: float = 1.0) -> None:
    """Reload whenever the file's content changes (polled: works on any file system and on ConfigMap swaps)."""
    seen = file_digest(path)
    while True:
        await asyncio.sleep(interval)
        now = file_digest(path)
        if now is not None and now != seen:
            seen = now
            with contextlib.suppress(Exception):
                await bridge.reload(path)
