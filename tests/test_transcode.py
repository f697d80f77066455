"""Which transcoder runs: --version says it, INGEST_BRIDGE_PURE=1 forces Python, routes choose per row form."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from bridge import transcode
from bridge.config import parse_config
from bridge.dev import sample
from bridge.model.errors import BatchRejected
from bridge.route.pipeline import RoutePipeline
from bridge.send.transport import Transport
from bridge.transcode.native import _native


def version(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", "bridge", "--version"], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return out.stdout


def test_version_names_the_transcoder() -> None:
    built = _native is not None
    assert version({"INGEST_BRIDGE_PURE": "0"}).splitlines()[1] == f"transcoder: {'native' if built else 'python'}"
    assert version({"INGEST_BRIDGE_PURE": "1"}).splitlines()[1] == "transcoder: python"


def pipelines() -> dict[str, RoutePipeline]:
    doc = {"routes": {
        "ndjson": {"dialect": "http", "url": "http://127.0.0.1:9/a"},
        "array": {"dialect": "http", "url": "http://127.0.0.1:9/a", "options": {"format": "json",
                                                                               "timestamps": "epoch_ms"}},
        "csv": {"dialect": "http", "url": "http://127.0.0.1:9/a", "options": {"format": "csv"}},
        "declared": {"dialect": "http", "url": "http://127.0.0.1:9/a", "columns": {"id": "int"}},
        "timeplus": {"dialect": "timeplus", "url": "http://127.0.0.1:9", "target": "s",
                     "auth": {"api_key": "k" * 60}},
        "timeplus_ndjson": {"dialect": "timeplus", "url": "http://127.0.0.1:9", "target": "s",
                            "auth": {"api_key": "k" * 60}, "options": {"format": "ndjson", "timestamps": "epoch_ms"}},
        "axiom_csv": {"dialect": "axiom", "url": "http://127.0.0.1:9", "target": "d", "auth": {"token": "xaat-1"},
                      "options": {"format": "csv"}},
    }}
    cfg = parse_config(yaml.safe_dump(doc), env={})
    transport = Transport()
    return {name: RoutePipeline(r, transport) for name, r in cfg.routes.items()}


@pytest.mark.skipif(_native is None, reason="bridge._native is not built (no cargo at install time)")
def test_routes_choose_native_where_it_gives_the_same_requests(monkeypatch) -> None:
    """Object bodies take JSON rows; table bodies (CSV, Timeplus compact) take rows pre-encoded in their form."""
    monkeypatch.delenv(transcode.PURE_ENV, raising=False)
    got = {name: p.transcoder.name == "native" for name, p in pipelines().items()}
    assert got == {"ndjson": True, "array": True, "csv": True, "declared": True, "timeplus": True,
                   "timeplus_ndjson": True, "axiom_csv": True}
    monkeypatch.setenv(transcode.PURE_ENV, "1")
    assert not any(p.transcoder.name == "native" for p in pipelines().values())


@pytest.mark.skipif(_native is None, reason="bridge._native is not built (no cargo at install time)")
def test_prepare_gives_the_same_body_on_both_paths(monkeypatch) -> None:
    """Through RoutePipeline.prepare and the route's encoder, as the service calls them (with the wire bytes)."""
    monkeypatch.delenv(transcode.PURE_ENV, raising=False)
    fast = pipelines()
    monkeypatch.setenv(transcode.PURE_ENV, "1")
    pure = pipelines()
    for request in (sample.rows_request("ndjson", 1, range(50)), sample.columns_request("ndjson", 1, range(50))):
        raw = request.SerializeToString()
        for name in ("ndjson", "array"):
            request.route = name
            rows, errors = fast[name].prepare(request, len(raw), raw)
            assert rows.columns is None  # decoded natively: JSON rows
            want, want_errors = pure[name].prepare(request, len(raw))
            assert want.columns is not None and errors == want_errors
            assert fast[name].dialect.build(rows).body == pure[name].dialect.build(want).body


@pytest.mark.skipif(_native is None, reason="bridge._native is not built (no cargo at install time)")
def test_message_batches_give_the_same_body_on_both_paths(monkeypatch, tmp_path) -> None:
    """A MessageBatch route on the native transcoder: its rows are JSON rows, its bodies the Python path's;
    a batch Python rejects whole (unknown type) is rejected the same way."""
    desc = sample.write_descriptor_set(tmp_path / "click.desc")
    doc = {"routes": {
        "ndjson": {"dialect": "http", "url": "http://127.0.0.1:9/a", "options": {"descriptor_set": str(desc)}},
        "array": {"dialect": "http", "url": "http://127.0.0.1:9/a",
                  "options": {"format": "json", "timestamps": "epoch_s", "descriptor_set": str(desc)}},
        # Declared columns, and a table body (CSV): the native transcoder leaves MessageBatches to the Python one.
        "declared": {"dialect": "http", "url": "http://127.0.0.1:9/a", "columns": {"id": "int", "user": "string"},
                     "unknown_columns": "drop", "options": {"descriptor_set": str(desc)}},
        "csv": {"dialect": "http", "url": "http://127.0.0.1:9/a",
                "options": {"format": "csv", "descriptor_set": str(desc)}},
    }}

    def build() -> dict[str, RoutePipeline]:
        cfg = parse_config(yaml.safe_dump(doc), env={})
        return {name: RoutePipeline(r, Transport()) for name, r in cfg.routes.items()}

    monkeypatch.delenv(transcode.PURE_ENV, raising=False)
    fast = build()
    monkeypatch.setenv(transcode.PURE_ENV, "1")
    pure = build()
    request = sample.messages_request("ndjson", 1, range(50), sample.click_class())
    for name in ("ndjson", "array"):
        request.route = name
        raw = request.SerializeToString()
        for _ in range(2):  # the first batch compiles the type's plan; the second uses it
            rows, errors = fast[name].prepare(request, len(raw), raw)
            assert rows.columns is None  # decoded natively: JSON rows
            want, want_errors = pure[name].prepare(request, len(raw))
            assert errors == want_errors == []
            assert fast[name].dialect.build(rows).body == pure[name].dialect.build(want).body
    for name in ("declared", "csv"):
        request.route = name
        raw = request.SerializeToString()
        rows, errors = fast[name].prepare(request, len(raw), raw)
        want, want_errors = pure[name].prepare(request, len(raw))
        assert errors == want_errors and fast[name].dialect.build(rows).body == pure[name].dialect.build(want).body
    request.messages.type = "nope.X"
    raw = request.SerializeToString()
    with pytest.raises(BatchRejected) as native_rejects:
        fast["ndjson"].prepare(request, len(raw), raw)
    with pytest.raises(BatchRejected) as python_rejects:
        pure["ndjson"].prepare(request, len(raw), raw)
    assert native_rejects.value.reason == python_rejects.value.reason == "UNKNOWN_MESSAGE_TYPE"
