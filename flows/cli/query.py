"""`dawnchorus query`: a named analysis, or read-only SQL, on the catalog (`flows.outputs.query`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.analyses import analysis_names, check_analysis_name
from connectors.errors import ConfigError
from flows.outputs.query import describe_analyses, format_table, run_analysis, run_query, spreadsheet_safe


def _parse_param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--param {text!r}: expected NAME=VALUE")
    return key.strip(), value


def cmd_query(args: argparse.Namespace) -> int:
    if args.list:
        print(describe_analyses())
        return 0
    if not args.what:
        raise ConfigError("query: give an analysis name, SQL in quotes, or --list")
    if not args.results:
        raise ConfigError("query: --results RESULTS is required")
    check_analysis_name(args.what)  # a mistyped name is never sent as SQL
    params = dict(args.param)
    if args.fingerprint is not None:
        params["config_fingerprint"] = args.fingerprint
    if args.threshold is not None:
        params["threshold"] = args.threshold
    if args.what in analysis_names():
        table = run_analysis(args.results, args.what, params, catalog=args.catalog,
                             location_threshold=args.location_threshold)
    else:
        threshold = params.pop("threshold", None)
        table = run_query(args.results, args.what,
                          threshold=float(threshold) if threshold is not None else None,
                          params=params, catalog=args.catalog,
                          location_threshold=args.location_threshold)
    write_table(table, args.format, args.out)
    return 0


def add_query_parser(sub: Any) -> None:
    query = sub.add_parser(
        "query", help="a named analysis, or read-only SQL, on the catalog",
        description="Run a named analysis (dawnchorus query diel --param species='Turdus merula'), "
                    "list them (--list), or run one read-only SELECT (analyses with defaults are "
                    "views there: \"from species_by_night\").")
    query.add_argument("what", nargs="?", help="analysis name, or SQL in quotes")
    query.add_argument("--results", help="results root: a local folder (catalog.sqlite + data/) "
                                         "or s3://bucket/prefix")
    query.add_argument("--catalog", help="the catalog, as the run named it: a SQLite file or "
                                         "postgresql://user@host:port/db (default: "
                                         "<results>/catalog.sqlite)")
    query.add_argument("--param", action="append", type=_parse_param, default=[],
                       metavar="NAME=VALUE", help="analysis parameter (repeatable)")
    query.add_argument("--fingerprint", "--config-fingerprint", dest="fingerprint", metavar="PREFIX",
                       help="results of this fingerprint, or a unique prefix of one (default: the "
                            "only one, else the pinned one, else the newest, said in a note)")
    query.add_argument("--list", action="store_true", help="describe the analyses and exit")
    query.add_argument("--format", choices=["table", "csv", "parquet"], default="table")
    query.add_argument("--out", help="write to this file instead of the terminal")
    query.add_argument("--threshold", type=float,
                       help="detection threshold for the detections view (default: the catalog's)")
    query.add_argument("--location-threshold", type=float, metavar="P",
                       help="location-filter threshold: species whose BirdNET occurrence at the "
                            "site and week is below it are hidden (default: the catalog's; 0 "
                            "shows every species)")
    query.set_defaults(func=cmd_query)


def write_table(table: pa.Table, fmt: str, out: str | None) -> None:
    """The result as `fmt` (table, csv or parquet) to `out`, or to standard output."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if out is None:
            raise ConfigError("--format parquet needs --out FILE")
        pq.write_table(table, out)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        table = spreadsheet_safe(table)
        if out is None:
            pacsv.write_csv(table, sys.stdout.buffer)
        else:
            pacsv.write_csv(table, out)
    elif out is None:
        print(format_table(table, max_rows=table.num_rows if not sys.stdout.isatty() else 200))
    else:
        Path(out).write_text(format_table(table, max_rows=table.num_rows) + "\n", encoding="utf-8")
