"""Configuration: one YAML file, ``${ENV}`` substitution, checked fully before anything starts.

Every problem is collected and reported at once, each as ``key.path: what is
wrong``. Secret values never appear in a problem, in ``describe`` or in a repr.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import yaml
from yarl import URL

from bridge.model.config import (
    AccessConfig,
    AdaptiveConcurrency,
    BatchConfig,
    BridgeConfig,
    CallerToken,
    ColumnSpec,
    DeliveryConfig,
    LimitsConfig,
    RouteConfig,
    Secret,
    SpoolConfig,
    TLSConfig,
)
from bridge.model.errors import ConfigError

TOP_KEYS = ("listen", "http", "tls", "access", "limits", "routes")
ROUTE_KEYS = ("dialect", "url", "target", "auth", "options", "batch", "delivery", "columns", "on_bad_row", "spool")
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
_BATCH_RULES: dict[str, tuple[Callable[[Any], Any], str, float | None, bool]] = {
    "max_rows": (_int, "a positive integer", 1, False),
    "max_bytes": (parse_size, "a size such as 4MiB (> 0)", 1, False),
    "linger": (parse_duration, "a duration such as 200ms (>= 0)", 0, False),
    "max_buffered_bytes": (parse_size, "a size such as 64MiB (> 0)", 1, False),
}
_DELIVERY_RULES: dict[str, tuple[Callable[[Any], Any], str, float | None, bool]] = {
    "concurrency": (_int, "a positive integer, adaptive, or {min: N, max: N} (adaptive within bounds)", 1, False),
    "timeout": (parse_duration, "a duration such as 30s (> 0)", 0, True),
    "initial_backoff": (parse_duration, "a duration such as 1s (> 0)", 0, True),
    "max_backoff": (parse_duration, "a duration such as 30s (> 0)", 0, True),
    "multiplier": (_float, "a number >= 1", 1, False),
    "max_elapsed": (parse_duration, "a duration such as 300s (>= 0)", 0, False),
    "max_attempts": (_int, "an integer >= 0 (0: no limit)", 0, False),
    "max_500_attempts": (_int, "a positive integer", 1, False),
    "ordered": (_auto_bool, "true, false or auto", None, False),
}
_LIMIT_RULES: dict[str, tuple[Callable[[Any], Any], str, float | None, bool]] = {
    "max_message_bytes": (parse_size, "a size such as 16MiB (> 0)", 1, False),
    "max_buffered_bytes": (parse_size, "a size such as 256MiB (> 0)", 1, False),
    "max_rows_per_message": (_int, "a positive integer", 1, False),
    "max_columns": (_int, "a positive integer", 1, False),
    "max_value_bytes": (parse_size, "a size such as 1MiB (> 0)", 1, False),
    "max_depth": (_int, "a positive integer", 1, False),
    "max_calls": (_int, "a positive integer", 1, False),
    "max_streams_per_connection": (_int, "a positive integer", 1, False),
    "max_pending_acks": (_int, "a positive integer", 1, False),
    "handshake_timeout": (parse_duration, "a duration such as 10s (> 0)", 0, True),
    "idle_timeout": (parse_duration, "a duration such as 15m (> 0)", 0, True),
    "max_connection_age": (parse_duration, "a duration such as 10m (> 0)", 0, True),
    "max_connection_age_grace": (parse_duration, "a duration such as 30s (>= 0)", 0, False),
    "shutdown_grace": (parse_duration, "a duration such as 25s (>= 0)", 0, False),
}


def _section(problems: _Problems, path: str, raw: Any, cls: type, rules: dict, defaults: dict) -> Any:
    base = cls(**{k: v for k, v in defaults.items() if k in {f.name for f in fields(cls)}})
    if raw is None:
        return base
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping, got {_shown(raw)}")
        return base
    _unknown(problems, path, raw, list(rules))
    values = {}
    for key, (convert, expected, minimum, strict) in rules.items():
        if key in raw:
            out = _check(problems, f"{path}.{key}", raw[key], convert, expected, minimum, strict)
            if out is not None:
                values[key] = out
    return replace(base, **values)


def _option(problems: _Problems, path: str, opt: Any, value: Any) -> Any:
    kind = opt.kind
    if kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"  # from ${VAR}
        if not isinstance(value, bool):
            problems.add(path, f"expected true or false, got {_shown(value)}")
        return value
    if kind == "int":
        return _check(problems, path, value, _int, "an integer")
    if kind == "str":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            problems.add(path, f"expected a string, got {_shown(value)}")
            return value
        return str(value)
    if kind == "choice":
        if value not in opt.choices:
            problems.add(path, f"expected one of {', '.join(opt.choices)}, got {_shown(value)}")
        return value
    if kind == "duration":
        return _check(problems, path, value, parse_duration, "a duration such as 30s")
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.add(path, f"expected a list of strings, got {_shown(value)}")
        return value
    if kind == "map":
        if not isinstance(value, dict):
            problems.add(path, f"expected a mapping, got {_shown(value)}")
            return {}
        out = {}
        for k, v in value.items():
            if isinstance(v, (dict, list)) or v is None:
                problems.add(f"{path}.{k}", f"expected a scalar, got {_shown(v)}")
                continue
            text = str(v).lower() if isinstance(v, bool) else str(v)
            if "\r" in text or "\n" in text or "\r" in str(k) or "\n" in str(k):
                problems.add(f"{path}.{k}", "must not contain CR or LF")
            out[str(k)] = text
        return out
    raise AssertionError(f"unknown option kind {kind}")


def _options(problems: _Problems, path: str, raw: Any, schema: dict) -> dict[str, Any]:
    out = {name: opt.default for name, opt in schema.items()}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping, got {_shown(raw)}")
        return out
    _unknown(problems, path, raw, list(schema))
    for name, opt in schema.items():
        if name in raw:
            out[name] = _option(problems, f"{path}.{name}", opt, raw[name])
        elif opt.required:
            problems.add(f"{path}.{name}", "is required")
    return out


def _auth(problems: _Problems, path: str, raw: Any, forms: tuple[frozenset[str], ...]) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(path, "expected a mapping")
        return {}
    keys = frozenset(raw)
    if keys not in forms:
        allowed = " or ".join("{" + ", ".join(sorted(f)) + "}" if f else "none" for f in forms)
        problems.add(path, f"keys {{{', '.join(sorted(map(str, keys)))}}} do not fit this dialect; use {allowed}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "headers":
            if not isinstance(value, dict):
                problems.add(f"{path}.headers", "expected a mapping of header names to values")
                continue
            headers = {}
            for name, v in value.items():
                text = str(v)
                if "\r" in text or "\n" in text or "\r" in str(name) or "\n" in str(name):
                    problems.add(f"{path}.headers.{name}", "must not contain CR or LF")
                headers[str(name)] = Secret(text)
            out[key] = headers
        elif isinstance(value, (dict, list)) or value is None:
            problems.add(f"{path}.{key}", "expected a string")
        else:
            text = str(value)
            if "\r" in text or "\n" in text:
                problems.add(f"{path}.{key}", "must not contain CR or LF")
            out[key] = Secret(text)
    return out


def _pem_file(problems: _Problems, path: str, value: Any, what: str) -> str | None:
    if not isinstance(value, str) or not value:
        problems.add(path, f"is required: the path of a PEM file holding {what}")
        return None
    try:
        text = Path(value).read_bytes()
    except OSError as e:
        problems.add(path, f"cannot read {value}: {e.strerror}")
        return None
    if b"-----BEGIN " not in text:
        problems.add(path, f"{value} is not a PEM file (no -----BEGIN line)")
    return value


def _tls(problems: _Problems, raw: Any) -> TLSConfig | None:
    if raw is None or raw is False:
        return None
    if not isinstance(raw, dict):
        problems.add("tls", "expected a mapping with cert, key and optionally client_ca")
        return None
    _unknown(problems, "tls", raw, ("cert", "key", "client_ca"))
    cert = _pem_file(problems, "tls.cert", raw.get("cert"), "the server's certificate chain")
    key = _pem_file(problems, "tls.key", raw.get("key"), "the server's private key")
    ca = None
    if raw.get("client_ca") is not None:
        ca = _pem_file(problems, "tls.client_ca", raw.get("client_ca"), "the CA that signs callers' certificates")
    if cert is None or key is None:
        return None
    return TLSConfig(cert, key, ca)


def _access(problems: _Problems, raw: Any, routes: Mapping[str, Any]) -> AccessConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("access", "expected a mapping with a list of tokens")
        return None
    _unknown(problems, "access", raw, ("tokens",))
    items = raw.get("tokens")
    if not isinstance(items, list) or not items:
        problems.add("access.tokens", "expected a list of {name, token, routes}")
        return None
    out: list[CallerToken] = []
    seen_names: set[str] = set()
    seen_tokens: set[str] = set()
    for i, item in enumerate(items):
        path = f"access.tokens[{i}]"
        if not isinstance(item, dict):
            problems.add(path, "expected a mapping with name, token and routes")
            continue
        _unknown(problems, path, item, ("name", "token", "routes"))
        name = str(item.get("name") or f"token{i}")
        if name in seen_names:
            problems.add(f"{path}.name", f"{name!r} is used twice")
        seen_names.add(name)
        token = item.get("token")
        if not isinstance(token, (str, int)) or isinstance(token, bool) or not str(token):
            problems.add(f"{path}.token", "is required: the bearer token callers present (from ${VAR})")
            continue
        token = str(token)
        if any(c.isspace() for c in token) or not token.isprintable():
            problems.add(f"{path}.token", "must be printable characters without spaces")
        if token in seen_tokens:
            problems.add(f"{path}.token", "the same token is given twice")
        seen_tokens.add(token)
        if "routes" not in item:
            problems.add(f"{path}.routes", 'is required: the routes this token may use, or "*" for every route')
            continue
        allowed = item["routes"]
        if allowed == "*" or allowed == ["*"]:
            out.append(CallerToken(name, Secret(token), None))
            continue
        if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
            problems.add(f"{path}.routes", 'expected a list of route names, or "*" for every route')
            continue
        for r in allowed:
            if r not in routes:
                problems.add(f"{path}.routes", f"route {r!r} is not configured{_did_you_mean(r, routes)}")
        out.append(CallerToken(name, Secret(token), frozenset(allowed)))
    return AccessConfig(tuple(out))


def _spool(problems: _Problems, path: str, raw: Any) -> SpoolConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(path, "expected a mapping with dir, and optionally max_bytes, fsync, segment_bytes")
        return None
    _unknown(problems, path, raw, ("dir", "max_bytes", "fsync", "segment_bytes"))
    directory = raw.get("dir")
    if not isinstance(directory, str) or not directory:
        problems.add(f"{path}.dir", "is required: the directory of the route's write-ahead log")
        return None
    d = Path(directory)
    if d.exists() and not d.is_dir():
        problems.add(f"{path}.dir", f"{directory} exists and is not a directory")
    elif not d.exists() and not d.parent.is_dir():
        problems.add(f"{path}.dir", f"{directory} does not exist, nor does its parent {d.parent}")
    elif not os.access(d if d.exists() else d.parent, os.W_OK):
        problems.add(f"{path}.dir", f"{directory} is not writable")
    out = SpoolConfig(directory)
    values: dict[str, Any] = {}
    for key, default in (("max_bytes", "1GiB"), ("segment_bytes", "16MiB")):
        value = _check(problems, f"{path}.{key}", raw.get(key, default), parse_size, "a size such as 1GiB (> 0)", 1)
        if value is not None:
            values[key] = value
    fsync = raw.get("fsync", "always")
    if isinstance(fsync, dict) and set(fsync) == {"interval_ms"}:
        fsync = f"{fsync['interval_ms']}ms"
    if fsync != "always":
        interval = _check(problems, f"{path}.fsync", fsync, parse_duration,
                          "always, or an interval such as 10ms (or {interval_ms: 10})", 0, True)
        if interval is not None:
            values["fsync_interval"] = interval
    if values.get("segment_bytes", out.segment_bytes) > values.get("max_bytes", out.max_bytes):
        problems.add(f"{path}.segment_bytes", "must not be larger than max_bytes")
    return replace(out, **values)


def _url(problems: _Problems, path: str, value: Any, allow_query: bool = False) -> str:
    from urllib.parse import urlsplit

    if not isinstance(value, str) or not value:
        problems.add(path, "is required: the target's base URL (http:// or https://)")
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        problems.add(path, f"not a URL: {_shown(value)}")
        return value
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(path, f"expected an http:// or https:// URL with a host, got {_shown(value)}")
    elif parts.username or parts.password:
        problems.add(path, "must not hold credentials; put them under auth")
    elif parts.fragment or (parts.query and not allow_query):
        # The dialect appends its path to this URL: a query here would end up in the middle of it.
        problems.add(path, "must not hold a query or fragment; dialect options set the query")
    else:
        # Escaped once here, so the request URLs built from it are sent exactly as built.
        return str(URL(value))
    return value


def _columns(problems: _Problems, path: str, raw: Any) -> tuple[ColumnSpec, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        problems.add(path, "expected a mapping of column names to types")
        return None
    out = []
    for name, typ in raw.items():
        text = str(typ).strip() if typ is not None else ""
        nullable = text.endswith("?")
        base = text[:-1] if nullable else text
        if base not in COLUMN_TYPES:
            problems.add(f"{path}.{name}", f"unknown type {_shown(typ)}; types: {', '.join(COLUMN_TYPES)} "
                                           "(a trailing ? makes it nullable)")
            continue
        out.append(ColumnSpec(str(name), base, nullable))
    return tuple(out)


def _route(problems: _Problems, name: str, raw: Any) -> RouteConfig | None:
    from bridge.dialects import DIALECTS

    path = f"routes.{name}"
    if not ROUTE_NAME.match(str(name)):
        problems.add(path, "a route name is 1-128 characters of letters, digits, '_', '.', '-'")
    if not isinstance(raw, dict):
        problems.add(path, "expected a mapping")
        return None
    _unknown(problems, path, raw, ROUTE_KEYS)
    dialect_name = raw.get("dialect")
    if dialect_name is None:
        problems.add(f"{path}.dialect", f"is required; one of {', '.join(DIALECTS)}")
        return None
    if dialect_name not in DIALECTS:
        problems.add(f"{path}.dialect", f"unknown dialect {_shown(dialect_name)}; known: {', '.join(DIALECTS)}")
        return None
    try:
        dialect = DIALECTS[dialect_name]
    except ImportError as e:
        problems.add(f"{path}.dialect", f"dialect {dialect_name!r} cannot be loaded: {e}")
        return None
    before = len(problems.items)
    url = _url(problems, f"{path}.url", raw.get("url"), allow_query=dialect_name == "http")
    target = raw.get("target", "")
    if target is None or not isinstance(target, (str, int)) or isinstance(target, bool):
        problems.add(f"{path}.target", "expected a name")
        target = ""
    target = str(target)
    if dialect.target_required and not target:
        problems.add(f"{path}.target", f"is required for dialect {dialect_name} (the {dialect.resource_type} name)")
    on_bad_row = raw.get("on_bad_row", "reject_row")
    if on_bad_row not in ("reject_row", "reject_batch"):
        problems.add(f"{path}.on_bad_row", f"expected reject_row or reject_batch, got {_shown(on_bad_row)}")
    batch = _section(problems, f"{path}.batch", raw.get("batch"), BatchConfig, _BATCH_RULES,
                     _converted(dialect.batch_defaults, _BATCH_RULES))
    if dialect.max_rows_limit is not None and batch.max_rows > dialect.max_rows_limit:
        problems.add(f"{path}.batch.max_rows", f"{dialect_name} takes at most {dialect.max_rows_limit} rows per "
                                               f"request, got {batch.max_rows}")
    route = RouteConfig(
        name=str(name),
        dialect=dialect_name,
        url=url,
        target=target,
        auth=_auth(problems, f"{path}.auth", raw.get("auth"), dialect.auth_forms),
        options=_options(problems, f"{path}.options", raw.get("options"), dialect.options),
        batch=batch,
        delivery=_delivery(problems, f"{path}.delivery", raw.get("delivery"),
                           _converted(dialect.delivery_defaults, _DELIVERY_RULES)),
        columns=_columns(problems, f"{path}.columns", raw.get("columns")),
        on_bad_row=on_bad_row,
        spool=_spool(problems, f"{path}.spool", raw.get("spool")),
    )
    if len(problems.items) == before:
        for p in dialect.check_config(route):
            problems.items.append(f"{path}.{p}")
    return route


def _delivery(problems: _Problems, path: str, raw: Any, defaults: dict) -> DeliveryConfig:
    """The delivery section; ``concurrency`` is a number, ``adaptive``, or adaptive bounds ``{min, max}``."""
    value = raw.get("concurrency") if isinstance(raw, dict) else None
    if not (value == "adaptive" or isinstance(value, dict)):
        return _section(problems, path, raw, DeliveryConfig, _DELIVERY_RULES, defaults)
    assert isinstance(raw, dict)
    delivery = _section(problems, path, {k: v for k, v in raw.items() if k != "concurrency"}, DeliveryConfig,
                        _DELIVERY_RULES, defaults)
    bounds = AdaptiveConcurrency()
    if isinstance(value, dict):
        where = f"{path}.concurrency"
        _unknown(problems, where, value, ["min", "max"])
        got = {k: _check(problems, f"{where}.{k}", value[k], _int, "a positive integer", 1)
               for k in ("min", "max") if k in value}
        bounds = replace(bounds, **{k: v for k, v in got.items() if v is not None})
        if bounds.min > bounds.max:
            problems.add(where, f"min ({bounds.min}) is above max ({bounds.max})")
    return replace(delivery, concurrency=bounds.max, adaptive=bounds)


def _converted(defaults: dict, rules: dict) -> dict:
    out = {}
    for key, value in defaults.items():
        # A dialect's defaults are numbers in their unit already (seconds for durations).
        convert = rules[key][0] if key in rules and isinstance(value, str) else (lambda v: v)
        out[key] = convert(value)
    return out


def parse_config(text: str, env: Mapping[str, str] | None = None, source: str = "<config>") -> BridgeConfig:
    """Parse and check a YAML configuration; raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    text, refs = _protect(text)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}:{where}: not valid YAML: {problem}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'routes' key")
    problems = _Problems()
    _unknown(problems, "(top level)", doc, TOP_KEYS)
    doc = _substitute(doc, refs, env, "", problems)
    listen = _listen(problems, "listen", doc.get("listen", "127.0.0.1:50051")) or "127.0.0.1:50051"
    http = doc.get("http", "127.0.0.1:9464")
    http = None if http is False or http is None else _listen(problems, "http", http)
    limits = _section(problems, "limits", doc.get("limits"), LimitsConfig, _LIMIT_RULES, {})
    routes_raw = doc.get("routes")
    routes: dict[str, RouteConfig] = {}
    if not isinstance(routes_raw, dict) or not routes_raw:
        problems.add("routes", "is required: a mapping of route names to routes")
    else:
        for name, raw in routes_raw.items():
            route = _route(problems, str(name), raw)
            if route is not None:
                routes[str(name)] = route
    tls = _tls(problems, doc.get("tls"))
    access = _access(problems, doc.get("access"), routes_raw if isinstance(routes_raw, dict) else {})
    if problems.items:
        raise ConfigError(problems.items)
    return BridgeConfig(listen=listen, http=http, routes=routes, limits=limits, tls=tls, access=access)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> BridgeConfig:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from None
    return parse_config(text, env, source=str(path))


# Auth keys that name someone rather than prove it: shown by ``check`` (a wrong user name is a common mistake).
_NOT_SECRET = frozenset({"username"})


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, Secret):
        return value.value if key in _NOT_SECRET else "***"
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    return value


def describe(config: BridgeConfig) -> str:
    """The resolved configuration for people: every route with its settings, secrets as ***."""
    lines = [f"listen: {config.listen}", f"http: {config.http or 'off'}",
             "limits: " + " ".join(f"{f.name}={getattr(config.limits, f.name)}" for f in fields(config.limits))]
    if config.tls is not None:
        lines.append(f"tls: cert={config.tls.cert} key={config.tls.key} "
                     f"client_ca={config.tls.client_ca or 'none (callers need no certificate)'}")
    if config.access is not None:
        for t in config.access.tokens:
            lines.append(f"access: token {t.name} (***) may use "
                         + (", ".join(sorted(t.routes)) if t.routes is not None else "every route"))
    for name, r in config.routes.items():
        lines.append(f"route {name}: dialect={r.dialect} url={r.url}" + (f" target={r.target}" if r.target else ""))
        if r.auth:
            lines.append(f"  auth: {_masked(r.auth)}")
        lines.append(f"  options: {r.options}")
        b, d = r.batch, r.delivery
        lines.append(f"  batch: max_rows={b.max_rows} max_bytes={b.max_bytes} linger={b.linger:g}s "
                     f"max_buffered_bytes={b.max_buffered_bytes}")
        order = {None: "auto", True: "true", False: "false"}[d.ordered]
        conc = f"adaptive({d.adaptive.min}..{d.adaptive.max})" if d.adaptive else str(d.concurrency)
        lines.append(f"  delivery: concurrency={conc} ordered={order} timeout={d.timeout:g}s "
                     f"backoff={d.initial_backoff:g}s..{d.max_backoff:g}s x{d.multiplier:g} "
                     f"max_elapsed={d.max_elapsed:g}s max_attempts={d.max_attempts or 'unlimited'}")
        if r.columns:
            lines.append("  columns: " + ", ".join(f"{c.name}: {c.type}{'?' if c.nullable else ''}"
                                                   for c in r.columns))
        lines.append(f"  on_bad_row: {r.on_bad_row}")
        if r.spool is not None:
            sp = r.spool
            fsync = "always" if not sp.fsync_interval else f"every {sp.fsync_interval * 1000:g}ms"
            lines.append(f"  spool: dir={sp.dir}/{name} max_bytes={sp.max_bytes} fsync={fsync} "
                         f"segment_bytes={sp.segment_bytes}")
    return "\n".join(lines)
