"""Catalog maintenance: merge small data files, expire old snapshots, delete the files no kept
snapshot needs and the orphans of killed commits (`Catalog.maintain`, `dawnchorus maintain`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import duckdb

from connectors.catalog.connection import LAKE, _Transaction
from connectors.catalog.schema import put_setting, setting
from connectors.catalog.sql_files import sql_text
from connectors.errors import ConfigError
from connectors.location import ResultsLocation

log = logging.getLogger("connectors.catalog")

#: Catalog setting: days of snapshots `maintain` keeps for time travel (default 30).
SNAPSHOT_RETENTION_KEY = "snapshot_retention_days"
DEFAULT_SNAPSHOT_RETENTION_DAYS = 30.0
#: Catalog setting: when the catalog was created (ISO 8601); maintenance deletes as orphans only
#: files written since, never an older catalog's.
CREATED_AT_KEY = "catalog_created_at"
#: Files merged away, expired or orphaned are deleted only once this old, so a reader that was
#: scanning them when maintenance began keeps working (DuckLake's own advice).
DEFAULT_DELETE_GRACE = timedelta(hours=1)


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


def maintain(con: duckdb.DuckDBPyConnection, location: ResultsLocation, data_path: Path | None,
             *, retention: timedelta | None = None, keep_for_readers: bool = True,
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
        days = setting(con, SNAPSHOT_RETENTION_KEY)
        retention = timedelta(days=float(days) if days else DEFAULT_SNAPSHOT_RETENTION_DAYS)
    if retention < timedelta(0) or orphan_grace < timedelta(0):
        raise ConfigError(f"retention ({retention}) and grace ({orphan_grace}) must not be negative")
    before = DataFiles.under(data_path)
    born = created_at(con)  # recorded before any snapshot expires (orphans are judged by it)
    deleted = _call(con, "writes/maintain_cleanup_files") if keep_for_readers else []
    merged = _call(con, "writes/maintain_merge_files")
    expired = _call(con, "writes/maintain_expire_snapshots",
                    {"older_than": datetime.now(timezone.utc) - retention})
    if not keep_for_readers:
        deleted = _call(con, "writes/maintain_cleanup_files")
    orphans = _delete_orphans(con, location, data_path, orphan_grace, born)
    report = MaintenanceReport(
        before=before, after=DataFiles.under(data_path), tables_merged=len(merged),
        snapshots_expired=len(expired), files_deleted=len(deleted), orphans_deleted=orphans,
    )
    log.info("catalog %s maintained: %s", location.describe(), report)
    return report


def _delete_orphans(con: duckdb.DuckDBPyConnection, location: ResultsLocation,
                    data_path: Path | None, grace: timedelta, born: datetime) -> int:
    """Delete the catalog's orphaned data files last written more than `grace` ago (local
    data only: on S3 a bucket lifecycle rule is the place for stray objects).

    Only files this catalog can have written count: written since it was created (`born`, see
    `created_at`). A file older than the catalog belongs to another one (a catalog lost and
    created afresh over its data, a restored backup's data) and is never touched.
    """
    if data_path is None:
        log.info("catalog %s: data on S3, orphaned files are not looked for",
                 location.describe())
        return 0
    cutoff = (datetime.now(timezone.utc) - grace).timestamp()
    deleted, foreign = 0, 0
    for (path,) in _call(con, "reads/maintain_list_orphans"):
        file = Path(path)
        try:
            if not file.parent.resolve().is_relative_to(data_path):
                continue
            written = file.stat().st_mtime
            if written < born.timestamp():
                foreign += 1
            elif written <= cutoff:
                file.unlink()
                deleted += 1
        except FileNotFoundError:
            continue
    if foreign:
        log.warning("catalog %s: %d data files under %s are older than the catalog and unknown "
                    "to it (another catalog's?): left in place", location.describe(), foreign,
                    data_path)
    return deleted


def created_at(con: duckdb.DuckDBPyConnection) -> datetime:
    """When this catalog was created: its `catalog_created_at` setting, recorded from its
    earliest snapshot the first time this is asked (a catalog whose first snapshots have expired
    dates from its earliest one left: later, so it deletes less, never more)."""
    recorded = setting(con, CREATED_AT_KEY)
    if recorded:
        return datetime.fromisoformat(recorded)
    (earliest,) = con.execute(f"select min(snapshot_time) from ducklake_snapshots('{LAKE}')").fetchone()
    born = earliest if earliest is not None else datetime.now(timezone.utc)
    if born.tzinfo is None:
        born = born.replace(tzinfo=timezone.utc)
    with _Transaction(con, {}):
        put_setting(con, CREATED_AT_KEY, born.isoformat())
    return born


def _call(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> list[tuple]:
    """Rows of a maintenance call (DuckLake's functions run their own transactions)."""
    return con.execute(sql_text(name), params).fetchall()
