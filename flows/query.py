"""Read-only SQL on the catalog: `dawnchorus query`, the demo summary, reports and tests.

`dawnchorus query NAME --param k=v` runs a named analysis (`sql/analyses/NAME.sql`),
`dawnchorus query --list` describes them, `dawnchorus query "SQL"` runs one SELECT (the analyses
with defaults are views there: `from species_by_night`). Output as an aligned table, CSV or
Parquet. Everything goes through `connectors.catalog.CatalogReader`, locked down: one SELECT at a
time, nothing outside the catalog.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.analyses import all_analyses, analysis_names
from connectors.catalog import CatalogReader
from connectors.errors import ConfigError


def run_query(results: str, sql: str, threshold: float | None = None,
              params: dict[str, Any] | None = None, catalog: str | None = None) -> pa.Table:
    """Run one read-only SELECT. `threshold` overrides the detections view's threshold; `params`
    choose the parameters of the analysis views (`from species_by_night`); `catalog` names a
    catalog other than `<results>/catalog.sqlite` (a SQLite file or postgresql://...)."""
    with CatalogReader(results, catalog=catalog, threshold=threshold) as reader:
        if params:
            reader.set_view_parameters(params)
        return reader.query(sql)


def run_analysis(results: str, name: str, params: dict[str, Any] | None = None,
                 catalog: str | None = None) -> pa.Table:
    """Run the named analysis with its parameters (text values are parsed to their types)."""
    with CatalogReader(results, catalog=catalog) as reader:
        return reader.analysis(name, params or {})


def describe_analyses() -> str:
    """`dawnchorus query --list`: each analysis, its grain and its parameters."""
    lines = []
    for a in all_analyses():
        lines.append(f"{a.name}: {a.purpose}")
        lines.append(f"    grain: {a.grain}")
        for p in a.parameters:
            lines.append(f"    --param {p.describe()}")
    return "\n".join(lines)


def format_table(table: pa.Table, max_rows: int = 200) -> str:
    """A plain aligned text table for the terminal."""
    names = table.column_names
    rows = [["" if v is None else _cell(v) for v in r.values()]
            for r in table.slice(0, max_rows).to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    line = "  ".join(n.ljust(w) for n, w in zip(names, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    if table.num_rows > max_rows:
        out.append(f"... {table.num_rows - max_rows} more rows")
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def spreadsheet_safe(table: pa.Table) -> pa.Table:
    """`table` with every text cell neutralised for spreadsheets (`flows.exports.spreadsheet_text`:
    a leading ' before =, +, -, @, tab, CR); numbers, dates and other types as they are."""
    from flows.exports import spreadsheet_text

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pa.array([None if v is None else spreadsheet_text(v) for v in column.to_pylist()],
                              column.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


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
    params = dict(args.param)
    if args.threshold is not None:
        params["threshold"] = args.threshold
    if args.what in analysis_names():
        table = run_analysis(args.results, args.what, params, catalog=args.catalog)
    else:
        threshold = params.pop("threshold", None)
        table = run_query(args.results, args.what,
                          threshold=float(threshold) if threshold is not None else None,
                          params=params, catalog=args.catalog)
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
    query.add_argument("--list", action="store_true", help="describe the analyses and exit")
    query.add_argument("--format", choices=["table", "csv", "parquet"], default="table")
    query.add_argument("--out", help="write to this file instead of the terminal")
    query.add_argument("--threshold", type=float,
                       help="detection threshold for the detections view (default: the catalog's)")
    query.set_defaults(func=cmd_query)
