"""Logging: one JSON object per line (or plain text), with every configured secret redacted."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

import orjson

from bridge.ops.redact import Redactor

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class RedactSecrets(logging.Filter):
    """Replaces any configured secret in a log line by ***: a last line of defence, logs never add them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    @property
    def secrets(self) -> list[str]:
        return self.redact.secrets

    @secrets.setter
    def secrets(self, values: Iterable[str]) -> None:
        self.redact = Redactor(values)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redact.secrets:
            text = record.getMessage()
            clean = self.redact(text)
            if clean is not text:
                record.msg, record.args = clean, None
        return True


def setup(level: str = "info", fmt: str = "json") -> RedactSecrets:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redact = RedactSecrets()
    handler.addFilter(redact)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return redact
