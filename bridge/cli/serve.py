"""``ingest-bridge serve``: one bridge, or several worker processes sharing the port; signals and reload."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from bridge import __version__
from bridge.model.errors import ConfigError, ListenError, SpoolError


def config_error(e: ConfigError) -> int:
    print("ingest-bridge: the configuration is invalid:", file=sys.stderr)
    for p in e.problems:
        print(f"  {p}", file=sys.stderr)
    return 2


def load(path: str):
    """The config, checked as far as serving would check it (dialects, descriptor sets): ConfigError if not."""
    from bridge.config import load_config
    from bridge.ingest.server import build_routes

    config = load_config(path)
    build_routes(config, transport=None)  # type: ignore[arg-type]
    return config


def settle_heap() -> None:
    """Once started: the objects made so far (modules, protobuf descriptors, routes) live as long as the process,
    so they leave the cyclic collector's view (``gc.freeze``), and young objects are collected less often.

    Measured on the native path: every collection walked the ~50k startup objects or the young lists of a
    thousand rows each, 3-4 % of the bridge's CPU. Cycles are still collected, every 10,000 allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def _serve(config, listen: str | None, reuse_port: bool = False, path: str | None = None,
                 watch: bool = False) -> None:
    from bridge.ingest import reload
    from bridge.ingest.server import Bridge

    bridge = Bridge(config, listen=listen, reuse_port=reuse_port)
    await bridge.start()
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: set[asyncio.Task] = set()
    if path is not None:
        # SIGHUP (and --watch, on a change of the file) reload it; a bad file leaves the running config.
        def hup() -> None:
            task = loop.create_task(bridge.reload(path))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, hup)
        if watch:
            tasks.add(loop.create_task(reload.watch(bridge, path)))
    print(f"ingest-bridge {__version__} serving gRPC on {bridge.listen} (port {bridge.port})"
          + (f", ops HTTP on port {bridge.http_port}" if bridge.http_port else ""), flush=True)
    await stop.wait()
    logging.getLogger("bridge").info("shutting down: delivering what is buffered")
    for task in tasks:
        task.cancel()
    await bridge.stop()


def _settings(args: argparse.Namespace) -> dict[str, str]:
    """Where each port came from, to name it when it cannot be bound."""
    return {"grpc": "--listen" if args.listen else f"'listen' in {args.config}", "http": f"'http' in {args.config}"}


def listen_error(e: ListenError, settings: dict[str, str]) -> int:
    """One line: the address, its port and the setting it came from."""
    setting = settings.get(e.kind, e.kind)
    port = e.address.rpartition(":")[2]
    print(f"ingest-bridge: cannot listen on {e.address} (port {port}, from {setting}): {e.reason}", file=sys.stderr)
    return 2


def cmd_serve(args: argparse.Namespace) -> int:
    from bridge.config import parse_listen
    from bridge.ops.redact import config_secrets
    from bridge.route import offload

    try:
        offload.threads()  # a bad INGEST_BRIDGE_TRANSCODE_THREADS stops the start, not the first request
    except ValueError as e:
        print(f"ingest-bridge: {e}", file=sys.stderr)
        return 2
    try:
        if args.listen is not None:
            args.listen = parse_listen(args.listen, "--listen")
        config = load(args.config)
    except ConfigError as e:
        return config_error(e)
    args.redact.secrets = config_secrets(config)
    if args.workers == 1:
        try:
            _run(_serve(config, args.listen, path=args.config, watch=args.watch))
        except SpoolError as e:
            print(f"ingest-bridge: {e}", file=sys.stderr)
            return 2
        except ListenError as e:
            return listen_error(e, _settings(args))
        return 0
    spooled = [name for name, r in config.routes.items() if r.spool is not None]
    if spooled:
        # One log has one writer: worker processes would each need their own.
        print(f"ingest-bridge: --workers takes routes without a spool; spooled: {', '.join(spooled)}",
              file=sys.stderr)
        return 2
    listen = args.listen or config.listen
    if listen.endswith(":0"):
        print("ingest-bridge: --workers needs a fixed port to share", file=sys.stderr)
        return 2
    from bridge.ingest.server import probe_bind

    try:
        probe_bind(listen, reuse_port=True)  # once here, not once per worker
    except ListenError as e:
        return listen_error(e, _settings(args))
    return _serve_workers(config, listen, args.workers, args.log_level, args.log_format, _settings(args))


def _run(coro) -> None:
    """Run on uvloop where it is installed (a few per cent faster), else asyncio's loop."""
    from bridge import _malloc

    _malloc.tune()
    try:
        import uvloop
    except ImportError:
        uvloop = None  # run outside the except block: an error in the run must not chain to this one
    if uvloop is None:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def _worker(config, listen: str, level: str, fmt: str, settings: dict[str, str]) -> None:
    from bridge.ops import logs
    from bridge.ops.redact import config_secrets

    logs.setup(level, fmt).secrets = config_secrets(config)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards SIGTERM
    try:
        _run(_serve(config, listen, reuse_port=True))
    except ListenError as e:
        sys.exit(listen_error(e, settings))


def _serve_workers(config, listen: str, n: int, level: str, fmt: str, settings: dict[str, str]) -> int:
    """N processes share the port (SO_REUSEPORT), one event loop each; the kernel spreads connections."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(config, listen, level, fmt, settings), name=f"ingest-bridge-{i}")
             for i in range(n)]
    for p in procs:
        p.start()

    def forward(signum, _frame) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
    return max((p.exitcode or 0) for p in procs)


