"""The Python transcoder: decode a payload into ``Rows``, validate them, run the dialect's row checks.

It is the reference for what a transcoder returns, row errors and their reasons included.
"""

from __future__ import annotations

from typing import Any

from bridge.model.errors import BatchRejected, ConfigError
from bridge.model.rows import RowError, Rows
from bridge.transcode.decode import Decoder
from bridge.transcode.descriptors import MessageTypes
from bridge.transcode.plan import Plan
from bridge.transcode.timefmt import formatter
from bridge.transcode.validate import Validator


class PythonTranscoder:
    name = "python"

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        ts = formatter(plan.timestamps)
        fixed = plan.rfc3339_columns if plan.timestamps != "rfc3339" else frozenset()
        try:
            messages = MessageTypes(plan.descriptor_set, ts, fixed) if plan.descriptor_set else None
        except ConfigError as e:
            raise ConfigError([f"routes.{plan.route}.options.descriptor_set: {p}" for p in e.problems]) from None
        self.decoder = Decoder(ts, messages, mode=plan.timestamps, limits=plan.limits, rfc3339_columns=fixed)
        self.validator = Validator(plan.columns, plan.timestamps, fixed, drop=plan.unknown_columns == "drop",
                                   discovered=plan.discover) if plan.columns else None

    def transcode(self, request: Any, size: int | None = None, raw: bytes | None = None
                  ) -> tuple[Rows, list[RowError]]:
        """One IngestRequest's rows to send, and its rejected rows by caller index (sorted).

        ``size`` is the request's wire size: below ``limits.max_value_bytes`` no value can be too long, so
        lengths go unchecked. ``raw``, its wire bytes, is not needed here. A request that cannot be read at all
        raises BatchRejected.
        """
        self.decoder.begin(request.ByteSize() if size is None else size)
        kind = request.WhichOneof("payload")
        objects = None
        if kind == "rows":
            rows, errors = self.decoder.row_batch(request.rows)
        elif kind == "columns":
            rows, errors = self.decoder.column_batch(request.columns)
        elif kind == "messages":
            rows, errors = self.decoder.message_batch(request.messages)
        elif kind == "json":
            rows, errors, objects = self.decoder.json_batch(request.json, parse=self.plan.parse_json)
        else:
            raise BatchRejected("INVALID_ARGUMENT", "EMPTY_REQUEST",
                                "the request has no payload: set rows, columns, messages or json")
        if self.validator is not None:
            rows, more = self.validator.check(rows, objects)
            errors += more
        return row_checks(self.plan, rows, errors)


def row_checks(plan: Plan, rows: Rows, errors: list[RowError]) -> tuple[Rows, list[RowError]]:
    """The dialect's row checks on decoded rows: the rows they name are dropped; all errors sorted by index."""
    for check in plan.row_checks:
        more = check(rows)
        if more:
            bad = {e.index for e in more}
            rows = rows.select([p for p in range(len(rows)) if rows.caller_index(p) not in bad])
            errors += more
    errors.sort(key=lambda e: e.index)
    return rows, errors
