"""What a route does, shown without running it: ``explain`` (its HTTP requests) and ``ddl`` (its target's schema).

The command-line parsers live here and import nothing heavy: the modules load when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

SAMPLE_SHAPES = ("rows", "columns", "json")


def run(args: argparse.Namespace) -> int:
    """Run the inspect command ``args.inspect`` names (``explain`` or ``ddl``): its module's ``main``."""
    return importlib.import_module(f"bridge.inspect.{args.inspect}").main(args)


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    p = sub.add_parser("explain", help="print the HTTP requests a route would send for some rows (sends nothing)")
    p.add_argument("file", nargs="?", help="NDJSON or CSV rows, or - for standard input (default: sample rows)")
    p.add_argument("--config", required=True)
    p.add_argument("--route", required=True)
    p.add_argument("--format", choices=["ndjson", "csv", "dead-letter"], help="default: from the file name")
    p.add_argument("--batch-rows", type=int, default=1000, help="rows per request, as `send` cuts them")
    p.add_argument("--rows", type=int, default=3, help="sample rows when no file is given")
    p.add_argument("--shape", choices=SAMPLE_SHAPES, default="rows", help="payload shape of the sample rows")
    p.add_argument("--lines", type=int, default=10, help="body lines shown per request")
    p.add_argument("--full", action="store_true", help="show every body line whole")
    p.add_argument("--json", action="store_true", help="one JSON document, bodies whole")
    p.set_defaults(inspect="explain")

    s = sub.add_parser("schema", help="print the DDL for a route's target from its columns or descriptor set")
    s.add_argument("--config", required=True)
    s.add_argument("--route", required=True)
    s.add_argument("--message-type", help="the descriptor set's message type (default: its only one)")
    s.add_argument("--order-by", help="ClickHouse: sorting key columns, comma-separated (default: the first "
                                      "timestamp column, else the first column that is not nullable)")
    s.add_argument("--clickhouse-version", default="latest",
                   help="ClickHouse: the server's version, for types older ones lack (Bool, DateTime64)")
    s.set_defaults(inspect="ddl")
    return [p, s]
