"""`dawnchorus density`: call density per deployment and night with a 95 % interval
(`flows.outputs.density`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from connectors.location import ResultsLocation
from flows.outputs.density import PER_BIN, density, write_sample


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def cmd_density(args: argparse.Namespace) -> int:
    location = ResultsLocation.resolve(args.results, args.catalog)
    result = density(location, args.label, config_fingerprint=args.config_fingerprint,
                     per_bin=args.per_bin, by_night=args.by_night)
    judged = sum(p + a for p, a in result.verdicts_per_bin)
    print(f"{result.label} under {result.fingerprint}: {len(result.bounds) - 1} score bins "
          f"(bounds {', '.join(f'{b:.3g}' for b in result.bounds)}), sample of "
          f"{len(result.sample)} windows, {judged} judged")
    for b, (p, a) in enumerate(result.verdicts_per_bin):
        print(f"  bin {b + 1}: {p} present, {a} absent")
    if result.outside_sample:
        print(f"  ({result.outside_sample} verdicts on windows outside the sample left out)")
    for row in result.rows:
        print(f"{row.group}: {row.windows} windows, density {_percent(row.density)} "
              f"(95 % interval {_percent(row.low)} - {_percent(row.high)})")
    if args.draw:
        n = write_sample(location, result, Path(args.draw))
        print(f"sample: {n} windows still to judge written to {args.draw} "
              f"(fill in Verdict, then: dawnchorus review --results {args.results} --import-raven "
              f"{args.draw})")
    return 0


def add_density_parser(sub: Any) -> None:
    p = sub.add_parser("density", help="fraction of windows holding a sound, per deployment "
                                       "and night, from a stratified review sample (95%% interval)")
    p.add_argument("--results", required=True, help="results root: a local folder or s3://...")
    p.add_argument("--catalog", help="the catalog, as the run named it: a SQLite file or "
                                     "postgresql://... (default: <results>/catalog.sqlite)")
    p.add_argument("--label", required=True, help="the sound (a predictions label)")
    p.add_argument("--fingerprint", "--config-fingerprint", dest="config_fingerprint", metavar="PREFIX", help="its predictions' fingerprint (default: the only one)")
    p.add_argument("--per-bin", type=int, default=PER_BIN,
                   help=f"sample windows per score bin (default {PER_BIN})")
    p.add_argument("--by-night", action="store_true", help="also per deployment and night")
    p.add_argument("--draw", metavar="TABLE.txt",
                   help="write the sample's unjudged windows as a review table")
    p.set_defaults(func=cmd_density)
