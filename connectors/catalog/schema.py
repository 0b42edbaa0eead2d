"""The catalog's schema: versioned migrations (`sql/migrations/`), the views (`sql/views/`) and
the catalog settings that record both; opening a writer upgrades an older catalog, a newer one is
refused."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import duckdb

from connectors.catalog.connection import LAKE, _Transaction
from connectors.catalog.sql_files import folder_files, sql_statements, sql_text
from connectors.errors import ConfigError
from connectors.location import ResultsLocation
from connectors.tables import SETTINGS, SettingRow

log = logging.getLogger("connectors.catalog")

SCHEMA_VERSION_KEY = "schema_version"
VIEWS_DIGEST_KEY = "views_sha256"
DETECTION_THRESHOLD_KEY = "detection_threshold"
#: The fingerprint commands read when none is named (`dawnchorus thresholds --fingerprint`);
#: unset: the one with the newest run.
DEFAULT_FINGERPRINT_KEY = "default_fingerprint"
LOCATION_THRESHOLD_KEY = "location_filter_threshold"
#: Set only by a reader given its own threshold: the detections view's threshold_source for rows
#: that passed it ("query"; rows that passed the catalog's threshold say "default").
DETECTION_THRESHOLD_SOURCE_KEY = "detection_threshold_source"

#: The migrations, in order; the catalog's schema version is the number applied.
MIGRATIONS: tuple[str, ...] = tuple(folder_files("migrations"))
SCHEMA_VERSION = len(MIGRATIONS)
VIEWS: tuple[str, ...] = tuple(folder_files("views"))


def views_digest() -> str:
    text = "\n".join(sql_text(v) for v in VIEWS)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
    return _schema_state(con)[0]


def _schema_state(con: duckdb.DuckDBPyConnection) -> tuple[int, str | None]:
    """(schema version, views digest) in one read of settings: what every open checks. Reading
    the settings table costs tens of ms a time on DuckLake (its snapshot and a Parquet file);
    listing the catalog's tables (a scan of all their metadata, 50 ms) happens only when every
    version's settings table (migration 0001) is missing."""
    def read() -> dict[str, str]:
        return dict(con.execute(sql_text("reads/schema_state"),
                                {"version_key": SCHEMA_VERSION_KEY, "digest_key": VIEWS_DIGEST_KEY}).fetchall())

    try:
        rows = read()
    except duckdb.CatalogException:
        tables = con.execute(
            "select count(*) from duckdb_tables() where database_name = ?", [LAKE]
        ).fetchone()[0]
        if tables == 0:
            return 0, None
        rows = read()  # made by another process between the two reads (else not ours: raises)
    version = int(rows[SCHEMA_VERSION_KEY]) if SCHEMA_VERSION_KEY in rows else 1  # version 1 recorded none
    return version, rows.get(VIEWS_DIGEST_KEY)


def setting(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute(sql_text("reads/get_setting"), {"key": key}).fetchone()
    return row[0] if row else None


def _refuse_newer(version: int, where: ResultsLocation) -> None:
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"catalog {where.describe()} has schema version {version}, newer than this "
            f"dawnchorus understands ({SCHEMA_VERSION}): upgrade dawnchorus to open it"
        )


def _needs_upgrade(con: duckdb.DuckDBPyConnection, state: tuple[int, str | None] | None = None) -> bool:
    version, digest = state or _schema_state(con)
    return version < SCHEMA_VERSION or digest != views_digest()


def put_setting(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.register("_setting", SETTINGS.to_arrow([SettingRow(key, value)]))
    try:
        for statement in sql_statements("writes/set_setting"):
            con.execute(statement)
    finally:
        con.unregister("_setting")


def upgrade(con: duckdb.DuckDBPyConnection, location: ResultsLocation) -> None:
    """Apply the migrations this catalog lacks, one transaction each; refresh the views.

    A new catalog gets every migration and the views in one transaction: the same tables,
    views and settings as one upgraded step by step, made at once (a tenth of the time: each
    step's transaction and version read cost more than its statements) and never half made."""
    version, digest = _schema_state(con)
    if version == SCHEMA_VERSION and digest == views_digest():
        return  # what almost every open finds
    if version == 0:
        _retrying(_create, con)
        version = _schema_version(con)
    while True:
        _refuse_newer(version, location)
        if version == SCHEMA_VERSION:
            break
        number = version + 1
        log.info("catalog %s: migrating to schema version %d (%s)", location.describe(),
                 number, MIGRATIONS[number - 1])
        _retrying(_migrate_to, con, number)
        version = _schema_version(con)
    if setting(con, VIEWS_DIGEST_KEY) != views_digest():
        _retrying(_refresh_views, con)


def _execute(con: duckdb.DuckDBPyConnection, *files: str) -> None:
    """Every statement of these SQL files, in order."""
    for name in files:
        for statement in sql_statements(name):
            con.execute(statement)


def _write_views(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, *VIEWS)
    put_setting(con, VIEWS_DIGEST_KEY, views_digest())


def _migrate_to(con: duckdb.DuckDBPyConnection, number: int) -> None:
    with _Transaction(con, {}):
        if _schema_version(con) >= number:
            return  # another process got there first
        _execute(con, MIGRATIONS[number - 1])
        put_setting(con, SCHEMA_VERSION_KEY, str(number))


def _create(con: duckdb.DuckDBPyConnection) -> None:
    with _Transaction(con, {}):
        if _schema_version(con) != 0:
            return  # another process created it first: the step-by-step path checks the rest
        _execute(con, *MIGRATIONS)
        put_setting(con, SCHEMA_VERSION_KEY, str(SCHEMA_VERSION))
        _write_views(con)


def _refresh_views(con: duckdb.DuckDBPyConnection) -> None:
    with _Transaction(con, {}):
        if setting(con, VIEWS_DIGEST_KEY) == views_digest():
            return
        _write_views(con)


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
