"""A catalog as an older dawnchorus left it: the migrations up to a version applied by hand, that
version recorded, and rows of today's tables holding only the columns that version had (no views:
opening it with today's code upgrades it and writes them). For migration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from connectors.catalog import _attach, connect_duckdb
from connectors.catalog.schema import MIGRATIONS
from connectors.catalog.sql_files import sql_statements
from connectors.location import ResultsLocation
from connectors.tables import Table


def build_catalog_at_version(root: Path, version: int,
                             rows: Iterable[tuple[Table[Any], Sequence[Any]]]) -> None:
    """Schema `version` at `root`, holding `rows` ((table, typed rows) pairs) cut to its columns."""
    location = ResultsLocation.resolve(root)
    (root / "data").mkdir(parents=True)
    con = connect_duckdb(location)
    _attach(con, location, read_only=False)
    for name in MIGRATIONS[:version]:
        for statement in sql_statements(name):
            con.execute(statement)
    con.execute("insert into settings (key, value) values ('schema_version', ?)", [str(version)])
    for table, items in rows:
        had = [d[0] for d in con.execute(f"select * from {table.name} limit 0").description]
        arrow = table.to_arrow(list(items))
        con.register("_rows", arrow.select([c for c in arrow.column_names if c in had]))
        con.execute(f"insert into {table.name} by name select * from _rows")
        con.unregister("_rows")
    con.close()
