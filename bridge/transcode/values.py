"""Value forms every decoder shares."""

from __future__ import annotations

import base64


def b64(data: bytes) -> str:
    """Bytes as the targets' JSON takes them: standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")
