"""Local stand-ins for the targets: aiohttp apps that enforce the target's rules and keep what they accepted.

Each emulator class can describe a demo route pointing at itself
(``demo_route``), which ``ingest-bridge demo --dialect NAME`` uses.
"""

from __future__ import annotations

from bridge._registry import LazyRegistry

EMULATORS: LazyRegistry = LazyRegistry({
    "http": "bridge.emulators.http_sink:HttpSink",
    "timeplus": "bridge.emulators.timeplus:TimeplusEmulator",
    "obsrv": "bridge.emulators.obsrv:ObsrvEmulator",
    "feldera": "bridge.emulators.feldera:FelderaEmulator",
    "axiom": "bridge.emulators.axiom:AxiomEmulator",
    "faulty": "bridge.emulators.faulty:FaultyTarget",
})
