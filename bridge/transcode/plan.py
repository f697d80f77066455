"""What a route asks of the transcoder: its plan, built once when the route starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.model.config import ColumnSpec, LimitsConfig
from bridge.model.rows import RowError, RowForm, Rows

# A dialect's check of decoded rows (ops it cannot express, its per-row limits): errors by caller index.
RowCheck = Callable[[Rows], list[RowError]]


@dataclass(frozen=True)
class Plan:
    """Everything a transcoder needs to turn one route's request payloads into rows.

    The route config gives the options and declared columns; the dialect gives the columns its target reads
    only as RFC 3339, whether JSON rows must be split at the top level, and its row checks.
    """

    route: str
    # The ``timestamps`` option: rfc3339, epoch_s, epoch_ms, epoch_us or epoch_ns.
    timestamps: str = "rfc3339"
    # Timestamp columns written as RFC 3339 whatever ``timestamps`` says (the target reads no other form there).
    rfc3339_columns: frozenset[str] = frozenset()
    # A FileDescriptorSet path holding the MessageBatch types ("" when the route takes none).
    descriptor_set: str = ""
    # Declared columns: rows are validated against them (empty: not validated).
    columns: tuple[ColumnSpec, ...] = ()
    # ``columns: discover``: ``columns`` are the target's own, read from it (empty until they are).
    discover: bool = False
    # A column or key not among ``columns``: "reject" (the row, or a table-shaped request) or "drop" (left out).
    unknown_columns: str = "reject"
    # JSON rows are split into their top-level members (a dialect re-forms them, or they are validated).
    parse_json: bool = False
    # The target's bodies are the rows' JSON objects as they are: a transcoder may give any rows as JSON objects.
    rows_as_objects: bool = False
    # The target's bodies are tables of one form (compact arrays, CSV lines): a transcoder may give table rows
    # pre-encoded in it (``Rows.form``), their columns as their shape.
    form: RowForm | None = None
    # Column names the dialect refuses in a table-shaped batch (whole): such a batch is the Python path's.
    reserved_columns: frozenset[str] = frozenset()
    limits: LimitsConfig | None = None
    # Run in order on the decoded rows; the rows they name are dropped.
    row_checks: tuple[RowCheck, ...] = ()
