"""Spool mode for one route: acknowledge rows once they are fsynced to the log, deliver them from the log.

Receive side: ``accept`` appends a request as one record and answers the
caller when the record is on disk. Delivery side: one ``Pump`` per target
(``pump.py``) reads that target's cursor's records in order and hands them to
the target's ``Downstream`` under its byte budget, as internal tickets.

The API (a single-target route uses it with no ``targets``: today's layout)::

    Spool(route, cfg, metrics=None, io=None, targets=(), optional=())
    spool.open() -> Recovery            # before start; SpoolError when the directory cannot be used
    await spool.accept(ticket, rows)    # record = the rows, transcoded for the route's one target
    await spool.accept(ticket, rows, request=wire_bytes, skip=None)
                                        # record = the neutral form: the caller's IngestRequest bytes and
                                        # the caller indices rejected at accept (default: ticket.errors)
    spool.start(downstream)             # one target; or {"a": downstream_a, "b": downstream_b}
    await spool.stop_pump(); await spool.close()

With ``targets=("a", "b")`` the route's one log is under ``<dir>/<route>/``
with one cursor per target (``cursor.a``, ``cursor.b``) and one dead-letter
file per target (``dead-letter.a.ndjson``, ...); a segment goes once every
cursor passed it. A target in ``optional`` never keeps the log full: when the
log would refuse a caller while an optional cursor is the one holding the
oldest segment, that cursor skips ahead to the oldest required cursor; the
records it skipped are logged and counted
(``ingest_bridge_spool_skipped_records_total{route,target}``).

A write that fails (a full disk) refuses the request with UNAVAILABLE and
RetryInfo and nothing of it stays in the log; the route reports NOT_SERVING
until the disk has room again. A record damaged on disk is never delivered: it
is logged, counted and listed in the dead-letter file. Every such failure
counts in ``ingest_bridge_spool_errors_total``.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.model.config import SpoolConfig
from bridge.model.errors import BatchRejected, SpoolError
from bridge.model.rows import Rows
from bridge.model.tickets import Ticket
from bridge.spool import records
from bridge.spool.deadletter import DeadLetter
from bridge.spool.fileio import FileIO
from bridge.spool.pump import Downstream, Pump
from bridge.spool.wal import MIN_FREE, Recovery, SpoolWriteError, Wal

if TYPE_CHECKING:
    from bridge.ops.metrics import Metrics

log = logging.getLogger("bridge.spool")

__all__ = ["Downstream", "Spool", "dead_letter_file"]

HOLD = 1.0  # seconds a route reports NOT_SERVING after a failed write, at least
LOG_EVERY = 5.0  # seconds between log lines about the same failing operation


def dead_letter_file(target: str = "") -> str:
    return "dead-letter.ndjson" if not target else f"dead-letter.{target}.ndjson"


class Spool:
    def __init__(self, route: str, cfg: SpoolConfig, metrics: Metrics | None = None, io: FileIO | None = None,
                 targets: Sequence[str] = (), optional: Collection[str] = ()) -> None:
        self.route = route
        self.cfg = cfg
        self.metrics = metrics
        self.targets = tuple(targets)
        if set(optional) - set(self.targets):
            raise ValueError(f"optional targets {sorted(set(optional) - set(self.targets))} are not targets")
        directory = Path(cfg.dir) / route
        self.wal = Wal(directory, cfg.segment_bytes, cfg.fsync_interval, io, self.targets, optional)
        self.wal.on_error = self.io_error
        self.dead_letters = {n: DeadLetter(directory / dead_letter_file(n), io, n or None) for n in self.wal.cursors}
        self.errors: dict[tuple[str, str], int] = {}  # (op, error) -> count, as in the metric
        self.problem: str | None = None  # why the last append failed, until the spool takes rows again
        self._problem_full = False
        self._problem_until = 0.0
        self._need = 0  # bytes the last refused append needed on disk
        self._logged: dict[str, float] = {}
        self.pause = 1.0  # seconds before records that failed for a while are tried again
        self.pumps: dict[str, Pump] = {}
        self._refused = 0  # the size of the last request that did not fit (0: the last one did)
        # The gauge series this spool feeds, (gauge, labels): its route removes them when a reload drops them.
        self.gauges: list[tuple[Any, tuple[str, ...]]] = []
        if metrics is not None:
            metrics.spool_bytes.labels(route).set_function(lambda: self.disk_bytes)
            metrics.spool_limit.labels(route).set(cfg.max_bytes)
            metrics.dead_letter_rows.labels(route).set_function(lambda: self.dead_rows)
            self.gauges = [(g, (route,)) for g in (metrics.spool_bytes, metrics.spool_limit, metrics.dead_letter_rows)]
            self.gauges += [(g, (route, n)) for n in self.targets
                            for g in (metrics.spool_cursor_lag, metrics.spool_dead_letter_rows)]
        if metrics is not None and self.targets:
            for name, c in self.wal.cursors.items():
                metrics.spool_cursor_lag.labels(route, name).set_function(lambda c=c: c.undelivered)
                metrics.spool_dead_letter_rows.labels(route, name).set_function(
                    lambda d=self.dead_letters[name]: d.rows)
                if c.optional:
                    metrics.spool_skipped_records.labels(route, name)

    @property
    def dead(self) -> DeadLetter:
        """The dead-letter file of a single-target route (several targets: ``dead_letters[name]``)."""
        if self.targets:
            raise ValueError(f"route {self.route!r} has a dead-letter file per target: dead_letters[name]")
        return self.dead_letters[""]

    @property
    def dead_rows(self) -> int:
        """Rows moved to the dead-letter files since start, every target's."""
        return sum(d.rows for d in self.dead_letters.values())

    def open(self) -> Recovery:
        try:
            report = self.wal.open()
        except SpoolError as e:
            raise SpoolError(f"route {self.route!r}: {e}") from None
        if report.disk_full:
            log.error("route=%s spool: %s; delivering the %d record(s) spooled first", self.route, report.disk_full,
                      report.records)
            self._refuse(f"SPOOL_FULL: {report.disk_full}", True, 0)
        for line in report.truncated:
            log.warning("route=%s spool: %s", self.route, line)
        for line in report.cursors:
            log.warning("route=%s spool: %s", self.route, line)
        if report.records:
            log.info("route=%s spool: %d record(s) to deliver from %d segment(s)", self.route, report.records,
                     report.segments)
        return report

    @property
    def full(self) -> bool:
        """The last request refused would still not fit, or the disk under the spool refuses writes."""
        if self.wal.disk_bytes + self._refused >= self.cfg.max_bytes and not (
                self._make_room() and self.wal.disk_bytes + self._refused < self.cfg.max_bytes):
            return True
        if self.problem is None:
            return False
        if time.monotonic() < self._problem_until:
            return True
        if self._problem_full and self._free_bytes() < self._need:
            return True
        self.problem = None  # room again (or time to try again): the next request finds out
        return False

    def _refuse(self, problem: str, full: bool, need: int) -> None:
        """Report the route NOT_SERVING for a while, and on a full disk until ``need`` bytes are free."""
        self.problem = problem
        self._problem_full = full
        self._problem_until = time.monotonic() + HOLD
        self._need = need + MIN_FREE

    def _free_bytes(self) -> int:
        try:
            st = os.statvfs(self.wal.dir)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize

    @property
    def disk_bytes(self) -> int:
        return self.wal.disk_bytes

    def _make_room(self) -> bool:
        """Move the optional cursors that hold the oldest segment up to the oldest required cursor (or, with
        none required, to the log's end); True if a segment can go because of it."""
        cursors = self.wal.cursors.values()
        if not any(c.optional for c in cursors) or len(self.wal.segments) < 2:
            return False
        required = [c.position for c in cursors if not c.optional]
        to = min(required) if required else self.wal.next_seq - 1
        if self.wal.segments[0].last > to:
            return False  # the required cursors hold the oldest segment themselves: skipping frees nothing
        moved = False
        for c in cursors:
            if c.optional and c.position < to:
                before = c.position
                n = c.skip_to(to)
                moved = True
                if self.metrics is not None:
                    self.metrics.spool_skipped_records.labels(self.route, c.name).inc(n)
                log.warning("route=%s target=%s spool: the log is full and this optional target is behind: it "
                            "skips records %d..%d (%d never handed to it), counted in "
                            "ingest_bridge_spool_skipped_records_total", self.route, c.name, before + 1, to, n)
        return moved

    # -- receive side ---------------------------------------------------------------------
    async def accept(self, ticket: Ticket, rows: Rows, request: bytes | None = None,
                     skip: Collection[int] | None = None) -> None:
        """Spool a request and settle the caller's ticket: accepted once fsynced.

        Without ``request`` the record holds ``rows``; with it (a route with several targets) the record holds
        the neutral form: ``request``, the caller's IngestRequest wire bytes, and ``skip``, the caller's row
        indices rejected at accept (default: those of ``ticket.errors``), which no target is sent.
        """
        if request is None:
            payload = records.dump(rows)
        else:
            payload = records.dump_neutral(request, sorted({e.index for e in ticket.errors} if skip is None
                                                           else set(skip)))
        if self.wal.disk_bytes + len(payload) > self.cfg.max_bytes and not (
                self._make_room() and self.wal.disk_bytes + len(payload) <= self.cfg.max_bytes):
            self._refused = len(payload)
            raise BatchRejected(
                "UNAVAILABLE", "SPOOL_FULL",
                f"route {self.route!r}: the spool holds {self.wal.disk_bytes} bytes of its {self.cfg.max_bytes} "
                "while the target catches up; retry shortly", {"spool_bytes": str(self.wal.disk_bytes)},
                retry_after=1.0,
            )
        try:
            seq = await self._append(payload)
        except SpoolWriteError as e:
            reason = "SPOOL_FULL" if e.full else "SPOOL_ERROR"
            if e.op != "fsync":  # fsync failures are counted once each, by the log
                self.io_error(e.op, e)
            self._refuse(f"{reason}: {e}", e.full, len(payload))
            raise BatchRejected("UNAVAILABLE", reason,
                                f"route {self.route!r}: the spool cannot keep the rows ({e}); none of them was "
                                "accepted; retry shortly", {"spool_bytes": str(self.wal.disk_bytes)},
                                retry_after=1.0) from None
        except (SpoolError, OSError) as e:
            log.error("route=%s spool: cannot write: %s", self.route, e)
            raise BatchRejected("UNAVAILABLE", "SPOOL_ERROR", f"route {self.route!r}: cannot spool the rows: {e}",
                                retry_after=1.0) from None
        self._refused = 0
        self.problem = None
        ticket.accepted += len(rows)
        ticket.upstream["spool_seq"] = str(seq)
        ticket.finish()

    async def _append(self, payload: bytes) -> int:
        try:
            return await self.wal.append(payload)
        except SpoolWriteError as e:
            if not (e.full and self._make_room()):
                raise
            if e.op != "fsync":  # fsync failures are counted once each, by the log
                self.io_error(e.op, e)
        return await self.wal.append(payload)  # the segments an optional target held are gone: once more

    # -- delivery side ---------------------------------------------------------------------
    def start(self, downstream: Downstream | Mapping[str, Downstream]) -> None:
        """Start a pump per target: ``downstream`` is the one target's, or a mapping of every target's."""
        if isinstance(downstream, Mapping):
            given = dict(downstream)
        else:
            given = {"": downstream} if not self.targets else dict.fromkeys(self.targets, downstream)
        if set(given) != set(self.wal.cursors):
            raise ValueError(f"route {self.route!r}: downstreams for {sorted(given)}, "
                             f"targets {sorted(self.wal.cursors)}")
        for name, c in self.wal.cursors.items():
            self.pumps[name] = Pump(self, c, given[name], self.dead_letters[name])
            self.pumps[name].start()

    # -- failures --------------------------------------------------------------------------
    def count(self, op: str, error: str) -> None:
        self.errors[(op, error)] = self.errors.get((op, error), 0) + 1
        if self.metrics is not None:
            self.metrics.spool_errors.labels(self.route, op, error).inc()

    def io_error(self, op: str, e: OSError | SpoolWriteError, then: str = "") -> None:
        """Count a failed operation; log it, at most once per LOG_EVERY per operation (a full disk fails often)."""
        err = getattr(e, "errno", None)
        name = errno.errorcode.get(err, "EIO") if isinstance(err, int) else "EIO"
        self.count(op, name)
        now = time.monotonic()
        if now - self._logged.get(op, -LOG_EVERY) >= LOG_EVERY:
            self._logged[op] = now
            log.error("route=%s spool: %s failed: %s%s (counted in ingest_bridge_spool_errors_total)", self.route,
                      op, getattr(e, "strerror", None) or e, f"; {then}" if then else "")

    async def stop_pump(self) -> None:
        for pump in self.pumps.values():
            await pump.stop()
        self.pumps.clear()

    async def close(self) -> None:
        await self.stop_pump()
        await self.wal.close()
