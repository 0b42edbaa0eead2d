"""Read-only SQL on the catalog: `dawnchorus query`, the demo summary, reports and tests.

`dawnchorus query NAME --param k=v` runs a named analysis (`sql/analyses/NAME.sql`),
`dawnchorus query --list` describes them, `dawnchorus query "SQL"` runs one SELECT (the analyses
with defaults are views there: `from species_by_night`). Output as an aligned table, CSV or
Parquet. Everything goes through `connectors.catalog.CatalogReader`, locked down: one SELECT at a
time, nothing outside the catalog.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from connectors.analyses import all_analyses
from connectors.catalog import CatalogReader
from connectors.analyses import NOTES
from flows.outputs.exports.cells import spreadsheet_text


def run_query(results: str, sql: str, threshold: float | None = None,
              params: dict[str, Any] | None = None, catalog: str | None = None,
              location_threshold: float | None = None) -> pa.Table:
    """Run one read-only SELECT. `threshold` overrides the detections view's threshold,
    `location_threshold` the location filter's (0 shows every species); `params` choose the
    parameters of the analysis views (`from species_by_night`); `catalog` names a catalog other
    than `<results>/catalog.sqlite` (a SQLite file or postgresql://...)."""
    with CatalogReader(results, catalog=catalog, threshold=threshold,
                       location_threshold=location_threshold) as reader:
        if params:
            reader.set_view_parameters(params)
        reader.state_view_default()
        _say_if_mixed(reader, sql)
        return reader.query(sql)


#: The catalog's tables and views that hold every fingerprint's rows side by side.
_MIXED = ("detections", "predictions", "windows", "embeddings", "embedding_vectors")


def _say_if_mixed(reader: CatalogReader, sql: str) -> None:
    """Free SQL over a table that holds several fingerprints, and no word of one: one note."""

    if len(reader.fingerprints) < 2 or "config_fingerprint" in sql:
        return
    named = [t for t in _MIXED if re.search(rf"\b{t}\b", sql, re.IGNORECASE)]
    if named:

        NOTES.warning("%s hold the rows of all %d fingerprints (%s) side by side; add "
                      "`where config_fingerprint = '...'` to read one",
                      ", ".join(named), len(reader.fingerprints), ", ".join(reader.fingerprints))


def run_analysis(results: str, name: str, params: dict[str, Any] | None = None,
                 catalog: str | None = None, location_threshold: float | None = None) -> pa.Table:
    """Run the named analysis with its parameters (text values are parsed to their types);
    `location_threshold` as in `run_query`."""
    with CatalogReader(results, catalog=catalog, location_threshold=location_threshold) as reader:
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
    """`table` with every text cell neutralised for spreadsheets (`flows.outputs.exports.cells.spreadsheet_text`:
    a leading ' before =, +, -, @, tab, CR); numbers, dates and other types as they are."""

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pa.array([None if v is None else spreadsheet_text(v) for v in column.to_pylist()],
                              column.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)
