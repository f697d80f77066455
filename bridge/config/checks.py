"""The configuration checker's tools: problems collected with their key paths, ``${ENV}`` substitution, and
scalar values (sizes, durations, addresses) read with the error a person needs."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bridge.model.errors import ConfigError

TOP_KEYS = ("listen", "http", "tls", "access", "limits", "routes")
ROUTE_KEYS = ("dialect", "url", "target", "auth", "options", "batch", "delivery", "columns", "unknown_columns",
              "on_bad_row", "spool")
COLUMN_TYPES = ("int", "uint", "double", "bool", "string", "bytes", "timestamp", "json")
ROUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
               "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)?\s*$")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        # One problem per key: a missing variable need not also be "not an integer".
        if not any(p.startswith(path + ": ") for p in self.items):
            self.items.append(f"{path}: {message}")


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    hint = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _unknown(problems: _Problems, path: str, mapping: Mapping, known: tuple[str, ...] | list[str]) -> None:
    for key in mapping:
        if key not in known:
            more = _did_you_mean(str(key), known) or f"; known: {', '.join(known)}"
            # Appended directly: every unknown key of one mapping is its own problem.
            problems.items.append(f"{path}: unknown key {key!r}{more}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- environment ---------------------------------------------------------------------
# ${VAR} may stand anywhere, even in a flow mapping ({api_key: ${KEY}}) where a
# "{" would end the YAML. So each reference becomes a plain placeholder before
# parsing, and its value is put in after, where the key path is known.
_PLACEHOLDER = re.compile(r"__ibenv(\d+)__")


def _protect(text: str) -> tuple[str, list[tuple[str | None, str | None]]]:
    refs: list[tuple[str | None, str | None]] = []

    def repl(m: re.Match) -> str:
        refs.append((None, "${") if m.group(1) else (m.group(2), m.group(3)))
        return f"__ibenv{len(refs) - 1}__"

    return re.sub(r"\$(\$)\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}", repl, text), refs


def _substitute(node: Any, refs: list, env: Mapping[str, str], path: str, problems: _Problems) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, refs, env, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, refs, env, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "__ibenv" not in node:
        return node

    def repl(m: re.Match) -> str:
        index = int(m.group(1))
        if index >= len(refs):
            return m.group(0)
        name, default = refs[index]
        if name is None:  # $${ is a literal ${
            return "${"
        value = env.get(name)
        if value in (None, "") and default is not None:
            return default
        if value is None:
            problems.add(path, f"environment variable {name} is not set")
            return ""
        return value

    return _PLACEHOLDER.sub(repl, node)


# -- scalar checks ---------------------------------------------------------------------
def parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        if value < 0:
            raise ValueError
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError
    unit = (m.group(2) or "").lower()
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


class _NeedsUnit(ValueError):
    """A number given where a duration needs its unit."""


DURATION_UNITS_TEXT = "us, ms, s, m, h (200ms, 30s, 15m)"


def parse_duration(value: Any) -> float:
    """A duration with its unit, in seconds. A bare number other than 0 is refused: 200 could be ms or s."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise _NeedsUnit
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError
    if not m.group(2) and float(m.group(1)) != 0:
        raise _NeedsUnit
    return float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    return float(value)


def _auto_bool(value: Any) -> bool | None:
    """true / false, or auto (None: the route decides)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "auto"):
        return None if value.lower() == "auto" else value.lower() == "true"
    raise ValueError


def _check(problems: _Problems, path: str, value: Any, convert: Callable[[Any], Any], expected: str,
           minimum: float | None = None, strict_min: bool = False) -> Any:
    try:
        out = convert(value)
    except _NeedsUnit:
        problems.add(path, f"a duration needs a unit, got {_shown(value)}; units: {DURATION_UNITS_TEXT}")
        return None
    except (ValueError, TypeError):
        problems.add(path, f"expected {expected}, got {_shown(value)}")
        return None
    if minimum is not None and (out < minimum or (strict_min and out == minimum)):
        problems.add(path, f"expected {expected}, got {_shown(value)}")
        return None
    return out


def _listen(problems: _Problems, path: str, value: Any) -> str | None:
    if not isinstance(value, str):
        problems.add(path, f"expected HOST:PORT, got {_shown(value)}")
        return None
    host, sep, port = value.rpartition(":")
    ok = bool(sep and host and port.isdigit() and 0 <= int(port) <= 65535)
    if ok and host.startswith("[") != host.endswith("]"):
        ok = False
    if not ok:
        hint = f" (did you mean 127.0.0.1:{value}?)" if value.isdigit() else ""
        problems.add(path, f"expected HOST:PORT (port 0-65535), got {_shown(value)}{hint}")
        return None
    return value


def parse_listen(value: str, setting: str) -> str:
    """A HOST:PORT given outside the file (``--listen``), checked as the file's ``listen`` is: ConfigError if not."""
    problems = _Problems()
    out = _listen(problems, setting, value)
    if out is None:
        raise ConfigError(problems.items)
    return out


# -- sections ----------------------------------------------------------------------------
