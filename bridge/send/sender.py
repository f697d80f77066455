"""The send stage for one route: build → (compress) → send with retries → classify.

Layers, innermost first: the transport sends one request; ``attempt`` turns
its answer (or its failure) into an Outcome through the dialect; the retry
layer repeats transient failures; ``deliver`` splits on 413 and on bodies
over max_bytes, and lets the dialect confirm a success (Feldera completion).
"""

from __future__ import annotations

import logging
import time

from bridge import status
from bridge.dialects.base import Dialect, HttpRequest
from bridge.metrics import Metrics, status_class
from bridge.outcome import Outcome, Span
from bridge.redact import Redactor, route_secrets
from bridge.rows import RowError, Rows
from bridge.send.compress import compress_async
from bridge.send.retry import RetryPolicy, parse_retry_after, with_retries
from bridge.send.transport import Transport, TransportError

log = logging.getLogger("bridge.send")


class Sender:
    def __init__(self, dialect: Dialect, transport: Transport, policy: RetryPolicy, max_bytes: int,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.dialect = dialect
        self.transport = transport
        self.policy = policy
        self.max_bytes = max_bytes
        self.route = dialect.route.name
        self.redact = Redactor(route_secrets(dialect.route))

    async def _attempt(self, request: HttpRequest, body: bytes, headers: dict[str, str], rows: Rows,
                       timeout: float) -> Outcome:
        started = time.perf_counter()
        try:
            response = await self.transport.send(request, body, headers, timeout)
        except TransportError as e:
            self._observe(None, started, len(body))
            return self._scrubbed(status.transport_failure(e.kind, e.detail))
        self._observe(response.status, started, len(body))
        outcome = self._scrubbed(self.dialect.classify(response, rows))
        if outcome.retryable and outcome.retry_after is None:
            outcome.retry_after = parse_retry_after(response.headers.get("retry-after"))
        if not outcome.ok:
            log.info(
                "route=%s target answered HTTP %s (%s): %s", self.route, response.status, outcome.code,
                outcome.message,
            )
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
            m.upstream_seconds.labels(self.route, status_class(http_status)).observe(time.perf_counter() - started)
            m.sent_bytes.labels(self.route).inc(nbytes)

    async def _send_once(self, rows: Rows, request: HttpRequest, deadline: float | None) -> Outcome:
        body = request.body
        headers = request.headers
        if request.compression:
            body = await compress_async(body, request.compression)
            headers = {**headers, "Content-Encoding": request.compression}

        previous: list[Outcome] = []

        async def attempt(timeout: float) -> Outcome:
            if previous and self.metrics is not None:
                self.metrics.retries.labels(self.route, previous[-1].reason or previous[-1].code).inc()
            outcome = await self._attempt(request, body, headers, rows, timeout)
            previous.append(outcome)
            return outcome

        outcome = await with_retries(attempt, self.policy, deadline)
        outcome.upstream = {**request.upstream, **outcome.upstream}
        return outcome

    async def deliver(self, rows: Rows, deadline: float | None = None) -> list[Span]:
        """Send ``rows``; the outcome of every row, as spans of positions."""
        request = self.dialect.build(rows)
        n = len(rows)
        if len(request.body) > self.max_bytes and n > 1:
            return await self._split(rows, deadline)
        outcome = await self._send_once(rows, request, deadline)
        if outcome.http_status == 413:
            if n > 1:
                return await self._split(rows, deadline)
            outcome = Outcome(
                code="OK",
                upstream=outcome.upstream,
                row_errors=[RowError(0, "", f"ROW_TOO_LARGE: the target refused the row alone (HTTP 413); "
                                              f"{len(request.body)} bytes encoded")],
            )
        elif outcome.ok:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is None or remaining > 0:
                outcome = self._scrubbed(await self.dialect.confirm(
                    self.transport, outcome, deadline or time.monotonic() + self.policy.cfg.max_elapsed))
        return [Span(0, n, outcome)]

    async def _split(self, rows: Rows, deadline: float | None) -> list[Span]:
        mid = len(rows) // 2
        spans = await self.deliver(rows.slice(0, mid), deadline)
        for s in await self.deliver(rows.slice(mid, len(rows)), deadline):
            s.start += mid
            s.stop += mid
            for e in s.outcome.row_errors:
                e.index += mid
            spans.append(s)
        return spans
