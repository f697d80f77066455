"""The send stage for one route: build → (compress) → send with retries → classify.

Layers, innermost first: the transport sends one request; ``_attempt`` turns
its answer (or its failure) into an Outcome through the dialect; the retry
layer repeats transient failures, and before each attempt drops the rows
nobody waits for any more (rebuilding the request when some were dropped);
``deliver`` splits on 413 and on bodies over max_bytes, splits a refused load
between the callers' requests in it to find the one the target refused, and
lets the dialect confirm a success (Feldera completion).
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from bridge.model.config import RouteConfig
from bridge.model.outcome import Outcome
from bridge.model.rows import RowError, Rows
from bridge.ops.metrics import Metrics, status_class
from bridge.ops.redact import Redactor, route_secrets
from bridge.send import answer
from bridge.send.compress import compress_async
from bridge.send.concurrency import BACK_PRESSURE_STATUS, Limiter
from bridge.send.http import HttpRequest, HttpResponse
from bridge.send.load import Load
from bridge.send.retry import RetryPolicy, parse_retry_after, with_retries
from bridge.send.transport import Transport, TransportError

log = logging.getLogger("bridge.send")

Result = tuple[Load, Outcome]


class Target(Protocol):
    """What the sender needs of a target's dialect (``bridge.dialects.base.Dialect`` is one)."""

    route: RouteConfig
    # A refusal of the whole request means the target took none of it (so a split can find the bad rows).
    atomic_refusal: bool

    def build(self, rows: Rows) -> HttpRequest: ...

    def answer(self, response: HttpResponse, rows: Rows) -> Outcome: ...

    async def confirm(self, transport: Transport, outcome: Outcome, deadline: float) -> Outcome: ...


def too_large(n: int, request: HttpRequest, max_bytes: int) -> bool:
    """A request of ``n`` rows whose body is over ``max_bytes`` is split in two halves (rows [0, n // 2) first)."""
    return n > 1 and len(request.body) > max_bytes


def trace_field(traces: list[str]) -> str:
    """`` traceparent=A,B`` for a log line (the first one is the request's), or nothing."""
    return f" traceparent={','.join(traces)}" if traces else ""


class Sender:
    def __init__(self, dialect: Target, transport: Transport, policy: RetryPolicy, max_bytes: int,
                 metrics: Metrics | None = None, limiter: Limiter | None = None, target: str = "") -> None:
        self.metrics = metrics
        self.limiter = limiter  # told of every answer (adaptive concurrency)
        self.dialect = dialect
        self.transport = transport
        self.policy = policy
        self.max_bytes = max_bytes
        self.route = dialect.route.name
        # The ``target`` label: the target's name on a route with several, else its dialect.
        self.target = target or dialect.route.dialect
        self.redact = Redactor(route_secrets(dialect.route))

    async def _attempt(self, request: HttpRequest, body: bytes, headers: dict[str, str], load: Load,
                       timeout: float) -> Outcome:
        traces = load.traces()
        if traces:
            # One request has one parent: the first caller's rows in it. The others are named in the log lines.
            headers = {**headers, "traceparent": traces[0]}
        started = time.perf_counter()
        try:
            response = await self.transport.send(request, body, headers, timeout)
        except TransportError as e:
            self._observe(None, started, len(body))
            if self.limiter is not None:
                self.limiter.observe(None, e.kind == "timeout")
            return self._scrubbed(answer.transport_failure(e.kind, e.detail))
        self._observe(response.status, started, len(body))
        outcome = self._scrubbed(self.dialect.answer(response, load.rows))
        if self.limiter is not None:
            # Only a request the target took says how long it takes to serve one (as in Vector).
            self.limiter.observe(time.perf_counter() - started if outcome.ok else None,
                                 response.status in BACK_PRESSURE_STATUS)
        if outcome.retryable and outcome.retry_after is None:
            outcome.retry_after = parse_retry_after(response.headers.get("retry-after"))
        if not outcome.ok:
            log.info(
                "route=%s target answered HTTP %s (%s): %s%s", self.route, response.status, outcome.code,
                outcome.message, trace_field(traces),
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("route=%s rows=%d delivered: HTTP %s%s", self.route, len(load), response.status,
                      trace_field(traces))
        return outcome

    def _scrubbed(self, outcome: Outcome) -> Outcome:
        """The outcome without the route's credentials: targets may echo them, callers must not see them."""
        r = self.redact
        if r.secrets:
            outcome.message = r(outcome.message)
            outcome.upstream_code = r(outcome.upstream_code)
            outcome.upstream = {k: r(v) for k, v in outcome.upstream.items()}
            for e in outcome.row_errors:
                e.reason = r(e.reason)
        return outcome

    def _observe(self, http_status: int | None, started: float, nbytes: int) -> None:
        if self.metrics is not None:
            m = self.metrics
            seconds = time.perf_counter() - started
            m.upstream_seconds.labels(self.route, self.target, status_class(http_status)).observe(seconds)
            m.sent_bytes.labels(self.route, self.target).inc(nbytes)

    async def _send_once(self, load: Load, request: HttpRequest, forever: bool) -> Result:
        """One request with retries; the rows nobody waits for leave it before each attempt."""
        current = load
        body: bytes | None = None
        headers = request.headers
        previous: list[Outcome] = []

        async def attempt(timeout: float) -> Outcome | None:
            nonlocal current, request, body, headers
            live = current.alive(time.monotonic())
            if not live.pieces:
                current = live
                return None  # nobody waits for these rows any more: no more attempts
            if live is not current:
                # A new body for the rows still wanted (and a new batch id where the dialect gives one).
                current, request, body = live, self.dialect.build(live.rows), None
            if body is None:
                body, headers = request.body, request.headers
                if request.compression:
                    body = await compress_async(body, request.compression)
                    headers = {**headers, "Content-Encoding": request.compression}
            if previous and self.metrics is not None:
                self.metrics.retries.labels(self.route, self.target, previous[-1].reason or previous[-1].code).inc()
            outcome = await self._attempt(request, body, headers, current, timeout)
            previous.append(outcome)
            return outcome

        outcome = await with_retries(attempt, self.policy, lambda: current.deadline(), forever=forever)
        if outcome is None:
            return current, Outcome(code="CANCELLED", reason="WITHDRAWN", message="nobody waits for these rows")
        outcome.upstream = {**request.upstream, **outcome.upstream}
        return current, outcome

    async def deliver(self, load: Load, forever: bool = False) -> list[Result]:
        """Send the load's rows; the outcome of every row still wanted, as (rows, outcome) pairs.

        ``forever``: transient failures are retried without an end (durable rows that must keep their order).
        """
        load = load.alive(time.monotonic())
        n = len(load)
        if n == 0:
            return []
        request = self.dialect.build(load.rows)
        if too_large(n, request, self.max_bytes):
            return await self._split(load, n // 2, forever)
        load, outcome = await self._send_once(load, request, forever)
        n = len(load)
        if outcome.http_status == 413:
            if n > 1:
                return await self._split(load, n // 2, forever)
            outcome = Outcome(
                code="OK",
                upstream=outcome.upstream,
                row_errors=[RowError(0, "", "ROW_TOO_LARGE: the target refused the row alone (HTTP 413); "
                                            f"{len(self.dialect.build(load.rows).body)} bytes encoded")],
            )
        elif not outcome.ok and self._refusal_to_split(outcome, load):
            # Which caller's rows did the target refuse? Halves by request, in order, until each stands alone.
            left, right = load.split_by_key()
            return await self.deliver(left, forever) + await self.deliver(right, forever)
        elif outcome.ok:
            deadline = load.deadline()
            if deadline is None or deadline > time.monotonic():
                outcome = self._scrubbed(await self.dialect.confirm(
                    self.transport, outcome, deadline or time.monotonic() + self.policy.cfg.max_elapsed))
        return [(load, outcome)]

    def _refusal_to_split(self, outcome: Outcome, load: Load) -> bool:
        """A refusal of the rows (not of the route) for a load of several requests, when it took none of them."""
        return (outcome.code == "INVALID_ARGUMENT" and not outcome.retryable and self.dialect.atomic_refusal
                and load.keys() > 1)

    async def _split(self, load: Load, at: int, forever: bool) -> list[Result]:
        left, right = load.split(at)
        return await self.deliver(left, forever) + await self.deliver(right, forever)
