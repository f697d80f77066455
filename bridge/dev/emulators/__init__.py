"""Local stand-ins for the targets: aiohttp apps that enforce the target's rules and keep what they accepted.

Each emulator class can describe a demo route pointing at itself
(``demo_route``), which ``ingest-bridge demo --dialect NAME`` uses.
"""

from __future__ import annotations

from bridge._registry import LazyRegistry

EMULATORS: LazyRegistry = LazyRegistry({
    "http": "bridge.dev.emulators.http_sink:HttpSink",
    "timeplus": "bridge.dev.emulators.timeplus:TimeplusEmulator",
    "obsrv": "bridge.dev.emulators.obsrv:ObsrvEmulator",
    "feldera": "bridge.dev.emulators.feldera:FelderaEmulator",
    "axiom": "bridge.dev.emulators.axiom:AxiomEmulator",
    "faulty": "bridge.dev.emulators.faulty:FaultyTarget",
})
