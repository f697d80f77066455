"""What each emulator accepts, said once: for ``emulate --help``, the README, and a user's own settings.

A user sets credentials and streams / tables / datasets with flags or a
small YAML file (``emulate DIALECT --rules FILE``) holding the keys below;
flags win over the file. Unset keys keep the defaults shown.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.dev.emulators import EMULATORS

if TYPE_CHECKING:
    from bridge.dev.emulators.base import Emulator

# sample.COLUMNS, spelled out: importing it (and protobuf) would slow every command's --help (a test checks them).
_COLUMNS = ["id", "user", "price", "ok", "ts", "category", "count", "message"]


@dataclass(frozen=True)
class Rules:
    text: str  # what the emulator checks, for people
    defaults: dict[str, Any]  # the settable keys and their defaults
    targets: str = ""  # the key that holds the streams / tables / datasets, if any
    columns: bool = False  # whether each target lists its columns


RULES: dict[str, Rules] = {
    "timeplus": Rules(
        "POST /{workspace}/api/v1beta2/streams/{stream}/ingest (and /api/v1beta1/..., "
        "/proton/v1/ingest/streams/{stream}). Auth: the API key (X-Api-Key, or Authorization: ApiKey) or Basic "
        "user:password; Proton takes user 'default' with no password. Only the listed streams exist; a compact "
        "body may name only their columns (and _tp_time), an NDJSON row must hold every column.",
        {"api_key": "demo-api-key", "user": "ingest", "password": "secret", "streams": {"clicks": _COLUMNS}},
        "streams", columns=True),
    "obsrv": Rules(
        "POST /v2/data/in/{dataset} with the api.data.in envelope. Auth: none, or Authorization: Bearer {token} "
        "when a token is set. Only the listed datasets exist (each also under the alias NAME-alias).",
        {"token": None, "datasets": ["clicks"]}, "datasets"),
    "feldera": Rules(
        "POST /v0/pipelines/{pipeline}/ingress/{table}. Auth: none, or Authorization: Bearer {api_key} when set. "
        "One running pipeline with the listed tables and columns; a record with an unknown column is a parse "
        "error.",
        {"api_key": None, "pipeline": "shop", "tables": {"clicks": _COLUMNS}}, "tables", columns=True),
    "axiom": Rules(
        "POST /v1/ingest/{dataset} (and /v1/datasets/{dataset}/ingest). Auth: Authorization: Bearer {token} "
        "(an xaat- API token; the legacy path also takes a personal xapt- token with X-Axiom-Org-Id: {org_id}). "
        "Only the listed datasets exist; at most 10,000 events a request.",
        {"token": "xaat-demo-token", "org_id": "demo-org", "datasets": ["events"]}, "datasets"),
    "http": Rules("POST to any path: NDJSON, a JSON array or CSV (ClickHouse's reading: \\N is NULL); no auth; "
                  "answers 200 with the rows it took.", {}),
    "faulty": Rules(
        "takes what http takes; answers each request with the next scripted step, then 200. Steps: POST /_script "
        'with one step or a list, such as {"status": 503, "times": 3}, {"status": 429, "headers": '
        '{"Retry-After": "1"}}, {"reset": true}, {"delay": 0.5}, {"slow": 2}, {"stall": true} (POST /_release '
        'ends it), {"max_rows": 10} (413 above), {"capacity": 8, "latency": 0.02} (503 past 8 at a time); '
        "DELETE /_script clears them; GET /_state shows the counts.", {}),
}


def rules_text(dialect: str) -> str:
    r = RULES[dialect]
    text = r.text
    if r.defaults:  # local stand-in credentials, shown so that a user can send with them
        text += " Defaults: " + settings_text(r.defaults) + "."
    return text


def settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in settings.items())


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: [{', '.join(v)}]" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return "none" if value is None else str(value)


def merge(dialect: str, doc: Any, flags: dict[str, Any], targets: list[str]) -> dict[str, Any]:
    """The settings in effect: defaults, then the file's, then the flags'. ValueError naming what is wrong."""
    r = RULES[dialect]
    out = dict(r.defaults)
    if doc is not None:
        if not isinstance(doc, dict):
            raise ValueError("the rules file must hold a mapping of " + (", ".join(r.defaults) or "nothing"))
        for key, value in doc.items():
            _known(dialect, str(key), "key in the rules file")
            out[key] = _checked(dialect, str(key), value)
    for key, value in flags.items():
        if value is not None:
            _known(dialect, key, f"--{key.replace('_', '-')}")
            out[key] = value
    if targets:
        if not r.targets:
            raise ValueError(f"--target: the {dialect} emulator takes any path")
        out[r.targets] = _parse_targets(dialect, targets)
    return out


def _known(dialect: str, key: str, what: str) -> None:
    known = list(RULES[dialect].defaults)
    if key not in known:
        hint = difflib.get_close_matches(key, known, n=1)
        more = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"{what} {key!r} is not a setting of the {dialect} emulator{more}; "
                         f"its settings: {', '.join(known) or 'none'}")


def _checked(dialect: str, key: str, value: Any) -> Any:
    r = RULES[dialect]
    if key == r.targets:
        if r.columns:
            ok = isinstance(value, dict) and value and all(
                isinstance(cols, list) and cols and all(isinstance(c, str) for c in cols) for cols in value.values())
            if not ok:
                raise ValueError(f"{key}: expected a mapping of names to lists of columns, such as "
                                 f"{{clicks: [id, user, ts]}}, got {value!r}")
            return {str(k): list(v) for k, v in value.items()}
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{key}: expected a list of names, such as [events], got {value!r}")
        return list(value)
    if value is not None and not isinstance(value, (str, int)):
        raise ValueError(f"{key}: expected a string, got {value!r}")
    return None if value is None else str(value)


def _parse_targets(dialect: str, specs: list[str]) -> Any:
    r = RULES[dialect]
    if not r.columns:
        bad = [s for s in specs if "=" in s or not s]
        if bad:
            raise ValueError(f"--target {bad[0]!r}: give a name; {dialect} {r.targets} have no declared columns")
        return list(specs)
    out = {}
    for spec in specs:
        name, sep, cols = spec.partition("=")
        columns = [c for c in cols.split(",") if c]
        if not sep or not name or not columns:
            raise ValueError(f"--target {spec!r}: expected NAME=COLUMN,COLUMN,... (the {dialect} emulator checks "
                             "columns)")
        out[name] = columns
    return out


def build(dialect: str, settings: dict[str, Any]) -> Emulator:
    """An emulator of ``dialect`` with these settings (from ``merge``)."""
    cls = EMULATORS[dialect]
    s = settings
    if dialect == "timeplus":
        return cls(streams=s["streams"], api_key=s["api_key"], user=s["user"], password=s["password"])
    if dialect == "obsrv":
        from bridge.dev.emulators.obsrv import Dataset

        return cls(datasets=[Dataset(d, alias=f"{d}-alias") for d in s["datasets"]], token=s["token"])
    if dialect == "feldera":
        from bridge.dev.emulators.feldera import Pipeline

        return cls(pipelines={s["pipeline"]: Pipeline(s["tables"])}, api_key=s["api_key"])
    if dialect == "axiom":
        return cls(datasets=tuple(s["datasets"]), tokens=(s["token"],), org_ids=(s["org_id"],))
    return cls()
