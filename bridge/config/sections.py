"""The configuration's sections, each checked into its typed form: batch, delivery and limits rules, a route's
options and auth, TLS, access tokens, the spool, URLs and declared columns."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from yarl import URL

from bridge.config.checks import (
    COLUMN_TYPES,
    _auto_bool,
    _check,
    _did_you_mean,
    _float,
    _int,
    _Problems,
    _shown,
    _unknown,
    parse_duration,
    parse_size,
)
from bridge.model.config import (
    AccessConfig,
    CallerToken,
    ColumnSpec,
    Secret,
    SpoolConfig,
    TLSConfig,
)

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
        problems.add(path, "expected a mapping of column names to types, or `discover` (read from the target)")
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


