"""Local stand-ins for the targets: aiohttp apps that enforce the target's rules and keep what they accepted.

Each emulator class names its dialect and can describe a demo route
pointing at itself (``demo_route``), which ``ingest-bridge demo`` uses.
"""

from __future__ import annotations

from bridge.emulators.base import Emulator
from bridge.emulators.http_sink import HttpSink

EMULATORS: dict[str, type[Emulator]] = {
    HttpSink.name: HttpSink,
}
