"""Configuration: one YAML file, ``${ENV}`` substitution, checked fully before anything starts.

Every problem is collected and reported at once, each as ``key.path: what is
wrong``. Secret values never appear in a problem, in ``describe`` or in a repr.
The checks of scalar values live in ``checks.py``, of each section in ``sections.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from bridge.config.checks import (
    ROUTE_KEYS,
    ROUTE_NAME,
    TOP_KEYS,
    _check,
    _int,
    _listen,
    _Problems,
    _protect,
    _shown,
    _substitute,
    _unknown,
)
from bridge.config.sections import (
    _BATCH_RULES,
    _DELIVERY_RULES,
    _LIMIT_RULES,
    _access,
    _auth,
    _columns,
    _options,
    _section,
    _spool,
    _tls,
    _url,
)
from bridge.model.config import (
    AdaptiveConcurrency,
    BatchConfig,
    BridgeConfig,
    DeliveryConfig,
    LimitsConfig,
    RouteConfig,
    TargetConfig,
)
from bridge.model.errors import ConfigError

# Keys each target of a route has its own of; the others (columns, unknown_columns, on_bad_row, spool) are the
# route's.
TARGET_KEYS = ("dialect", "url", "target", "auth", "options", "batch", "delivery")
TARGET_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")


def _route(problems: _Problems, name: str, raw: Any) -> RouteConfig | None:
    path = f"routes.{name}"
    if not ROUTE_NAME.match(str(name)):
        problems.add(path, "a route name is 1-128 characters of letters, digits, '_', '.', '-'")
    if not isinstance(raw, dict):
        problems.add(path, "expected a mapping")
        return None
    _unknown(problems, path, raw, (*ROUTE_KEYS, "targets"))
    before = len(problems.items)
    on_bad_row = raw.get("on_bad_row", "reject_row")
    if on_bad_row not in ("reject_row", "reject_batch"):
        problems.add(f"{path}.on_bad_row", f"expected reject_row or reject_batch, got {_shown(on_bad_row)}")
    discover = raw.get("columns") == "discover"
    unknown_columns = raw.get("unknown_columns", "reject")
    if unknown_columns not in ("reject", "drop"):
        problems.add(f"{path}.unknown_columns", f"expected reject or drop, got {_shown(unknown_columns)}")
    base = RouteConfig(
        name=str(name), dialect="", url="",
        columns=None if discover else _columns(problems, f"{path}.columns", raw.get("columns")),
        discover=discover, unknown_columns=unknown_columns, on_bad_row=on_bad_row,
        spool=_spool(problems, f"{path}.spool", raw.get("spool")),
    )
    if "targets" not in raw:
        return _target(problems, path, raw, base, before)
    given = [k for k in TARGET_KEYS if k in raw]
    if given:
        problems.add(path, f"give either targets: or the single-target keys, not both (found {', '.join(given)} "
                           "beside targets; move them into each target)")
    items = raw["targets"]
    if not isinstance(items, list) or not items:
        problems.add(f"{path}.targets", "expected a non-empty list of targets, each with a name and a dialect")
        return None
    if discover:
        problems.add(f"{path}.columns", "columns: discover is not supported on a route with several targets; "
                                        "declare the columns")
    targets: list[TargetConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{path}.targets[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "expected a mapping with name, dialect, url, ...")
            continue
        _unknown(problems, where, item, ("name", "required", *TARGET_KEYS))
        tname = item.get("name")
        if not isinstance(tname, str) or not TARGET_NAME.match(tname):
            problems.add(f"{where}.name", "is required: 1-64 characters of a-z, 0-9, '_', '-' (unique in the route)")
            tname = f"#{i}"
        elif tname in seen:
            problems.add(f"{where}.name", f"{tname!r} is used twice in this route")
        seen.add(tname)
        required = item.get("required", True)
        if isinstance(required, str) and required.lower() in ("true", "false"):
            required = required.lower() == "true"  # from ${VAR}
        if not isinstance(required, bool):
            problems.add(f"{where}.required", f"expected true or false, got {_shown(required)}")
            required = True
        cfg = _target(problems, where, item, base, len(problems.items))
        if cfg is not None:
            targets.append(TargetConfig(tname, required, cfg))
    if targets and not any(t.required for t in targets):
        problems.add(f"{path}.targets", "at least one target must be required (callers' acks wait for those)")
    return replace(base, targets=tuple(targets))


def _target(problems: _Problems, path: str, raw: dict, base: RouteConfig, before: int) -> RouteConfig | None:
    """A target's own keys (the route's, on a single-target route) on top of the route's shared ones."""
    from bridge.dialects import DIALECTS

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
    url = _url(problems, f"{path}.url", raw.get("url"), allow_query=dialect_name == "http")
    target = raw.get("target", "")
    if target is None or not isinstance(target, (str, int)) or isinstance(target, bool):
        problems.add(f"{path}.target", "expected a name")
        target = ""
    target = str(target)
    if dialect.target_required and not target:
        problems.add(f"{path}.target", f"is required for dialect {dialect_name} (the {dialect.resource_type} name)")
    batch = _section(problems, f"{path}.batch", raw.get("batch"), BatchConfig, _BATCH_RULES,
                     _converted(dialect.batch_defaults, _BATCH_RULES))
    if dialect.max_rows_limit is not None and batch.max_rows > dialect.max_rows_limit:
        problems.add(f"{path}.batch.max_rows", f"{dialect_name} takes at most {dialect.max_rows_limit} rows per "
                                               f"request, got {batch.max_rows}")
    route = replace(
        base,
        dialect=dialect_name,
        url=url,
        target=target,
        auth=_auth(problems, f"{path}.auth", raw.get("auth"), dialect.auth_forms),
        options=_options(problems, f"{path}.options", raw.get("options"), dialect.options),
        batch=batch,
        delivery=_delivery(problems, f"{path}.delivery", raw.get("delivery"),
                           _converted(dialect.delivery_defaults, _DELIVERY_RULES)),
    )
    if len(problems.items) == before:
        for p in dialect.check_config(route):
            problems.items.append(f"{path}.{p}")
        why = dialect.discover_problem(route) if route.discover else None
        if why:
            problems.add(f"{path}.columns", why)
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
