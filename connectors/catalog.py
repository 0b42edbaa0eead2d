"""The results catalog: DuckLake (Parquet data files + a SQLite catalog) through DuckDB.

Why DuckLake in SQLite: a unit's rows commit in one transaction (exactly-once without a home-made
commit protocol), and readers in other processes (the `duckdb` CLI, `dawnchorus query`) work while
a run writes — a plain `.duckdb` file locks every other process out.

Layout under the results root::

    catalog.sqlite      the DuckLake catalog (metadata, snapshots)
    data/<table>/deployment_id=…/date=…/*.parquet

Every statement lives in a `.sql` file of the `dawnchorus_sql` package; Python only registers Arrow
tables and binds parameters.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from connectors.errors import ConfigError

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
DATA_DIR = "data"
LAKE = "lake"
#: Schema files, in order, run once on a new catalog.
SCHEMA_FILES = ("001_tables", "002_partitioning", "003_views", "004_settings")


def sql_text(name: str) -> str:
    """The text of `sql/<name>.sql` (e.g. "catalog/commit_unit"), shipped as package data."""
    parts = name.split("/")
    resource = importlib.resources.files("dawnchorus_sql").joinpath(*parts[:-1], parts[-1] + ".sql")
    return resource.read_text(encoding="utf-8")


def sql_statements(name: str) -> list[str]:
    """The statements of a `.sql` file, split on `;` at the end of a line, comments kept."""
    statements, current = [], []
    for line in sql_text(name).splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    rest = "\n".join(current).strip()
    if rest and not all(ln.strip().startswith("--") or not ln.strip() for ln in current):
        statements.append(rest)
    return statements


def _extension_dir() -> str:
    default = Path.home() / ".cache" / "dawnchorus" / "duckdb-extensions"
    return os.environ.get("DAWNCHORUS_DUCKDB_EXTENSIONS", str(default))


def connect_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the ducklake and sqlite extensions loaded from their wheels."""
    import duckdb_extensions  # the offline extension loader (duckdb-extension-* wheels)

    con = duckdb.connect(
        config={"extension_directory": _extension_dir(), "autoinstall_known_extensions": False}
    )
    for extension in ("ducklake", "sqlite"):
        duckdb_extensions.import_extension(extension, con=con)
    return con


class Catalog:
    """A DuckLake catalog under a local results folder, attached as `lake` and made default."""

    def __init__(self, results_root: str | os.PathLike, read_only: bool = False):
        root = str(results_root)
        if root.startswith("file://"):
            root = root[len("file://") :]
        if "://" in root:
            raise ConfigError(
                f"results root {results_root!r}: only a local folder is supported for the catalog "
                "(keep catalog.sqlite on local disk; object-storage data paths are planned)"
            )
        self.root = Path(root).resolve()
        self.catalog_path = self.root / CATALOG_FILE
        self.data_path = self.root / DATA_DIR
        if read_only and not self.catalog_path.exists():
            raise ConfigError(f"no catalog at {self.catalog_path}: run `dawnchorus run` first")
        self.read_only = read_only
        self.con = connect_duckdb()
        self._attach()

    def _attach(self) -> None:
        if not self.read_only:
            self.data_path.mkdir(parents=True, exist_ok=True)
        new = not self.catalog_path.exists()
        options = [f"DATA_PATH '{self.data_path}/'"]
        # Inlining would keep small commits inside the SQLite file; we want Parquet data files.
        options.append("DATA_INLINING_ROW_LIMIT 0")
        if self.read_only:
            options.append("READ_ONLY")
        # ATTACH takes no prepared parameters; the paths are ours, quoted here and nowhere else.
        path = str(self.catalog_path).replace("'", "''")
        self.con.execute(f"ATTACH 'ducklake:sqlite:{path}' AS {LAKE} ({', '.join(options)})")
        self.con.execute(f"USE {LAKE}")
        if new and not self.read_only:
            self._create_schema()

    def _create_schema(self) -> None:
        log.info("creating catalog %s", self.catalog_path)
        with self.transaction():
            for name in SCHEMA_FILES:
                for statement in sql_statements(f"schema/{name}"):
                    self.con.execute(statement)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------
    class _Transaction:
        def __init__(self, con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]):
            self.con, self.tables = con, tables

        def __enter__(self) -> duckdb.DuckDBPyConnection:
            for name, table in self.tables.items():
                self.con.register(name, table)
            self.con.execute("BEGIN TRANSACTION")
            return self.con

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            try:
                self.con.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                for name in self.tables:
                    self.con.unregister(name)

    def transaction(self, **tables: pa.Table) -> "Catalog._Transaction":
        """`with catalog.transaction(_name=arrow_table): ...` — registered inputs, one commit."""
        return Catalog._Transaction(self.con, tables)

    def run_file(self, name: str, params: Sequence[Any] | None = None, **tables: pa.Table) -> None:
        """Run every statement of `sql/<name>.sql` in one transaction."""
        with self.transaction(**tables) as con:
            for statement in sql_statements(name):
                con.execute(statement, params) if params else con.execute(statement)

    # -- reads -------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        cursor = self.con.execute(sql, params) if params else self.con.execute(sql)
        return cursor.to_arrow_table()

    def query_file(self, name: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self.query(sql_text(name), params)

    def known_recordings(self) -> pa.Table:
        return self.query_file("catalog/known_recordings")

    def committed_windows(self, config_fingerprint: str) -> dict[tuple[str, int], set[int]]:
        rows = self.query_file("catalog/committed_windows", [config_fingerprint]).to_pylist()
        return {(r["recording_id"], r["channel"]): set(r["window_indexes"]) for r in rows}

    # -- writes ------------------------------------------------------------------------------
    def replace_recordings(self, new_recordings: pa.Table, superseded_ids: Sequence[str]) -> None:
        superseded = pa.table({"recording_id": pa.array(list(superseded_ids), pa.string())})
        self.run_file(
            "catalog/replace_recordings", _superseded=superseded, _new_recordings=new_recordings
        )

    def replace_deployments(self, deployments: pa.Table) -> None:
        self.run_file("catalog/replace_deployments", _deployments=deployments)

    def commit_unit(self, windows: pa.Table, predictions: pa.Table, failures: pa.Table) -> None:
        """One unit's effort rows, predictions and recording failures: all or nothing."""
        self.run_file(
            "catalog/commit_unit",
            _unit_windows=windows,
            _unit_predictions=predictions,
            _unit_failures=failures,
        )

    def forget_failed_windows(self, config_fingerprint: str) -> None:
        self.run_file("catalog/retry_failed", [config_fingerprint])

    def start_run(self, run: pa.Table) -> None:
        self.run_file("catalog/start_run", _run=run)

    def finish_run(self, run: pa.Table) -> None:
        self.run_file("catalog/finish_run", _run=run)
