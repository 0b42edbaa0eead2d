"""`dawnchorus maintain`: keep a results folder's catalog at few files (also run after each run).

Merges the small Parquet files that commits leave into few per table and partition, expires
snapshots older than the retention (the catalog's `snapshot_retention_days`, 30 by default),
deletes the files no kept snapshot needs, and deletes orphaned files of killed commits. It holds
the results folder's run lock, so it never runs beside a run's commits; readers keep working
(`connectors.catalog.Catalog.maintain` says how).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.catalog import Catalog, MaintenanceReport
from connectors.location import ResultsLocation
from connectors.locks import run_lock

log = logging.getLogger(__name__)


def maintain_results(results: str | ResultsLocation, *, catalog: str | None = None,
                     retention_days: float | None = None,
                     keep_for_readers: bool = True) -> MaintenanceReport:
    """Maintain the catalog of `results` under its run lock (re-entered by a run that holds it;
    on a Postgres catalog, a lease of its own beside the runs', as every writer's)."""
    location = ResultsLocation.resolve(results, catalog)
    retention = timedelta(days=retention_days) if retention_days is not None else None
    run_id = f"maintain-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    with run_lock(location, run_id), Catalog(location) as c:
        return c.maintain(retention=retention, keep_for_readers=keep_for_readers)


def report_dict(report: MaintenanceReport) -> dict[str, Any]:
    """The report as JSON-ready numbers (files and bytes before and after, what was removed)."""
    return dataclasses.asdict(report)


def cmd_maintain(args: argparse.Namespace) -> int:
    report = maintain_results(args.results, catalog=args.catalog,
                              retention_days=args.retention_days, keep_for_readers=not args.now)
    print(json.dumps(report_dict(report), indent=2))
    return 0


def add_maintain_parser(sub: Any) -> None:
    """The `maintain` subcommand (flows/cli.py adds it)."""
    p = sub.add_parser("maintain", help="merge small catalog files, expire old snapshots, "
                                        "delete unneeded and orphaned files")
    p.add_argument("--results", required=True, help="results folder (catalog.sqlite + data/)")
    p.add_argument("--catalog", help="the catalog, as the run named it (default: "
                                     "<results>/catalog.sqlite)")
    p.add_argument("--retention-days", type=float,
                   help="keep snapshots this many days (default: the catalog's "
                        "snapshot_retention_days setting, else 30)")
    p.add_argument("--now", action="store_true",
                   help="delete replaced files at once instead of at the next maintenance "
                        "(only when no query is reading the catalog)")
    p.set_defaults(func=cmd_maintain)
