"""JSON rows: the checks every route applies, and the top-level split of routes that re-form rows.

One rule on every route: JSON syntax (as msgspec checks it), UTF-8, an object
at the top level, nesting no deeper than ``limits.max_depth``, at most
``limits.max_value_bytes``. Numbers are never read (so never rounded); a row
that fails is rejected by index with a reason.

A batch is checked whole first: its rows joined into one JSON array go through
one msgspec call, and C-level scans do the rest (a row is one array element of
its own length, starts with ``{``, the brackets are too few to nest deep).
Only a batch that fails that is checked row by row, for the reasons.
"""

from __future__ import annotations

import re
from operator import itemgetter

import msgspec
import orjson

from bridge.model.rows import RowError

_ONE = msgspec.json.Decoder(msgspec.Raw)
_MANY = msgspec.json.Decoder(list[msgspec.Raw])
_SPLIT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[^\[\]{}]+")
_FIRST = itemgetter(0)


class RowProblem(ValueError):
    """Why one row is rejected."""


def split(raw: bytes) -> dict[str, bytes]:
    """One JSON object as {key: its value's JSON text}; a repeated key keeps its first place and last value."""
    return {k: bytes(v) for k, v in _SPLIT.decode(raw).items()}


def depth(raw: bytes) -> int:
    """How deep arrays and objects nest in (syntactically valid) JSON."""
    brackets = _BRACKETS.sub(b"", _STRINGS.sub(b"", raw))
    level = deepest = 0
    for c in brackets:
        if c in b"[{":
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def _kind(raw: bytes) -> str:
    try:
        return type(orjson.loads(raw)).__name__
    except orjson.JSONDecodeError:
        return "value"


def _problem(raw: bytes, max_value: int, max_depth: int) -> str | None:
    """Why one row is rejected, or None."""
    if len(raw) > max_value:
        return f"a value of {len(raw)} bytes is longer than {max_value} (limits.max_value_bytes)"
    try:
        _ONE.decode(raw)  # RecursionError past about a thousand levels
    except (msgspec.DecodeError, RecursionError) as e:
        return f"not valid JSON: {e}"
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError as e:
            return f"not valid JSON: not UTF-8 at byte {e.start}"
    if raw[:1] != b"{" and raw.lstrip()[:1] != b"{":
        return f"not a JSON object (a JSON {_kind(raw)})"
    if raw.count(b"[") + raw.count(b"{") > max_depth and depth(raw) > max_depth:
        return f"arrays and objects nest deeper than {max_depth} levels (limits.max_depth)"
    return None


def _whole_batch_ok(objects: list[bytes], joined: bytes, max_value: int, max_depth: int) -> bool:
    """Whether every row passes, decided for the batch at once (False: some row may not; check them one by one)."""
    lengths = list(map(len, objects))
    if lengths and max(lengths) > max_value:
        return False
    try:
        elements = _MANY.decode(b"[" + joined + b"]")
    except (msgspec.DecodeError, RecursionError):
        return False
    # Elements of the rows' own lengths, in order, leave no room between them: each row is exactly one value.
    if list(map(len, elements)) != lengths:
        return False
    if not joined.isascii():
        try:
            joined.decode()
        except UnicodeDecodeError:
            return False
    if bytes(map(_FIRST, objects)).replace(b"{", b""):
        return False  # a row that is not an object
    # Each row opens one object: only brackets beyond those can nest a row past max_depth.
    extra = joined.count(b"{") - len(objects) + (joined.count(b"[") if b"[" in joined else 0)
    return extra < max_depth


def check(objects: list[bytes], max_value: int, max_depth: int) -> tuple[list[bytes], list[int] | None,
                                                                          list[RowError]]:
    """The rows that pass (CR and LF made spaces), their indices (None: all of them), an error per other row."""
    joined = b",".join(objects)
    if _whole_batch_ok(objects, joined, max_value, max_depth):
        data, index, errors = objects, None, []
    else:
        errors = [RowError(i, "", p) for i, raw in enumerate(objects)
                  if (p := _problem(raw, max_value, max_depth)) is not None]
        bad = {e.index for e in errors}
        index = [i for i in range(len(objects)) if i not in bad]
        data = [objects[i] for i in index]
        if not errors:
            index = None
    if b"\n" in joined or b"\r" in joined:
        # One object per line for NDJSON targets (one scan of the batch, not one per row). Valid JSON holds
        # CR and LF only as whitespace (in strings they must be escaped), so a space does as well.
        data = [raw.replace(b"\n", b" ").replace(b"\r", b" ") if b"\n" in raw or b"\r" in raw else raw
                for raw in data]
    return data, index, errors
