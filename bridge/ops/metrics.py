"""Prometheus metrics, in the conventions of OpenTelemetry Collector and Vector (``_total``, ``_seconds``, ``_bytes``).

Counted per batch, never per row, so the hot path pays a few calls per request. Metrics of a route's
delivery carry a ``target`` label: the target's ``name`` on a route with several targets, the dialect's name
(``http``, ``timeplus``, ...) on a single-target route.
"""

from __future__ import annotations

from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Children:
    """``labels()`` from a dict once the child exists: prometheus_client's converts every value with str() and
    takes a lock on each call (about 2.4 us; the hot path makes several calls per request)."""

    def labels(self, *values: Any, **named: Any) -> Any:
        if named:
            return super().labels(*values, **named)  # type: ignore[misc]
        cache = self.__dict__.setdefault("_children", {})
        child = cache.get(values)
        if child is None:
            child = cache[values] = super().labels(*values)  # type: ignore[misc]
        return child

    def remove(self, *values: Any) -> None:
        self.__dict__.pop("_children", None)
        super().remove(*values)  # type: ignore[misc]

    def clear(self) -> None:
        self.__dict__.pop("_children", None)
        super().clear()  # type: ignore[misc]


class Counter(_Children, prometheus_client.Counter):
    pass


class Gauge(_Children, prometheus_client.Gauge):
    pass


class Histogram(_Children, prometheus_client.Histogram):
    pass


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "ingest_bridge_"
        self.received_rows = Counter(p + "received_rows", "Rows received from callers", ["route"], registry=r)
        self.received_batches = Counter(p + "received_batches", "Caller requests received", ["route"], registry=r)
        self.received_bytes = Counter(p + "received_bytes", "gRPC message bytes received", ["route"], registry=r)
        self.rejected_rows = Counter(p + "rejected_rows", "Rows rejected, by who rejected them",
                                     ["route", "target", "stage"], registry=r)
        self.sent_rows = Counter(p + "sent_rows", "Rows sent to the target, by outcome", ["route", "target", "outcome"],
                                 registry=r)
        self.sent_batches = Counter(p + "sent_batches", "Batches sent to the target, by outcome",
                                    ["route", "target", "outcome"], registry=r)
        self.sent_bytes = Counter(p + "sent_bytes", "Request body bytes sent to the target (as sent)",
                                  ["route", "target"], registry=r)
        self.retries = Counter(p + "retries", "Requests sent again after a transient failure",
                               ["route", "target", "reason"], registry=r)
        self.upstream_seconds = Histogram(p + "upstream_request_duration_seconds",
                                          "Time for one HTTP request to the target",
                                          ["route", "target", "status_class"],
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.buffered_bytes = Gauge(p + "buffered_bytes", "Bytes of rows accepted and not yet delivered",
                                    ["route", "target"], registry=r)
        self.buffered_limit = Gauge(p + "buffered_bytes_limit", "The cap on buffered bytes", ["route", "target"],
                                    registry=r)
        self.concurrency_limit = Gauge(p + "concurrency_limit", "Requests the route may have in flight now "
                                       "(moves with delivery.concurrency: adaptive)", ["route", "target"], registry=r)
        self.in_flight = Gauge(p + "requests_in_flight", "Batches being delivered to the target now",
                               ["route", "target"], registry=r)
        self.dropped_rows = Counter(p + "dropped_rows", "Rows an optional target never got, by why (buffer_full, "
                                    "rejected, failed, shutdown)", ["route", "target", "reason"], registry=r)
        self.spool_bytes = Gauge(p + "spool_bytes", "Bytes of the route's spool on disk", ["route"], registry=r)
        self.spool_limit = Gauge(p + "spool_bytes_limit", "The cap on the route's spool (spool.max_bytes)", ["route"],
                                 registry=r)
        self.spool_errors = Counter(p + "spool_errors", "Spool write, fsync, read, dead-letter and cursor failures, "
                                    "and records found damaged, by operation and error", ["route", "op", "error"],
                                    registry=r)
        self.dead_letter_rows = Gauge(p + "dead_letter_rows", "Rows moved to the dead-letter file since start",
                                      ["route"], registry=r)
        # A spooled route with several targets: one cursor and one dead-letter file per target.
        self.spool_cursor_lag = Gauge(p + "spool_cursor_lag_records", "Spool records a target has yet to deliver",
                                      ["route", "target"], registry=r)
        self.spool_dead_letter_rows = Gauge(p + "spool_dead_letter_rows", "Rows moved to a target's dead-letter "
                                            "file since start", ["route", "target"], registry=r)
        self.spool_skipped_records = Counter(p + "spool_skipped_records", "Spool records an optional target "
                                             "skipped so that the full log could take callers' rows",
                                             ["route", "target"], registry=r)

        self.config_reloads = Counter(p + "config_reloads", "Configuration reloads, by result (ok, error)",
                                      ["result"], registry=r)
        for result in ("ok", "error"):
            self.config_reloads.labels(result)  # both shown from the start, so an alert on errors has a base

    def render(self) -> bytes:
        return generate_latest(self.registry)


def status_class(http_status: int | None) -> str:
    return "error" if http_status is None else f"{http_status // 100}xx"
