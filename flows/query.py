"""Read-only SQL on the catalog: `dawnchorus query`, the demo summary, and tests."""

from __future__ import annotations

import pyarrow as pa

from connectors.catalog import Catalog, sql_text

#: Named analyses in sql/analyses/ that `from <name>` may refer to.
ANALYSES = ("species_by_hour", "top1_per_window")


def run_query(results: str, sql: str, threshold: float | None = None) -> pa.Table:
    """Run `sql` read-only. `threshold` overrides the detections view's threshold for this query.

    Named analyses (`from species_by_hour`) are available as temporary views.
    """
    with Catalog(results, read_only=True) as catalog:
        con = catalog.con
        if threshold is not None:
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold {threshold}: expected a probability in [0, 1]")
            # A temporary `settings` shadows the catalog's for this connection only; the
            # detections view reads its threshold from there.
            con.execute(
                "create temp table settings as "
                "select * from lake.settings where key <> 'detection_threshold'"
            )
            con.execute("insert into temp.settings values ('detection_threshold', ?)",
                        [str(threshold)])
        for name in ANALYSES:
            con.execute(f"create temp view {name} as {sql_text('analyses/' + name)}")
        return con.execute(sql).to_arrow_table()


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
