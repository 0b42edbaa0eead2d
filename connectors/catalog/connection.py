"""A DuckDB connection to the catalog: the offline extensions, the S3 secret, ATTACH of the
DuckLake catalog as `lake`, transactions, and retrying while another process commits."""

from __future__ import annotations

import atexit
import logging
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import duckdb
import duckdb_extensions  # the offline extension loader (duckdb-extension-* wheels)
import pyarrow as pa

from connectors.errors import ConfigError, DiskFull, disk_full
from connectors.location import ResultsLocation

log = logging.getLogger("connectors.catalog")
T = TypeVar("T")

LAKE = "lake"
#: DuckLake data inlining stays off: flushing inlined rows to Parquet drops the inlined table, and
#: a reader connection opened before the flush then fails every query ("Failed to read inlined
#: data ... does not exist", DuckLake d8a1881e). Few files come from batched commits (the driver
#: commits several whole units per transaction) and `Catalog.maintain` instead.
INLINE_ROW_LIMIT = 0
RESULTS_SECRET = "dawnchorus_results"
#: httpfs settings that hold credentials (copied from the AWS_* variables when it loads).
_S3_CREDENTIAL_SETTINGS = ("s3_access_key_id", "s3_secret_access_key", "s3_session_token")
#: Waits before each retry of a catalog open or read that met another writer's commit (about
#: 25 s in all, with jitter). SQLite takes one writer at a time and the sqlite extension does not
#: wait for a busy database: the second process fails with "database is locked". Runs, the review
#: page and calibrate use the same catalog at once; this (and `Catalog._write`) makes that safe.
LOCKED_RETRY_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8)


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


#: The extension files this process has loaded with DuckDB's signature check, each with the
#: identity (inode, size, mtime) it had when it passed. The check hashes the whole file (about
#: 70 MB for ducklake and sqlite) on every new DuckDB instance: 0.2-0.35 s, most of the cost of
#: opening a catalog (measured 2026-12-07). A later connection whose files are still the ones
#: that passed loads them by path without checking them again.
_VERIFIED: dict[str, tuple[str, tuple[int, int, int]]] = {}


def _identity(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _still_verified(extensions: list[str]) -> bool:
    for name in extensions:
        entry = _VERIFIED.get(name)
        try:
            if entry is None or _identity(entry[0]) != entry[1]:
                return False
        except OSError:
            return False
    return True


def _load_checked(con: duckdb.DuckDBPyConnection, extensions: list[str]) -> None:
    """Install each extension from its wheel into the extension folder, load it with DuckDB's
    signature check, and remember the file that passed."""
    for extension in extensions:
        duckdb_extensions.import_extension(extension, con=con)  # INSTALL from the wheel's file
        con.execute(f"LOAD {extension}")
    rows = con.execute("select extension_name, aliases, install_path from duckdb_extensions() "
                       "where loaded").fetchall()
    for extension in extensions:
        for name, aliases, path in rows:
            if path and (extension == name or extension in (aliases or [])):
                _VERIFIED[extension] = (path, _identity(path))


def connect_duckdb(location: ResultsLocation | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the extensions `location` needs loaded from their wheels:
    ducklake and sqlite always, postgres for a Postgres catalog, httpfs for data on S3.

    The first connection of a process loads them with DuckDB's signature check; later ones load
    the same, unchanged files by path without it (`_VERIFIED`). Nothing else can be loaded
    unsigned: extensions are never downloaded, the only files in the extension folder are the
    ones installed here, and the reader's lock-down (`enable_external_access = false`) refuses
    any LOAD a query could ask for."""
    extensions = ["ducklake", "sqlite"]
    if location is not None and location.catalog_kind == "postgres":
        extensions.append("postgres")
    if location is not None and location.data_on_s3:
        extensions.append("httpfs")
    checked = _still_verified(extensions)
    con = duckdb.connect(config={
        "extension_directory": _extension_dir(), "autoinstall_known_extensions": False,
        # DuckDB's default spill folder is `.tmp` under the working directory: not ours to fill.
        "temp_directory": _spill_dir(),
        "allow_unsigned_extensions": checked,
    })
    # No progress bar: DuckDB draws it on stdout once a query runs past 2 s, into whatever the
    # caller prints there (`dawnchorus query --format csv > file`).
    con.execute("SET enable_progress_bar = false")
    if checked:
        for extension in extensions:
            con.execute(f"LOAD {_quote(_VERIFIED[extension][0])}")
    else:
        _load_checked(con, extensions)
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
            if disk_full(exc):
                raise DiskFull(full_place(location), "opening the catalog") from None
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
            if exc_type:
                _rollback(self.con)
            else:
                try:
                    self.con.execute("COMMIT")
                except BaseException:
                    # A commit that failed (a full disk, a lost connection) may leave the
                    # transaction open or already ended: end it either way, keep the first error.
                    _rollback(self.con)
                    raise
        finally:
            self._unregister()

    def _unregister(self) -> None:
        for name in self.tables:
            self.con.unregister(name)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:  # "no transaction is active": the failure ended it already
        log.debug("rollback after a failed transaction: %s", _first_line(exc))


def full_place(location: ResultsLocation) -> str:
    """The folder a full-disk error names: of the catalog's folder and the data folder (the
    local ones), the one with the least space left; the results folder when both share a disk."""
    places = [p for p in (location.catalog_path.parent if location.catalog_path else None,
                          location.root) if p is not None]
    if not places:
        return location.data_path
    free = []
    for place in places:
        probe = place
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            free.append((shutil.disk_usage(probe).free, os.stat(probe).st_dev, place))
        except OSError:
            continue
    if not free:
        return str(places[0])
    if location.root is not None and len({dev for _, dev, _ in free}) == 1:
        return str(location.root)
    return str(min(free, key=lambda item: item[0])[2])
