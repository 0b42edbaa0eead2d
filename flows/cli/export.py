"""`dawnchorus export FORMAT --results R --out DIR [filters]` (`flows.outputs.exports`)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from connectors.errors import ConfigError
from connectors.location import ResultsLocation
from flows.outputs.exports import FORMATS, ExportFilters, export


def cmd_export(args: argparse.Namespace) -> int:
    filters = ExportFilters(
        config_fingerprint=args.config_fingerprint,
        deployments=tuple(args.deployment) if args.deployment else None,
        species=tuple(args.species) if args.species else None,
        date_from=_date(args.date_from, "--from"), date_to=_date(args.date_to, "--to"),
        threshold=args.threshold, location_threshold=args.location_threshold,
        light_classes=_light_classes(args.light_class), qc=args.qc,
    )
    results = ResultsLocation.resolve(args.results, args.catalog)
    summary = export(args.format, results, args.out, filters, occasion=args.occasion,
                     days=args.days, title=args.title, contributor=args.contributor)
    left_out = {k: v for k, v in summary.items() if k.endswith(("_coordinates", "_start_time")) and v}
    print(f"{args.format}: {summary['detections']} detections, {len(summary['files'])} files "
          f"under {args.out}" + (f" (left out: {left_out})" if left_out else ""))
    if summary.get("withheld"):  # the privacy gate (docs/privacy.md)
        print(summary["withheld"])
    return 0


#: window_light's classes (sql/views/window_light.sql, docs/time.md).
LIGHT_CLASSES = ("day", "civil_twilight", "nautical_twilight", "astronomical_twilight", "night",
                 "polar_day", "polar_night")


def _light_classes(given: list[str] | None) -> tuple[str, ...] | None:
    if not given:
        return None
    for name in given:
        if name not in LIGHT_CLASSES:
            raise ConfigError(f"--light-class {name!r}: expected one of {', '.join(LIGHT_CLASSES)}")
    return tuple(given)


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None


def add_export_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="detections as Raven tables, Audacity labels, CSV, "
                                      "a Camtrap DP package or occupancy histories")
    p.add_argument("format", choices=FORMATS)
    p.add_argument("--results", required=True, help="results root: a local folder or s3://...")
    p.add_argument("--catalog", help="the catalog, as the run named it (default: "
                                     "<results>/catalog.sqlite)")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--deployment", action="append", help="only this deployment (repeatable)")
    p.add_argument("--species", action="append", help="only this species, scientific or common "
                                                       "name (repeatable)")
    p.add_argument("--from", dest="date_from", help="first local date, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", help="last local date, YYYY-MM-DD")
    p.add_argument("--light-class", action="append", metavar="CLASS",
                   help="only windows in this light (repeatable): " + ", ".join(LIGHT_CLASSES)
                        + "; deployments without coordinates have none (docs/time.md)")
    p.add_argument("--fingerprint", "--config-fingerprint", dest="config_fingerprint", metavar="PREFIX", help="results of this fingerprint or a unique prefix (default: the only one, else the pinned one, else the newest, said in a note)")
    p.add_argument("--threshold", type=float, help="detection threshold (default: the catalog's)")
    p.add_argument("--location-threshold", type=float,
                   help="location filter threshold (default: the catalog's; 0 keeps every species)")
    p.add_argument("--occasion", choices=["night", "day"], default="night",
                   help="occupancy: an occasion is a night or a local day")
    p.add_argument("--days", type=int, default=1, help="occupancy: nights or days per occasion")
    p.add_argument("--qc", choices=["exclude", "include"], default="exclude",
                   help="occupancy: windows that failed quality (silent, dropout, clipped) are "
                        "left out of effort and detections (exclude, the default) or kept")
    p.add_argument("--title", help="camtrap-dp: project title")
    p.add_argument("--contributor", help="camtrap-dp: contact person or organisation")
    p.set_defaults(func=cmd_export)
