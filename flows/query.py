"""Read-only SQL on the catalog: `dawnchorus query`, the demo summary, and tests.

Everything goes through `connectors.catalog.CatalogReader`, locked down: one SELECT at a time,
nothing outside the catalog.
"""

from __future__ import annotations

import pyarrow as pa

from connectors.catalog import CatalogReader


def run_query(results: str, sql: str, threshold: float | None = None) -> pa.Table:
    """Run one read-only SELECT. `threshold` overrides the detections view's threshold.

    Named analyses without parameters (`from species_by_hour`) are available as views.
    """
    with CatalogReader(results, threshold=threshold) as catalog:
        return catalog.query(sql)


def format_table(table: pa.Table, max_rows: int = 200) -> str:
    """A plain aligned text table for the terminal."""
    names = table.column_names
    rows = [["" if v is None else str(v) for v in r.values()]
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
