"""The ``ingest-bridge`` command: serve, check, send, explain, schema, demo, emulate, descriptor-set."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from typing import Any

from bridge import __version__
from bridge.cli.serve import cmd_serve, config_error, listen_error, load
from bridge.model.errors import ConfigError, ListenError


def cmd_check(args: argparse.Namespace) -> int:
    from bridge.config import describe

    try:
        config = load(args.config)
    except ConfigError as e:
        return config_error(e)
    print(describe(config))
    print(f"configuration OK: {len(config.routes)} route(s)")
    return 0


def cmd_descriptor_set(args: argparse.Namespace) -> int:
    from bridge.transcode import descset

    try:
        messages = descset.make(args.proto, args.output, args.include)
    except (ValueError, OSError) as e:
        print(f"ingest-bridge descriptor-set: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: messages {', '.join(messages) or 'none'}; name it in a route's "
          "options.descriptor_set")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.dev import demo

    return demo.main(args.dialect, args.rows, args.batch_rows)


def cmd_send(args: argparse.Namespace) -> int:
    from bridge.client import Connection, Reconnect, csvrows, sendfile

    # The token comes from the environment, not a flag: flags show in `ps`.
    token = os.environ.get(args.token_env) or None
    if bool(args.tls_cert) != bool(args.tls_key):
        print("ingest-bridge send: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        columns = csvrows.parse_columns(args.column)
    except ValueError as e:
        print(f"ingest-bridge send: {e}", file=sys.stderr)
        return 2
    conn = Connection(token, args.tls_ca, args.tls_cert, args.tls_key)
    reconnect = Reconnect(max_backoff=args.max_backoff, give_up_after=args.give_up_after)
    return sendfile.main(args.target, args.route, args.file, args.format, args.batch_rows, args.window, conn,
                         reconnect, args.csv_types, columns, args.token_env)


def cmd_inspect(args: argparse.Namespace) -> int:
    """explain and schema: ``bridge.inspect`` holds them; only a bad config is answered here."""
    try:
        from bridge import inspect

        return inspect.run(args)
    except ConfigError as e:
        return config_error(e)


def cmd_emulate(args: argparse.Namespace) -> int:
    import yaml

    from bridge.dev.emulators import rules

    args.port_given = args.port is not None
    if args.port is None:
        args.port = 8080
    flags = {"api_key": args.api_key, "user": args.user, "password": args.password, "token": args.token,
             "org_id": args.org_id, "pipeline": args.pipeline}
    try:
        doc = None
        if args.rules:
            with open(args.rules) as f:
                doc = yaml.safe_load(f)
        settings = rules.merge(args.dialect, doc, flags, args.target)
    except (OSError, yaml.YAMLError, ValueError) as e:
        print(f"ingest-bridge emulate: {e}", file=sys.stderr)
        return 2

    async def run() -> None:
        emulator = rules.build(args.dialect, settings)
        emulator.keep(args.keep)
        port = await emulator.start(args.host, args.port)
        print(f"{args.dialect} emulator listening on http://{args.host}:{port}"
              + (f" ({rules.settings_text(settings)})" if settings else ""), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await emulator.stop()
        print(f"accepted {total(emulator.rows)} rows in {total(emulator.requests)} requests", flush=True)

    from bridge.dev.emulators.base import total

    try:
        asyncio.run(run())
    except ListenError as e:
        return listen_error(e, {"emulator": "--port" if args.port_given else "the default --port 8080"})
    return 0


class _Version(argparse.Action):
    """Two lines: argparse's own version action would join them into one."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from bridge.transcode import active

        print(f"ingest-bridge {__version__}\ntranscoder: {active()}")
        parser.exit()


def _emulate_epilog() -> str:
    from bridge.dev.emulators.rules import rules_text

    return "what each emulator accepts:\n" + "\n".join(
        textwrap.fill(f"{d}: {rules_text(d)}", width=100, initial_indent="  ", subsequent_indent="    ")
        for d in DIALECT_CHOICES)


# The emulators' names, spelled out so that --help needs no import of them.
DIALECT_CHOICES = ("http", "timeplus", "obsrv", "feldera", "axiom", "faulty")
# None: the command's own default (the demo prints for a person, so its logs are quiet text).
LOG_DEFAULTS = {"log_level": None, "log_format": None}
COMMAND_LOG_DEFAULTS = {"demo": ("warning", "text")}


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return n


def _log_flags(p: argparse.ArgumentParser, defaults: dict) -> None:
    p.add_argument("--log-level", default=defaults["log_level"], choices=["debug", "info", "warning", "error"],
                   help="default: info (demo: warning)")
    p.add_argument("--log-format", default=defaults["log_format"], choices=["json", "text"],
                   help="log lines as JSON (default; demo: text) or text")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ingest-bridge", description="Stream Protobuf rows over gRPC into REST ingest APIs."
    )
    p.add_argument("--version", action=_Version, nargs=0, help="print the version and the transcoder, then exit")
    _log_flags(p, LOG_DEFAULTS)
    # The same flags after the subcommand; SUPPRESS keeps one given before it when they are not repeated.
    logopts = argparse.ArgumentParser(add_help=False)
    _log_flags(logopts, {"log_level": argparse.SUPPRESS, "log_format": argparse.SUPPRESS})
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", parents=[logopts], help="run the bridge")
    s.add_argument("--config", required=True, help="YAML configuration file")
    s.add_argument("--listen", help="gRPC HOST:PORT (overrides the config's listen)")
    s.add_argument("--workers", type=_positive, default=1, help="processes sharing the port (SO_REUSEPORT)")
    s.add_argument("--watch", action="store_true",
                   help="reload the config when its file changes (SIGHUP always reloads it; one process only)")
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("check", parents=[logopts], help="validate a configuration and print the resolved routes")
    c.add_argument("--config", required=True)
    c.set_defaults(func=cmd_check)

    d = sub.add_parser("demo", parents=[logopts], help="run the bridge against a local target and stream sample rows")
    d.add_argument("--dialect", default="http", choices=DIALECT_CHOICES,
                   help="the local target to run: %(choices)s (default: http)")
    d.add_argument("--rows", type=_positive, default=100_000, help="rows to send over all payload shapes "
                   "(default: 100000)")
    d.add_argument("--batch-rows", type=_positive, default=1000, help="rows per gRPC message (default: 1000)")
    d.set_defaults(func=cmd_demo)

    f = sub.add_parser("send", parents=[logopts],
                       help="stream an NDJSON or CSV file (or - for stdin) to a running bridge")
    f.add_argument("file", help="the file, or - for standard input")
    f.add_argument("--target", default="127.0.0.1:50051",
                   help="the bridge's gRPC HOST:PORT (default: 127.0.0.1:50051); several (HOST1:PORT,HOST2:PORT) "
                        "or dns:///NAME:PORT spread streams round robin")
    f.add_argument("--max-backoff", type=float, default=5.0, metavar="SECONDS",
                   help="longest wait before opening a dropped stream again (default 5)")
    f.add_argument("--give-up-after", type=float, default=120.0, metavar="SECONDS",
                   help="exit 2 when no batch was acknowledged for this long (default 120)")
    f.add_argument("--route", required=True)
    f.add_argument("--format", choices=["ndjson", "csv", "dead-letter"],
                   help="default: from the file name (.csv; dead-letter*.ndjson) or its content (a spool's "
                        "dead-letter records), else ndjson")
    f.add_argument("--csv-types", choices=["infer", "string"], default="infer",
                   help="CSV cells: infer (default) types a cell only when its text is a JSON number, true or "
                        "false, and sends it as written (01234, 1_000 and ' 42 ' stay strings; empty is null); "
                        "string: every cell is a string")
    f.add_argument("--column", action="append", default=[], metavar="NAME=TYPE",
                   help="one CSV column's type: auto, string, int, double, bool, json (repeatable); a cell that "
                        "is not of it stops the send with its line")
    f.add_argument("--batch-rows", type=_positive, default=1000, help="rows per message (default: 1000)")
    f.add_argument("--window", type=_positive, default=32, help="batches waiting for their acks at most (default: 32)")
    f.add_argument("--token-env", default="INGEST_BRIDGE_TOKEN", metavar="VAR",
                   help="environment variable holding the bearer token (default: INGEST_BRIDGE_TOKEN)")
    f.add_argument("--tls-ca", help="TLS: the CA certificate that signed the bridge's certificate (PEM)")
    f.add_argument("--tls-cert", help="mTLS: this client's certificate (PEM)")
    f.add_argument("--tls-key", help="mTLS: this client's private key (PEM)")
    f.set_defaults(func=cmd_send)

    from bridge import inspect

    for command in inspect.add_parsers(sub):
        _log_flags(command, {"log_level": argparse.SUPPRESS, "log_format": argparse.SUPPRESS})
        command.set_defaults(func=cmd_inspect)

    ds = sub.add_parser("descriptor-set", parents=[logopts],
                        help="compile a .proto file into the descriptor set a route's descriptor_set names")
    ds.add_argument("proto", help="the .proto file defining your message")
    ds.add_argument("-o", "--output", required=True, help="the descriptor set file to write")
    ds.add_argument("-I", "--include", action="append", default=[], metavar="DIR",
                    help="another directory its imports are found in (repeatable; the file's own directory and "
                         "the google/protobuf types are always searched)")
    ds.set_defaults(func=cmd_descriptor_set)

    e = sub.add_parser("emulate", parents=[logopts], help="serve a local emulator of a target",
                       description="Serve a local emulator of a target: it enforces the target's documented rules, "
                                   "answers its documented errors and keeps what it accepted.",
                       epilog=_emulate_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("dialect", choices=DIALECT_CHOICES, help="the target to emulate: %(choices)s")
    e.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    e.add_argument("--port", type=int, default=None, help="default: 8080 (0: any free port)")
    e.add_argument("--keep", type=_positive, default=100_000, metavar="N",
                   help="rows kept in memory, the last N (default: 100000), and the last 10 requests; every row "
                        "and request is counted")
    e.add_argument("--rules", metavar="FILE", help="a YAML file of the settings below (flags win over it)")
    e.add_argument("--api-key", help="timeplus, feldera: the API key it takes")
    e.add_argument("--user", help="timeplus: the Basic user")
    e.add_argument("--password", help="timeplus: the Basic password")
    e.add_argument("--token", help="obsrv, axiom: the bearer token it takes")
    e.add_argument("--org-id", help="axiom: the organisation id a personal token needs")
    e.add_argument("--pipeline", help="feldera: the pipeline's name")
    e.add_argument("--target", action="append", default=[], metavar="NAME[=COL,...]",
                   help="a stream (timeplus: NAME=COLUMNS), table (feldera: NAME=COLUMNS) or dataset (obsrv, axiom: "
                        "NAME) that exists; repeatable; replaces the default ones")
    e.set_defaults(func=cmd_emulate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from bridge.ops import logs

    level, fmt = COMMAND_LOG_DEFAULTS.get(args.command, ("info", "json"))
    args.log_level = args.log_level or level
    args.log_format = args.log_format or fmt

    args.redact = logs.setup(args.log_level, args.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        return args.func(args)
    return 130
