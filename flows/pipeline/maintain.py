"""`dawnchorus maintain`: keep a results folder's catalog at few files (also run after each run).

Merges the small Parquet files that commits leave into few per table and partition, expires
snapshots older than the retention (the catalog's `snapshot_retention_days`, 30 by default),
deletes the files no kept snapshot needs, and deletes orphaned files of killed commits. It holds
the results folder's run lock, so it never runs beside a run's commits; readers keep working
(`connectors.catalog.Catalog.maintain` says how).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.catalog import Catalog, MaintenanceReport
from connectors.catalog.guard import refuse_lost_catalog
from connectors.location import ResultsLocation
from connectors.catalog.locks import run_lock
from flows.pipeline.solar import update_solar

log = logging.getLogger(__name__)


def maintain_results(results: str | ResultsLocation, *, catalog: str | None = None,
                     retention_days: float | None = None,
                     keep_for_readers: bool = True, solar: bool = False) -> MaintenanceReport:
    """Maintain the catalog of `results` under its run lock (re-entered by a run that holds it;
    on a Postgres catalog, a lease of its own beside the runs', as every writer's)."""
    location = ResultsLocation.resolve(results, catalog)
    refuse_lost_catalog(location)  # before the lock file: nothing is created beside lost data
    retention = timedelta(days=retention_days) if retention_days is not None else None
    run_id = f"maintain-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    with run_lock(location, run_id):
        if solar:  # `dawnchorus maintain`: a catalog from before solar time gains it (a run
            # computes its own before maintaining)

            update_solar(location)
        with Catalog(location) as c:
            return c.maintain(retention=retention, keep_for_readers=keep_for_readers)


def report_dict(report: MaintenanceReport) -> dict[str, Any]:
    """The report as JSON-ready numbers (files and bytes before and after, what was removed)."""
    return dataclasses.asdict(report)
