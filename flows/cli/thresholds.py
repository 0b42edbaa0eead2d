"""`dawnchorus thresholds`: read or set a catalog's defaults (the detection and location-filter
thresholds, and the fingerprint commands read when none is named), recorded with who changed
them and when (table setting_changes)."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from connectors.errors import ConfigError

#: Flag name -> catalog setting (connectors.catalog.schema's keys; not imported here, so that
#: building the parser loads no DuckDB).
KEYS = {"detection": "detection_threshold", "location": "location_filter_threshold"}
FINGERPRINT_KEY = "default_fingerprint"
MEANING = {
    "detection": "a classify answer is a detection when its score reaches this (species with a "
                 "calibrated threshold use theirs)",
    "location": "a species is hidden where BirdNET's occurrence at the site and week is below "
                "this (0 turns the location filter off)",
}


def _probability(flag: str, value: float | None) -> str | None:
    if value is None:
        return None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--{flag} {value:g}: expected a probability in [0, 1]")
    return repr(float(value))


def cmd_thresholds(args: argparse.Namespace) -> int:
    from connectors.catalog import Catalog
    from connectors.location import ResultsLocation

    location = ResultsLocation.resolve(args.results, args.catalog)
    if location.exists() is False:
        raise ConfigError(f"no catalog at {location.describe()}: run `dawnchorus run` first")
    changes = {KEYS[flag]: v for flag in KEYS
               if (v := _probability(flag, getattr(args, flag))) is not None}
    with Catalog(location) as catalog:
        if args.fingerprint is not None:
            from connectors.analyses import resolve_fingerprint

            known = catalog.fingerprints()
            if not known:
                raise ConfigError("--fingerprint: the catalog holds no results yet")
            changes[FINGERPRINT_KEY] = resolve_fingerprint(known, args.fingerprint,
                                                           "thresholds --fingerprint")
        if changes:
            catalog.change_settings(changes, args.by or getpass.getuser())
        for flag, key in KEYS.items():
            history = catalog.setting_changes(key)
            last = (f"set by {history[0].changed_by} at {history[0].changed_at:%Y-%m-%d %H:%M} UTC"
                    if history else "the catalog's default")
            print(f"{flag:9} {catalog.setting(key)}  ({last}): {MEANING[flag]}")
        history = catalog.setting_changes(FINGERPRINT_KEY)
        pinned = catalog.setting(FINGERPRINT_KEY)
        last = (f"pinned by {history[0].changed_by} at {history[0].changed_at:%Y-%m-%d %H:%M} UTC"
                if history else "none pinned: the one with the newest run")
        print(f"fingerprint {pinned or '-'}  ({last}): what query, report, export and "
              "review read when none is named among several")
    return 0


def add_thresholds_parser(sub: Any) -> None:
    p = sub.add_parser("thresholds", help="read or set the catalog's default thresholds and fingerprint",
                       description="Print the catalog's detection threshold and location-filter "
                                   "threshold and the pinned fingerprint, who set them and when; "
                                   "--detection / --location / --fingerprint set them (recorded "
                                   "with --by, else your user name).")
    p.add_argument("--results", required=True, help="results root: a local folder or s3://...")
    p.add_argument("--catalog", help="the catalog, as the run named it (default: "
                                     "<results>/catalog.sqlite)")
    p.add_argument("--detection", type=float, metavar="P", help="set the detection threshold")
    p.add_argument("--location", type=float, metavar="P",
                   help="set the location-filter threshold (0: off)")
    p.add_argument("--fingerprint", metavar="PREFIX",
                   help="pin the fingerprint commands read when none is named (a unique prefix)")
    p.add_argument("--by", help="who is changing them (default: your user name)")
    p.set_defaults(func=cmd_thresholds)
