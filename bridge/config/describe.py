"""The resolved configuration for people (``ingest-bridge check``): every route with its settings, secrets as ***."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from bridge.model.config import (
    BridgeConfig,
    RouteConfig,
    Secret,
)

_NOT_SECRET = frozenset({"username"})


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, Secret):
        return value.value if key in _NOT_SECRET else "***"
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    return value


def _target_lines(r: RouteConfig, indent: str) -> list[str]:
    """A target's own settings: auth (masked), options, batch, delivery."""
    lines = []
    if r.auth:
        lines.append(f"{indent}auth: {_masked(r.auth)}")
    lines.append(f"{indent}options: {r.options}")
    b, d = r.batch, r.delivery
    lines.append(f"{indent}batch: max_rows={b.max_rows} max_bytes={b.max_bytes} linger={b.linger:g}s "
                 f"max_buffered_bytes={b.max_buffered_bytes}")
    order = {None: "auto", True: "true", False: "false"}[d.ordered]
    conc = f"adaptive({d.adaptive.min}..{d.adaptive.max})" if d.adaptive else str(d.concurrency)
    lines.append(f"{indent}delivery: concurrency={conc} ordered={order} timeout={d.timeout:g}s "
                 f"backoff={d.initial_backoff:g}s..{d.max_backoff:g}s x{d.multiplier:g} "
                 f"max_elapsed={d.max_elapsed:g}s max_attempts={d.max_attempts or 'unlimited'}")
    return lines


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
        if not r.targets:
            lines.append(f"route {name}: dialect={r.dialect} url={r.url}" + (f" target={r.target}" if r.target else ""))
            lines += _target_lines(r, "  ")
        else:
            lines.append(f"route {name}: {len(r.targets)} targets")
        for t in r.targets:
            lines.append(f"  target {t.name} ({'required' if t.required else 'optional'}): dialect={t.cfg.dialect} "
                         f"url={t.cfg.url}" + (f" target={t.cfg.target}" if t.cfg.target else ""))
            lines += _target_lines(t.cfg, "    ")
        if r.columns:
            lines.append("  columns: " + ", ".join(f"{c.name}: {c.type}{'?' if c.nullable else ''}"
                                                   for c in r.columns))
        if r.discover:
            lines.append("  columns: discover (read from the target at start and on reload)")
        if r.columns or r.discover:
            lines.append(f"  unknown_columns: {r.unknown_columns}")
        lines.append(f"  on_bad_row: {r.on_bad_row}")
        if r.spool is not None:
            sp = r.spool
            fsync = "always" if not sp.fsync_interval else f"every {sp.fsync_interval * 1000:g}ms"
            lines.append(f"  spool: dir={sp.dir}/{name} max_bytes={sp.max_bytes} fsync={fsync} "
                         f"segment_bytes={sp.segment_bytes}")
    return "\n".join(lines)
