"""`dawnchorus maintain`: keep a results folder's catalog at few files (`flows.pipeline.maintain`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from flows.pipeline.maintain import maintain_results, report_dict


def cmd_maintain(args: argparse.Namespace) -> int:
    report = maintain_results(args.results, catalog=args.catalog,
                              retention_days=args.retention_days, keep_for_readers=not args.now,
                              solar=True)
    print(json.dumps(report_dict(report), indent=2))
    return 0


def add_maintain_parser(sub: Any) -> None:
    """The `maintain` subcommand (`flows/cli/main.py` adds it)."""
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
