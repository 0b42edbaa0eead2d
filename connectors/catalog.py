"""The results catalog: DuckLake (Parquet data files + a SQLite or Postgres catalog) via DuckDB.

Why DuckLake: a unit's rows commit in one transaction (exactly-once without a home-made commit
protocol), and readers in other processes (the `duckdb` CLI, `dawnchorus query`) work while a run
writes — a plain `.duckdb` file locks every other process out. The catalog is SQLite (the
embedded default) or Postgres (a team's, with several writers); the data files sit in a local
folder or on S3. `connectors.location.ResultsLocation` says which; every door takes one (or a
results folder, which means the embedded default).

Layout of the embedded default, under the results folder::

    catalog.sqlite      the DuckLake catalog (metadata, snapshots)
    data/<table>/deployment_id=…/date=…/*.parquet
    run.lock            the run lock (`connectors.locks`)
    catalog.sqlite.lock held while a writer creates or migrates the catalog

Several writers on one Postgres catalog: DuckLake retries a commit that lost a race when the two
changes do not conflict (appends never do); when they do (two transactions deleting from one data
file, e.g. two runs upserting deployments), the whole transaction is run again here on the new
snapshot — every write is a replace-by-key, so running it again is safe.

Two doors, one contract:

- :class:`Catalog` writes. Its typed methods take and return the row dataclasses of
  `connectors.tables` (one definition per table); callers never spell a column or write SQL.
  Opening it upgrades an older catalog (`sql/migrations/`, versioned) and refreshes the views;
  a catalog newer than this code is refused.
- :class:`CatalogReader` reads, locked down: one SELECT statement at a time, classified by
  DuckDB's own parser; no table function outside a short allow-list (the sqlite extension opens
  files through SQLite itself, outside DuckDB's file-system guard); no file outside the data
  folder; configuration locked. `dawnchorus query`, reports and exports go through it.

Statements live in `.sql` files of the `dawnchorus_sql` package; Python registers Arrow tables
and binds parameters. The embedded default's data path is always its own folder, so a results
folder that is moved or copied still opens; every other catalog keeps its data path.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.resources
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.analyses import FINGERPRINT, all_analyses, load_analysis, resolve_fingerprint
from connectors.errors import ConfigError
# CATALOG_FILE and DATA_DIR stay importable from here, where they used to be defined.
from connectors.location import CATALOG_FILE, DATA_DIR, ResultsLocation  # noqa: F401
from connectors.locks import ResultsBusy, run_lock, schema_lock
from connectors.tables import (
    DEPLOYMENTS,
    EMBEDDINGS,
    PREDICTIONS,
    RECORDINGS,
    REVIEWS,
    RUNS,
    SETTINGS,
    SPECIES_OCCURRENCE,
    THRESHOLDS,
    WINDOWS,
    DeploymentRow,
    EmbeddingRow,
    PredictionRow,
    RecordingRow,
    ReviewRow,
    RunRow,
    SettingRow,
    SpeciesOccurrenceRow,
    ThresholdRow,
    WindowRow,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

LAKE = "lake"
SCHEMA_VERSION_KEY = "schema_version"
VIEWS_DIGEST_KEY = "views_sha256"
DETECTION_THRESHOLD_KEY = "detection_threshold"
LOCATION_THRESHOLD_KEY = "location_filter_threshold"
#: Set only by a reader given its own threshold: the detections view's threshold_source for rows
#: that passed it ("query"; rows that passed the catalog's threshold say "default").
DETECTION_THRESHOLD_SOURCE_KEY = "detection_threshold_source"

#: Table functions a read-only query may call; every other one is refused (sqlite_scan,
#: sqlite_attach, query, read_*, glob ... reach outside the catalog or run other SQL).
READ_ONLY_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "ducklake_snapshots", "ducklake_table_info",
    "duckdb_tables", "duckdb_columns", "duckdb_views",
})
#: Databases a read-only query may name (lake = the catalog; temp holds our analysis views).
READ_ONLY_DATABASES = frozenset({"", LAKE, "temp", "system"})
#: How long a reader waits for a run to upgrade an older catalog it holds.
UPGRADE_WAIT_S = 120.0
#: DuckLake data inlining stays off: flushing inlined rows to Parquet drops the inlined table, and
#: a reader connection opened before the flush then fails every query ("Failed to read inlined
#: data ... does not exist", DuckLake d8a1881e). Few files come from batched commits (the driver
#: commits several whole units per transaction) and `Catalog.maintain` instead.
INLINE_ROW_LIMIT = 0
#: Catalog setting: days of snapshots `maintain` keeps for time travel (default 30).
SNAPSHOT_RETENTION_KEY = "snapshot_retention_days"
DEFAULT_SNAPSHOT_RETENTION_DAYS = 30.0
#: Files merged away, expired or orphaned are deleted only once this old, so a reader that was
#: scanning them when maintenance began keeps working (DuckLake's own advice).
DEFAULT_DELETE_GRACE = timedelta(hours=1)
#: A write that conflicts with another writer's is run again this many times (see the docstring).
CONFLICT_RETRIES = 20
RESULTS_SECRET = "dawnchorus_results"
#: httpfs settings that hold credentials (copied from the AWS_* variables when it loads).
_S3_CREDENTIAL_SETTINGS = ("s3_access_key_id", "s3_secret_access_key", "s3_session_token")
#: Waits before each retry of a catalog open or read that met another writer's commit (about
#: 25 s in all, with jitter). SQLite takes one writer at a time and the sqlite extension does not
#: wait for a busy database: the second process fails with "database is locked". Runs, the review
#: page and calibrate use the same catalog at once; this (and `Catalog._write`) makes that safe.
LOCKED_RETRY_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8)


# -------------------------------------------------------------------------------- SQL files


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


def _folder_files(folder: str) -> list[str]:
    """`folder/<stem>` names of the .sql files in a package folder, sorted."""
    root = importlib.resources.files("dawnchorus_sql").joinpath(folder)
    return sorted(f"{folder}/{p.name[:-4]}" for p in root.iterdir() if p.name.endswith(".sql"))


#: The migrations, in order; the catalog's schema version is the number applied.
MIGRATIONS: tuple[str, ...] = tuple(_folder_files("migrations"))
SCHEMA_VERSION = len(MIGRATIONS)
VIEWS: tuple[str, ...] = tuple(_folder_files("views"))


def views_digest() -> str:
    text = "\n".join(sql_text(v) for v in VIEWS)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -------------------------------------------------------------------------------- connection


def _extension_dir() -> str:
    default = Path.home() / ".cache" / "dawnchorus" / "duckdb-extensions"
    return os.environ.get("DAWNCHORUS_DUCKDB_EXTENSIONS", str(default))


_SPILL_DIR: str | None = None


def _spill_dir() -> str:
    """This process's own DuckDB spill folder, removed when the process exits."""
    global _SPILL_DIR
    if _SPILL_DIR is None:
        _SPILL_DIR = tempfile.mkdtemp(prefix="dawnchorus-duckdb-")
        atexit.register(shutil.rmtree, _SPILL_DIR, True)
    return _SPILL_DIR


def connect_duckdb(location: ResultsLocation | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the extensions `location` needs loaded from their wheels:
    ducklake and sqlite always, postgres for a Postgres catalog, httpfs for data on S3."""
    import duckdb_extensions  # the offline extension loader (duckdb-extension-* wheels)

    con = duckdb.connect(config={
        "extension_directory": _extension_dir(), "autoinstall_known_extensions": False,
        # DuckDB's default spill folder is `.tmp` under the working directory: not ours to fill.
        "temp_directory": _spill_dir(),
    })
    # No progress bar: DuckDB draws it on stdout once a query runs past 2 s, into whatever the
    # caller prints there (`dawnchorus query --format csv > file`).
    con.execute("SET enable_progress_bar = false")
    extensions = ["ducklake", "sqlite"]
    if location is not None and location.catalog_kind == "postgres":
        extensions.append("postgres")
    if location is not None and location.data_on_s3:
        extensions.append("httpfs")
    for extension in extensions:
        duckdb_extensions.import_extension(extension, con=con)
    if "httpfs" in extensions:
        # httpfs copies the AWS_* variables into its s3_* settings, where current_setting() would
        # show them to any query; the connection's S3 secret (_create_results_secret) is what
        # reaches the data, so the settings are emptied.
        for setting in _S3_CREDENTIAL_SETTINGS:
            con.execute(f"SET {setting} = ''")
    return con


def results_root(results: str | os.PathLike) -> Path:
    """The local results folder a results argument names; ConfigError for what cannot be one."""
    text = str(results)
    if "://" in text and not text.startswith("file://"):
        raise ConfigError(f"results {results!r} are on object storage, not in a local folder")
    root = ResultsLocation.resolve(results).root
    assert root is not None
    return root


def _quote(text: str) -> str:
    """A SQL string literal. ATTACH and CREATE SECRET take no prepared parameters; the values
    are ours (paths, URLs, credentials from the environment), quoted here and nowhere else."""
    return "'" + str(text).replace("'", "''") + "'"


#: CREATE SECRET keys whose values are keywords, not strings.
_SECRET_KEYWORDS = frozenset({"TYPE", "PROVIDER"})


def _create_results_secret(con: duckdb.DuckDBPyConnection, location: ResultsLocation) -> None:
    """A temporary S3 secret (this connection only, never on disk) for data on S3."""
    if not location.data_on_s3:
        return
    params = {"TYPE": "s3", **location.s3_secret()}

    def value(name: str, v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if name in _SECRET_KEYWORDS else _quote(v)

    body = ", ".join(f"{name} {value(name, v)}" for name, v in params.items())
    try:
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {RESULTS_SECRET} ({body})")
    except duckdb.Error as exc:  # the message could echo a credential: say only what failed
        raise ConfigError(f"results {location.results}: cannot set up S3 access "
                          f"({type(exc).__name__})") from None


def _attach(con: duckdb.DuckDBPyConnection, location: ResultsLocation, read_only: bool) -> None:
    _create_results_secret(con, location)
    # The embedded default's data path is always its own data/: a moved or copied results folder
    # opens (DuckLake keeps file paths relative to it; OVERRIDE_DATA_PATH ignores the stored one).
    # Any other catalog keeps the data path it was created with, and DuckLake refuses another.
    # Inlining stays off (INLINE_ROW_LIMIT says why): commits write Parquet data files.
    options = [f"DATA_PATH {_quote(location.data_path)}", f"DATA_INLINING_ROW_LIMIT {INLINE_ROW_LIMIT}"]
    if location.is_default:
        options.append("OVERRIDE_DATA_PATH true")
    if read_only:
        options.append("READ_ONLY")
    statement = f"ATTACH {_quote(location.attach_target())} AS {LAKE} ({', '.join(options)})"
    for attempt in range(20):
        try:
            con.execute(statement)
            break
        except duckdb.Error as exc:
            # Two processes creating one new catalog at once: SQLite says busy; wait and retry.
            if attempt < 19 and "locked" in str(exc).lower():
                time.sleep(0.1 * (attempt + 1))
                continue
            raise ConfigError(f"catalog {location.describe()}: cannot open it: "
                              f"{_scrub(_first_line(exc), location)}") from None
    con.execute(f"USE {LAKE}")


def _scrub(text: str, location: ResultsLocation) -> str:
    for secret in location.secrets():
        text = text.replace(secret, "***")
    return text.replace(location.catalog, location.describe())


def _another_writer(exc: BaseException) -> bool:
    """Whether a catalog access failed only because another process was committing to it."""
    return isinstance(exc, duckdb.Error) and "database is locked" in str(exc)


def retry_while_busy(action: Callable[[], T], what: str) -> T:
    """`action()`, tried again (after LOCKED_RETRY_WAITS_S) while another process commits.

    Only for actions that leave nothing behind when they fail: one transaction, or opening a
    connection.
    """
    for wait_s in (*LOCKED_RETRY_WAITS_S, None):
        try:
            return action()
        except duckdb.Error as exc:
            if wait_s is None or not _another_writer(exc):
                raise
            log.debug("catalog busy (%s), %s: again in %.2f s", _first_line(exc), what, wait_s)
            time.sleep(wait_s * (1.0 + random.random()))
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _is_write_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


class _Transaction:
    def __init__(self, con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]):
        self.con, self.tables = con, tables

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        try:
            for name, table in self.tables.items():
                self.con.register(name, table)
            self.con.execute("BEGIN TRANSACTION")
        except BaseException:  # e.g. a busy catalog: leave nothing registered for the retry
            self._unregister()
            raise
        return self.con

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        try:
            self.con.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._unregister()

    def _unregister(self) -> None:
        for name in self.tables:
            self.con.unregister(name)


def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
    tables = con.execute(
        "select count(*) from duckdb_tables() where database_name = ?", [LAKE]
    ).fetchone()[0]
    if tables == 0:
        return 0
    row = con.execute(sql_text("catalog/get_setting"), [SCHEMA_VERSION_KEY]).fetchone()
    return int(row[0]) if row else 1  # version 1 catalogs recorded no version


def _setting(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute(sql_text("catalog/get_setting"), [key]).fetchone()
    return row[0] if row else None


def _refuse_newer(version: int, where: ResultsLocation) -> None:
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"catalog {where.describe()} has schema version {version}, newer than this "
            f"dawnchorus understands ({SCHEMA_VERSION}): upgrade dawnchorus to open it"
        )


def _needs_upgrade(con: duckdb.DuckDBPyConnection) -> bool:
    return _schema_version(con) < SCHEMA_VERSION or _setting(con, VIEWS_DIGEST_KEY) != views_digest()


@dataclass(frozen=True)
class CascadeWindow:
    """A window a cascade stage answers, and the previous stage's proposals for it."""

    recording_id: str
    channel: int
    window_index: int
    offset_s: float
    duration_s: float
    padded: bool
    candidates: tuple[str, ...]  # the previous stage's top-k classify labels, best first


def check_embeddings(rows: Sequence[EmbeddingRow]) -> None:
    """Refuse embeddings that are empty, not finite, or of two lengths under one fingerprint."""
    widths: dict[str, int] = {}
    for e in rows:
        vector = np.asarray(e.vector, dtype=np.float32)
        where = f"recording {e.recording_id} window {e.window_index} channel {e.channel}"
        if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
            raise ValueError(f"refusing to commit the embedding of {where}: expected a non-empty "
                             f"finite vector, got shape {vector.shape}")
        width = widths.setdefault(e.config_fingerprint, vector.size)
        if vector.size != width:
            raise ValueError(f"refusing to commit the embedding of {where}: {vector.size} values, "
                             f"but {width} for other windows of fingerprint {e.config_fingerprint}")


@dataclass(frozen=True)
class DataFiles:
    """Parquet files under a results folder's data/ (on disk: referenced or not); None and None
    for data on S3, which is not counted here."""

    files: int | None
    bytes: int | None

    @classmethod
    def under(cls, data_path: Path | None) -> "DataFiles":
        if data_path is None:
            return cls(None, None)
        sizes = [p.stat().st_size for p in data_path.rglob("*.parquet") if p.is_file()]
        return cls(len(sizes), sum(sizes))


@dataclass(frozen=True)
class MaintenanceReport:
    """What `Catalog.maintain` did."""

    before: DataFiles
    after: DataFiles
    tables_merged: int
    snapshots_expired: int
    files_deleted: int  # merged away or only in expired snapshots
    orphans_deleted: int  # files no commit ever recorded (killed commits)


# -------------------------------------------------------------------------------- the writer


class Catalog:
    """A catalog open for writing (attached as `lake`): a results folder (the embedded default)
    or a `ResultsLocation` (SQLite or Postgres catalog, local or S3 data)."""

    def __init__(self, results: str | os.PathLike | ResultsLocation, catalog: str | None = None,
                 storage_options: dict[str, Any] | None = None):
        self.location = ResultsLocation.resolve(results, catalog, storage_options)
        self.root = self.location.root  # the local results folder; None for data on S3
        self.catalog_path = self.location.catalog_path
        self.data_path = self.root / DATA_DIR if self.root else None
        folders = [p for p in (self.data_path, self.catalog_path and self.catalog_path.parent) if p]
        for folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"results folder {folder}: cannot create it: "
                                  f"{exc.strerror or exc}") from None
        self.con = retry_while_busy(self._open, f"{self.location.describe()}: open")

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.con = connect_duckdb(self.location)
        try:
            with schema_lock(self.location):
                _attach(self.con, self.location, read_only=False)
                self._upgrade()
        except BaseException:
            self.con.close()
            raise
        return self.con

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------
    def _upgrade(self) -> None:
        """Apply the migrations this catalog lacks, one transaction each; refresh the views."""
        while True:
            version = _schema_version(self.con)
            _refuse_newer(version, self.location)
            if version == SCHEMA_VERSION:
                break
            number = version + 1
            log.info("catalog %s: migrating to schema version %d (%s)", self.location.describe(),
                     number, MIGRATIONS[number - 1])
            self._retrying(self._migrate_to, number)
        if _setting(self.con, VIEWS_DIGEST_KEY) != views_digest():
            self._retrying(self._refresh_views)

    def _migrate_to(self, number: int) -> None:
        with self._transaction() as con:
            if _schema_version(con) >= number:
                return  # another process got there first
            for statement in sql_statements(MIGRATIONS[number - 1]):
                con.execute(statement)
            self._put_setting(con, SCHEMA_VERSION_KEY, str(number))

    def _refresh_views(self) -> None:
        with self._transaction() as con:
            if _setting(con, VIEWS_DIGEST_KEY) == views_digest():
                return
            for view in VIEWS:
                for statement in sql_statements(view):
                    con.execute(statement)
            self._put_setting(con, VIEWS_DIGEST_KEY, views_digest())

    @staticmethod
    def _retrying(step: Any, *args: Any, attempts: int = 20) -> None:
        """Run a schema step; when another process upgrades the same catalog at the same moment
        (SQLite busy, DuckLake write conflict), wait and try again — the step re-checks."""
        for attempt in range(attempts):
            try:
                return step(*args)
            except duckdb.Error as exc:
                text = str(exc).lower()
                if attempt == attempts - 1 or not ("locked" in text or "conflict" in text):
                    raise
                time.sleep(0.1 * (attempt + 1))

    @property
    def schema_version(self) -> int:
        return _schema_version(self.con)

    # -- plumbing ------------------------------------------------------------------------------
    def _transaction(self, **tables: pa.Table) -> _Transaction:
        return _Transaction(self.con, tables)

    def _write(self, work: Callable[[duckdb.DuckDBPyConnection], T], **tables: pa.Table) -> T:
        """Run `work` in one transaction; again on the new snapshot if another writer's commit
        conflicted with it, or while another process commits to a SQLite catalog ("database is
        locked"). A failed transaction is rolled back whole, so running it again never duplicates
        a row (and every write here but an appended verdict replaces by key)."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                with self._transaction(**tables) as con:
                    return work(con)
            except duckdb.Error as exc:
                again = _is_write_conflict(exc) or _another_writer(exc)
                if not again or attempt == CONFLICT_RETRIES:
                    raise
                log.debug("catalog write met another writer (attempt %d): %s",
                          attempt + 1, _first_line(exc))
                time.sleep(min(2.0, 0.05 * 1.5 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _run_file(self, name: str, params: Sequence[Any] | None = None, **tables: pa.Table) -> None:
        def work(con: duckdb.DuckDBPyConnection) -> None:
            for statement in sql_statements(name):
                con.execute(statement, params) if params is not None else con.execute(statement)

        self._write(work, **tables)

    def _query_file(self, name: str, params: Sequence[Any] | None = None,
                    **tables: pa.Table) -> pa.Table:
        for table_name, table in tables.items():
            self.con.register(table_name, table)
        try:
            return self.con.execute(sql_text(name), params).to_arrow_table()
        finally:
            for table_name in tables:
                self.con.unregister(table_name)

    @staticmethod
    def _put_setting(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
        con.register("_setting", SETTINGS.to_arrow([SettingRow(key, value)]))
        try:
            for statement in sql_statements("catalog/set_setting"):
                con.execute(statement)
        finally:
            con.unregister("_setting")

    # -- settings ------------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        return _setting(self.con, key)

    def set_setting(self, key: str, value: str) -> None:
        self._write(lambda con: self._put_setting(con, key, value))

    # -- deployments and recordings ------------------------------------------------------------
    def upsert_deployments(self, rows: Sequence[DeploymentRow]) -> None:
        """Replace the rows of these deployments (by deployment_id) in one transaction."""
        if rows:
            self._run_file("catalog/replace_deployments", _deployments=DEPLOYMENTS.to_arrow(rows))

    def deployments(self) -> list[DeploymentRow]:
        """Every deployment the catalog holds, by id."""
        return DEPLOYMENTS.from_arrow(self._query_file("catalog/deployments"))

    def known_recordings(self) -> list[RecordingRow]:
        """Every recording version the catalog holds."""
        return RECORDINGS.from_arrow(self._query_file("catalog/known_recordings"))

    def register_recordings(self, new: Sequence[RecordingRow], superseded_ids: Sequence[str]) -> None:
        """Add new recording versions and drop superseded ones with their rows, in one transaction."""
        superseded = pa.table({"recording_id": pa.array(list(superseded_ids), pa.string())})
        self._run_file("catalog/replace_recordings", _superseded=superseded,
                       _new_recordings=RECORDINGS.to_arrow(new))

    def plannable_recordings(self, recording_ids: Sequence[str]) -> list[RecordingRow]:
        """The readable recordings among `recording_ids`, by uri."""
        ids = pa.table({"recording_id": pa.array(list(recording_ids), pa.string())})
        return RECORDINGS.from_arrow(self._query_file("catalog/plannable_recordings", _ids=ids))

    def cascade_windows(self, upstream: str, fingerprint: str, *, pass_task: str,
                        threshold: float, top_k: int | None, retry_failed: bool = False
                        ) -> list["CascadeWindow"]:
        """The windows a cascade stage (`fingerprint`) has still to answer: analysed under
        `upstream`, passed by its `pass_task` score, with its top-k classify labels."""
        table = self._query_file("catalog/cascade_windows", {
            "upstream": upstream, "fingerprint": fingerprint, "pass_task": pass_task,
            "threshold": float(threshold), "top_k": int(top_k or 0), "retry_failed": retry_failed})
        return [CascadeWindow(r["recording_id"], int(r["channel"]), int(r["window_index"]),
                              float(r["offset_s"]), float(r["duration_s"]), bool(r["padded"]),
                              tuple(r["candidates"]))
                for r in table.to_pylist()]

    # -- windows and predictions ---------------------------------------------------------------
    def committed_windows(self, config_fingerprint: str, *, retry_failed: bool = False
                          ) -> dict[tuple[str, int], set[int]]:
        """(recording_id, channel) -> window indexes already committed under this fingerprint.

        With `retry_failed`, failed windows do not count as committed, so they are planned again.
        """
        table = self._query_file("catalog/committed_windows", [config_fingerprint, retry_failed])
        return {(r["recording_id"], r["channel"]): set(r["window_indexes"]) for r in table.to_pylist()}

    def commit_unit(self, windows: Sequence[WindowRow], predictions: Sequence[PredictionRow],
                    embeddings: Sequence[EmbeddingRow] = ()) -> None:
        """One unit's effort rows, predictions and embeddings: all or nothing (see
        `commit_units`)."""
        self.commit_units([(windows, predictions, embeddings)])

    def commit_units(self, units: Sequence[tuple[Sequence[WindowRow], Sequence[PredictionRow]]
                                           | tuple[Sequence[WindowRow], Sequence[PredictionRow],
                                                   Sequence[EmbeddingRow]]]) -> None:
        """Whole units' effort rows, predictions and embeddings (each unit's third item, none
        when it has two) in one transaction: all or nothing.

        Several finished units may share a transaction (fewer commits and files); none is ever
        split across two, so a re-run after a crash plans exactly the units that are not in.
        A window committed again after failing replaces its failed row. Every score must be a
        finite probability: the inference stage fails windows whose model output is not one, so
        a bad score here is a bug, refused before it can reach a detection. Embeddings are
        refused unless they are finite and of one length per fingerprint (DuckLake stores
        `FLOAT[]`, so nothing else would catch a short vector).
        """
        windows = [w for unit in units for w in unit[0]]
        predictions = [p for unit in units for p in unit[1]]
        embeddings = [e for unit in units for e in (unit[2] if len(unit) > 2 else ())]
        for p in predictions:
            if not (isinstance(p.score, float) and math.isfinite(p.score) and 0.0 <= p.score <= 1.0):
                raise ValueError(
                    f"refusing to commit score {p.score!r} for recording {p.recording_id} window "
                    f"{p.window_index} ({p.task}): scores must be finite probabilities"
                )
        check_embeddings(embeddings)
        self._run_file("catalog/commit_unit", _unit_windows=WINDOWS.to_arrow(windows),
                       _unit_predictions=PREDICTIONS.to_arrow(predictions),
                       _unit_embeddings=EMBEDDINGS.to_arrow(embeddings))

    def commit_tables(self, windows: pa.Table, predictions: pa.Table) -> None:
        """Windows and predictions already in Arrow, with exactly the tables' schemas, in one
        transaction (bulk loads of many rows, e.g. the catalog benchmark's synthetic season);
        scores are checked as `commit_units` checks them."""
        for table, name in ((windows, WINDOWS), (predictions, PREDICTIONS)):
            if not table.schema.equals(name.schema):
                raise TypeError(f"{name.name}: expected the schema of connectors.tables.{name.name}")
        scores = predictions.column("score")
        good = pc.and_(pc.is_finite(scores), pc.and_(pc.greater_equal(scores, 0.0),
                                                     pc.less_equal(scores, 1.0)))
        if predictions.num_rows and not pc.all(good).as_py():
            bad = predictions.filter(pc.invert(pc.fill_null(good, False))).slice(0, 1).to_pylist()[0]
            raise ValueError(
                f"refusing to commit score {bad['score']!r} for recording {bad['recording_id']} "
                f"window {bad['window_index']} ({bad['task']}): scores must be finite probabilities"
            )
        self._run_file("catalog/commit_unit", _unit_windows=windows, _unit_predictions=predictions,
                       _unit_embeddings=EMBEDDINGS.to_arrow([]))

    def commit_embeddings_table(self, embeddings: pa.Table) -> None:
        """Embeddings already in Arrow (exactly the table's schema), in one transaction: bulk
        loads such as the similarity benchmark's synthetic season. Checked as `commit_unit`
        checks rows: finite, non-empty, one width per fingerprint."""
        if not embeddings.schema.equals(EMBEDDINGS.schema):
            raise TypeError("embeddings: expected the schema of connectors.tables.embeddings")
        vectors = embeddings.column("vector").combine_chunks()
        widths = pa.table({"fp": embeddings.column("config_fingerprint"),
                           "n": pc.list_value_length(vectors)}).group_by("fp").aggregate(
                               [("n", "min"), ("n", "max")])
        values = vectors.flatten()
        if (embeddings.num_rows and (pc.min(widths["n_min"]).as_py() < 1
                                     or widths["n_min"] != widths["n_max"]
                                     or not pc.all(pc.is_finite(values)).as_py())):
            raise ValueError("refusing to commit embeddings: every vector must be non-empty and "
                             "finite, of one width per fingerprint")
        self._run_file("catalog/commit_unit", _unit_windows=WINDOWS.to_arrow([]),
                       _unit_predictions=PREDICTIONS.to_arrow([]), _unit_embeddings=embeddings)

    # -- maintenance ---------------------------------------------------------------------------
    def maintain(self, *, retention: timedelta | None = None, keep_for_readers: bool = True,
                 orphan_grace: timedelta = DEFAULT_DELETE_GRACE) -> MaintenanceReport:
        """Few files, no dead ones: merge adjacent files, expire snapshots older than `retention`
        (default: the catalog's snapshot_retention_days setting, else 30 days), delete the files
        no kept snapshot needs, and delete orphaned files (killed commits) older than
        `orphan_grace`.

        Every row stays and every reader keeps working: merged files replace small ones in a new
        snapshot, and with `keep_for_readers` (the default) a file this pass merges away or
        expires is deleted by the next pass, never under a query that started before it. Pass
        False to delete them now (no reader open). Call it holding the results folder's run
        lock, so that no commit is writing files meanwhile.
        """
        if retention is None:
            days = self.setting(SNAPSHOT_RETENTION_KEY)
            retention = timedelta(days=float(days) if days else DEFAULT_SNAPSHOT_RETENTION_DAYS)
        if retention < timedelta(0) or orphan_grace < timedelta(0):
            raise ConfigError(f"retention ({retention}) and grace ({orphan_grace}) must not be negative")
        before = DataFiles.under(self.data_path)
        deleted = self._call("catalog/maintain_cleanup_files") if keep_for_readers else []
        merged = self._call("catalog/maintain_merge_files")
        expired = self._call("catalog/maintain_expire_snapshots", [datetime.now(timezone.utc) - retention])
        if not keep_for_readers:
            deleted = self._call("catalog/maintain_cleanup_files")
        orphans = self._delete_orphans(orphan_grace)
        report = MaintenanceReport(
            before=before, after=DataFiles.under(self.data_path), tables_merged=len(merged),
            snapshots_expired=len(expired), files_deleted=len(deleted), orphans_deleted=orphans,
        )
        log.info("catalog %s maintained: %s", self.location.describe(), report)
        return report

    def _delete_orphans(self, grace: timedelta) -> int:
        """Delete the catalog's orphaned data files last written more than `grace` ago (local
        data only: on S3 a bucket lifecycle rule is the place for stray objects)."""
        if self.data_path is None:
            log.info("catalog %s: data on S3, orphaned files are not looked for",
                     self.location.describe())
            return 0
        cutoff = (datetime.now(timezone.utc) - grace).timestamp()
        deleted = 0
        for (path,) in self._call("catalog/maintain_list_orphans"):
            file = Path(path)
            try:
                if file.parent.resolve().is_relative_to(self.data_path) and file.stat().st_mtime <= cutoff:
                    file.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue
        return deleted

    def _call(self, name: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Rows of a maintenance call (DuckLake's functions run their own transactions)."""
        return self.con.execute(sql_text(name), params).fetchall()

    # -- species filters -----------------------------------------------------------------------
    def location_filter_todo(self) -> list[tuple[str, int, float, float]]:
        """(deployment_id, BirdNET week, latitude, longitude) pairs the meta-model has not been
        asked about yet (or was asked about other coordinates than the deployment's now)."""
        table = self._query_file("catalog/location_filter_todo")
        return [(r["deployment_id"], r["week"], r["latitude"], r["longitude"])
                for r in table.to_pylist()]

    def put_species_occurrence(self, rows: Sequence[SpeciesOccurrenceRow]) -> None:
        """The meta-model's answers for some (deployment, week) pairs, replacing older ones for
        those pairs, in one transaction."""
        if rows:
            self._run_file("catalog/put_species_occurrence",
                           _occurrence=SPECIES_OCCURRENCE.to_arrow(rows))

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, run: RunRow) -> None:
        self._run_file("catalog/start_run", _run=RUNS.to_arrow([run]))

    def finish_run(self, run: RunRow) -> None:
        self._run_file("catalog/finish_run", _run=RUNS.to_arrow([run]))

    def mark_interrupted(self, noticed_at: datetime, by_run_id: str,
                         alive: Callable[[str], bool] | None = None) -> list[str]:
        """Mark the runs still `running` that are dead as interrupted; their run ids.

        `alive(run_id)` tells a live run from a dead one (`connectors.locks`: a Postgres lease
        asks whether that run's session still holds its lease). Without it every run but
        `by_run_id` counts as dead: call it so only while holding a SQLite catalog's run lock.
        """
        running = retry_while_busy(
            lambda: [r[0] for r in self.con.execute(sql_text("catalog/running_runs"),
                                                    [by_run_id]).fetchall()],
            f"{self.location.describe()}: running runs")
        dead = [run_id for run_id in running if alive is None or not alive(run_id)]
        if dead:
            ids = pa.table({"run_id": pa.array(dead, pa.string())})
            self._run_file("catalog/mark_interrupted", [noticed_at], _dead=ids)
        return dead

    def runs(self) -> list[RunRow]:
        return RUNS.from_arrow(self._query_file("catalog/runs"))

    # -- reviews and thresholds ----------------------------------------------------------------
    def add_review(self, review: ReviewRow) -> None:
        """One verdict, in its own transaction (the review page writes each click at once).

        Needs no run lock: DuckLake's transactions let it commit while a run commits units.
        """
        self.add_reviews([review])

    def add_reviews(self, reviews: Sequence[ReviewRow]) -> None:
        """Several verdicts (a Raven table's) in one transaction: all or nothing."""
        for r in reviews:
            check_review(r)
        if reviews:
            self._run_file("catalog/add_reviews", _reviews=REVIEWS.to_arrow(reviews))

    def replace_thresholds(self, rows: Sequence[ThresholdRow]) -> None:
        """Replace the thresholds of these (fingerprint, label) pairs, in one transaction."""
        for row in rows:
            if row.status not in ThresholdRow.STATUSES:
                raise ValueError(f"threshold status {row.status!r}: expected one of "
                                 f"{', '.join(ThresholdRow.STATUSES)}")
            if (row.threshold is None) != (row.status != "calibrated"):
                raise ValueError(f"threshold for {row.label!r}: a threshold goes with status "
                                 f"calibrated and only with it (got {row.threshold!r}, {row.status})")
            if row.threshold is not None and not 0.0 <= row.threshold <= 1.0:
                raise ValueError(f"threshold for {row.label!r}: {row.threshold!r} is not a score")
        if rows:
            self._run_file("catalog/replace_thresholds", _thresholds=THRESHOLDS.to_arrow(rows))


def check_review(review: ReviewRow) -> None:
    """Refuse a verdict the catalog must never hold (a bug in the caller, not user input)."""
    if review.verdict not in ReviewRow.VERDICTS:
        raise ValueError(f"verdict {review.verdict!r}: expected one of {', '.join(ReviewRow.VERDICTS)}")
    if review.via not in ReviewRow.VIAS:
        raise ValueError(f"review via {review.via!r}: expected one of {', '.join(ReviewRow.VIAS)}")
    if (review.verdict == "other") != bool(review.corrected_label):
        raise ValueError("a corrected label goes with verdict other, and only with it "
                         f"(got verdict {review.verdict!r}, corrected label {review.corrected_label!r})")
    if not review.reviewer.strip():
        raise ValueError("a verdict needs a reviewer name")
    if not (math.isfinite(review.score) and 0.0 <= review.score <= 1.0):
        raise ValueError(f"review score {review.score!r}: expected a probability")


# -------------------------------------------------------------------------------- the reader


class QueryRefused(ConfigError):
    """A read-only query tried something outside the catalog, or failed; one readable line."""


class CatalogReader:
    """The catalog, read-only and locked down (see the module docstring).

    `threshold` replaces the catalog's detection threshold, and every species' calibrated one,
    for this reader's queries (detections then say threshold_source query), and
    `location_threshold` the location-and-season filter's (0 keeps every species). Files are
    readable only under the catalog's data path (a local folder or the S3 prefix); the S3 secret
    the data needs is a temporary one that no query can list or read.
    """

    def __init__(self, results: str | os.PathLike | ResultsLocation, *, catalog: str | None = None,
                 storage_options: dict[str, Any] | None = None, threshold: float | None = None,
                 location_threshold: float | None = None):
        self.location = ResultsLocation.resolve(results, catalog, storage_options)
        self.root = self.location.root
        self.catalog_path = self.location.catalog_path
        self._spill: str | None = None
        if self.location.exists() is False:
            raise ConfigError(f"no catalog at {self.catalog_path}: run `dawnchorus run` first")
        self.con = retry_while_busy(lambda: self._open(threshold, location_threshold),
                                    f"{self.location.describe()}: open")

    def _open(self, threshold: float | None, location_threshold: float | None
              ) -> duckdb.DuckDBPyConnection:
        self.con = connect_duckdb(self.location)
        try:
            _attach(self.con, self.location, read_only=True)
            version = _schema_version(self.con)
            _refuse_newer(version, self.location)
            if _needs_upgrade(self.con):
                self._upgrade_then_reattach()
            self._prepare(threshold, location_threshold)
        except BaseException:
            self.close()  # and its spill folder, so that a retry leaves none behind
            self._spill = None
            raise
        self._lock_down()
        return self.con

    def _upgrade_then_reattach(self) -> None:
        """Upgrade an older catalog before reading it, never beside another writer. A SQLite
        catalog is upgraded under its run lock; when a run holds it, the run upgrades the catalog
        as it opens it, and the reader waits for that. On Postgres, where runs lease deployments
        and not the catalog, the writer's schema lock (taken by `Catalog`) serialises upgrades."""
        self.con.execute("USE memory")
        self.con.execute(f"DETACH {LAKE}")
        deadline = time.monotonic() + UPGRADE_WAIT_S
        while True:
            try:
                if self.location.catalog_kind == "postgres":
                    Catalog(self.location).close()
                else:
                    with run_lock(self.location, "upgrade-before-reading"):
                        Catalog(self.location).close()
                break
            except ResultsBusy as busy:
                _attach(self.con, self.location, read_only=True)
                pending = _needs_upgrade(self.con)
                self.con.execute("USE memory")
                self.con.execute(f"DETACH {LAKE}")
                if not pending:
                    break
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"catalog {self.location.describe()} needs an upgrade to schema version "
                        f"{SCHEMA_VERSION}, and {busy.holder.describe() if busy.holder else 'a run'} "
                        "holds the folder without upgrading it: retry when it has finished"
                    ) from None
                time.sleep(0.5)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"catalog {self.location.describe()} needs an upgrade to schema version "
                    f"{SCHEMA_VERSION} and it could not be written here: "
                    f"{_scrub(_first_line(exc), self.location)}"
                ) from None
        _attach(self.con, self.location, read_only=True)

    def _prepare(self, threshold: float | None, location_threshold: float | None) -> None:
        con = self.con
        # A temporary `settings` shadows the catalog's for this connection only: the detections
        # view reads its thresholds from there, so a reader (or one analysis) can choose its own.
        con.execute(sql_text("reader/shadow_settings"))
        self._default_threshold = threshold
        self._set_threshold(threshold)
        self._set_threshold(location_threshold, LOCATION_THRESHOLD_KEY)
        self.fingerprints = [r[0] for r in con.execute(sql_text("reader/fingerprints")).fetchall()]
        # Analyses whose parameters all have defaults are views (`from species_by_night`), read
        # with the defaults: the variables below. config_fingerprint defaults to the only one;
        # with several, it stays NULL (the views show nothing) until a query chooses one.
        self._view_defaults: dict[str, Any] = {}
        self._variable_types = {p.name: p.type for a in all_analyses() for p in a.variables}
        for analysis in all_analyses():
            if any(p.required for p in analysis.parameters):
                continue
            for p in analysis.variables:
                self._view_defaults.setdefault(p.name, p.default)
            # Names are ours (file names checked as identifiers); a view body takes no parameters.
            con.execute(f"create temp view {analysis.name} as {analysis.sql}")
        if len(self.fingerprints) == 1:
            self._view_defaults[FINGERPRINT] = self.fingerprints[0]
        self._set_variables(self._view_defaults)

    def _set_threshold(self, threshold: float | None, key: str = DETECTION_THRESHOLD_KEY) -> None:
        if threshold is not None and not (
                isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ConfigError(f"{key} {threshold}: expected a probability in [0, 1]")
        self.con.execute(sql_text("reader/reset_threshold"), [key])
        if threshold is not None:
            self.con.execute(sql_text("reader/set_threshold"), [key, str(float(threshold))])
        if key == DETECTION_THRESHOLD_KEY:
            # A threshold chosen here applies to every species: the detections view leaves the
            # calibrated ones aside while this connection's settings name the source "query".
            self.con.execute(sql_text("reader/unset_setting"), [DETECTION_THRESHOLD_SOURCE_KEY])
            if threshold is not None:
                self.con.execute(sql_text("reader/add_setting"),
                                 [DETECTION_THRESHOLD_SOURCE_KEY, "query"])

    def _set_variables(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            # Name and type are declared in an analysis header (an identifier and one of
            # connectors.analyses.TYPES, checked by its parser); the value is always bound. The
            # cast gives a NULL its type, so `lower(getvariable('species'))` binds.
            sql_type = self._variable_types.get(name, "varchar")
            self.con.execute(f"SET VARIABLE {name} = CAST(? AS {sql_type})", [value])

    def _lock_down(self) -> None:
        con = self.con
        # DuckDB always allows its own spill folder, by default `.tmp` under the working
        # directory — where anything else may lie. Give it an empty private folder instead.
        self._spill = tempfile.mkdtemp(prefix="dawnchorus-reader-")
        con.execute("SET temp_directory = ?", [self._spill])
        con.execute("SET allowed_directories = ?", [[self.location.data_path]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def close(self) -> None:
        self.con.close()
        if self._spill:
            shutil.rmtree(self._spill, ignore_errors=True)

    def __enter__(self) -> "CatalogReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run one read-only SELECT; QueryRefused (one line) for anything else or any failure."""
        def run() -> pa.Table:
            check_read_only(self.con, sql)
            cursor = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
            return cursor.to_arrow_table()

        try:
            return retry_while_busy(run, f"{self.location.describe()}: query")
        except duckdb.Error as exc:
            raise QueryRefused(f"query failed: {_first_line(exc)}") from None

    def set_view_parameters(self, params: dict[str, Any]) -> None:
        """Choose parameters for the analysis views of this reader (`--param` with free SQL)."""
        declared = {p.name: p for a in all_analyses() for p in a.parameters}
        values = {}
        params = dict(params)
        if "threshold" in params:
            threshold = params.pop("threshold")
            threshold = declared["threshold"].parse(threshold) if isinstance(threshold, str) else threshold
            self._default_threshold = threshold
            self._set_threshold(threshold)
        for name, value in params.items():
            if name not in declared:
                raise ConfigError(f"no analysis view takes a parameter {name!r} "
                                  f"(parameters: {', '.join(sorted(declared))})")
            values[name] = declared[name].parse(value) if isinstance(value, str) else value
        if FINGERPRINT in values:
            values[FINGERPRINT] = resolve_fingerprint(self.fingerprints, values[FINGERPRINT],
                                                      "analysis views")
        self._view_defaults.update(values)
        self._set_variables(values)

    def analysis(self, name: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run the analysis `sql/analyses/<name>.sql` with its parameters (text or typed values).

        `config_fingerprint` left at null means the catalog's only fingerprint (ConfigError when
        there are several); `threshold` applies to the detections view for this analysis only.
        """
        analysis = load_analysis(name)
        values = analysis.bind(params or {})
        if FINGERPRINT in values:
            values[FINGERPRINT] = resolve_fingerprint(
                self.fingerprints, values[FINGERPRINT], f"analysis {name}")
            if values[FINGERPRINT] is None:
                values[FINGERPRINT] = ""  # an empty catalog: no fingerprint, no rows
        threshold = values.pop("threshold", None)
        if threshold is not None:
            self._set_threshold(threshold)
        self._set_variables(values)
        try:
            cursor = self.con.execute(analysis.sql)
            return cursor.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryRefused(f"analysis {name} failed: {_first_line(exc)}") from None
        finally:
            if threshold is not None:
                self._set_threshold(self._default_threshold)
            self._set_variables({k: self._view_defaults.get(k) for k in values})


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one SELECT that names only the catalog and allowed table functions.

    Classified by DuckDB's own parser (statement types, then the statement's syntax tree), never
    by matching text.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"query refused: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise QueryRefused(f"query refused: one statement at a time, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(
            f"query refused: only SELECT queries may run here, got {kind.name} "
            "(the catalog is read-only; nothing else can be attached, set or written)"
        )
    tree = json.loads(con.execute("select json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        raise QueryRefused("query refused: only plain SELECT queries may run here "
                           f"({tree.get('error_message', 'not a SELECT')})")
    other_databases = {
        name for (name,) in con.execute("select database_name from duckdb_databases()").fetchall()
    } - READ_ONLY_DATABASES
    for node in _nodes(tree):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = (node.get("function") or {}).get("function_name", "?")
            if name not in READ_ONLY_TABLE_FUNCTIONS:
                raise QueryRefused(
                    f"query refused: table function {name}() is not allowed "
                    f"(allowed: {', '.join(sorted(READ_ONLY_TABLE_FUNCTIONS))})"
                )
        elif kind == "BASE_TABLE":
            # A quoted path in FROM is a file scan. Refused outright: an S3 path is checked
            # against allowed_directories as text, so `<data>/../elsewhere` would pass.
            if any(c in node.get("table_name", "") for c in "/\\:."):
                raise QueryRefused(
                    f"query refused: {node.get('table_name')} is a file; only the catalog's "
                    "tables and views can be read here"
                )
            # `a.b` names schema a (or database a); either must not be another database.
            named = {node.get("catalog_name", ""), node.get("schema_name", "")}
            hidden = any(n.startswith("__ducklake_metadata") for n in named)  # DuckLake's own
            if hidden or named & other_databases or node.get("catalog_name", "") not in READ_ONLY_DATABASES:
                raise QueryRefused(
                    f"query refused: {node.get('table_name', '?')} is not in the catalog"
                )


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a json_serialize_sql tree."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
