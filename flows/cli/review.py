"""`dawnchorus review` and `dawnchorus calibrate`: their arguments and what they do.

`flows/cli/main.py` adds the two subcommands through `add_review_parser` and `add_calibrate_parser`;
heavy imports wait until a command runs.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import sys
from urllib.parse import urlencode

from typing import TYPE_CHECKING

from connectors.errors import ConfigError

if TYPE_CHECKING:
    from flows.review.service import ReviewSettings

log = logging.getLogger(__name__)


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): the page asks for one
        return ""


def add_review_parser(sub: argparse._SubParsersAction) -> None:
    from flows.review.defaults import DEFAULT_HOST, DEFAULT_MIN_REVIEWS, DEFAULT_PORT

    p = sub.add_parser("review", help="review detections in the browser (or round-trip them "
                                      "through a Raven selection table)")
    p.add_argument("--results", required=True, help="results folder (catalog.sqlite + data/)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to serve on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to serve on (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="with --host beyond loopback: another name or address clients reach this "
                        "machine by (repeatable; the bound address and the machine's own name "
                        "are always allowed)")
    p.add_argument("--reviewer", default=_default_reviewer(),
                   help="name recorded with each verdict (default: your login name)")
    p.add_argument("--min-score", type=float, default=0.1,
                   help="lowest score the queue offers (default 0.1; calibration needs low scores)")
    p.add_argument("--bins", type=int, default=10,
                   help="score bins the queue samples from in turn (default 10)")
    p.add_argument("--goal", type=int, default=DEFAULT_MIN_REVIEWS,
                   help=f"verdicts per species to aim for (default {DEFAULT_MIN_REVIEWS}, "
                        "calibrate's --min-reviews)")
    p.add_argument("--export-raven", metavar="FILE",
                   help="write the reviews as a Raven selection table (Verdict column) and exit")
    p.add_argument("--pending", type=int, default=0, metavar="N",
                   help="with --export-raven: also the next N unreviewed detections per species")
    p.add_argument("--import-raven", metavar="FILE",
                   help="read verdicts from a Raven selection table's Verdict column and exit")
    p.add_argument("--fingerprint", help="only this config fingerprint (export and import)")
    p.add_argument("--species", action="append", default=[], metavar="LABEL",
                   help="a target list (repeatable): the page offers only these, in this order "
                        "(default: every species, the one with most detections first)")
    p.add_argument("--location-threshold", type=float, metavar="P",
                   help="location-filter threshold for the queue, as query's (default: the "
                        "catalog's; 0 offers every species)")
    p.add_argument("--classifier", metavar="NAME",
                   help="open the page on this classifier's active-learning queue (its unjudged "
                        "windows, the most uncertain and the top-scoring in turn; see "
                        "docs/learn.md)")
    p.add_argument("--retrain-every", type=int, metavar="N",
                   help="retrain a classifier (train, store, apply, as the page's Retrain button) "
                        "as soon as the verdicts on its label since its newest version reach N "
                        "(default: off, only the button)")
    p.set_defaults(func=cmd_review)


def add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    from flows.review.defaults import DEFAULT_MIN_REVIEWS, DEFAULT_PRECISION

    p = sub.add_parser("calibrate", help="per-species thresholds for a target precision, fitted "
                                         "to the reviews (Wood & Kahl 2024)")
    p.add_argument("--results", required=True, help="results folder (catalog.sqlite + data/)")
    p.add_argument("--precision", type=float, default=DEFAULT_PRECISION,
                   help=f"probability of being correct at the threshold (default {DEFAULT_PRECISION})")
    p.add_argument("--min-reviews", type=int, default=DEFAULT_MIN_REVIEWS,
                   help=f"fewest verdicts a species needs (default {DEFAULT_MIN_REVIEWS})")
    p.set_defaults(func=cmd_calibrate)


def _check_review_args(args: argparse.Namespace) -> None:
    if not 0.0 <= args.min_score < 1.0:
        raise ConfigError(f"--min-score {args.min_score}: expected a score in [0, 1)")
    if not 1 <= args.bins <= 100:
        raise ConfigError(f"--bins {args.bins}: expected 1 to 100")
    if args.goal < 1 or args.pending < 0:
        raise ConfigError("--goal must be at least 1 and --pending at least 0")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected 0 to 65535")
    if args.location_threshold is not None and not 0.0 <= args.location_threshold <= 1.0:
        raise ConfigError(f"--location-threshold {args.location_threshold}: expected a "
                          "probability in [0, 1]")
    if args.export_raven and args.import_raven:
        raise ConfigError("--export-raven and --import-raven: one at a time")
    if args.retrain_every is not None and not 1 <= args.retrain_every <= 10_000:
        raise ConfigError(f"--retrain-every {args.retrain_every}: expected 1 to 10000 verdicts")


def cmd_review(args: argparse.Namespace) -> int:
    from connectors.catalog import results_root

    _check_review_args(args)
    results = str(results_root(args.results))
    if not (results_root(args.results) / "catalog.sqlite").exists():
        raise ConfigError(f"no catalog in {results}: run `dawnchorus run` first")
    if args.export_raven:
        from flows.review.exchange import export_reviews

        done = export_reviews(results, args.export_raven, fingerprint=args.fingerprint,
                              pending_per_species=args.pending, min_score=args.min_score,
                              score_bins=args.bins)
        print(f"{args.export_raven}: {done.rows} selections ({done.verdicts} with verdicts, "
              f"{done.pending} to review)"
              + (f"; {done.left_out} verdicts on recordings that have since changed left out"
                 if done.left_out else ""))
        return 0
    if args.import_raven:
        return _import(args, results)
    return _serve(args, results)


def _import(args: argparse.Namespace, results: str) -> int:
    from connectors.errors import InputError
    from flows.review.exchange import import_reviews

    if not args.reviewer.strip():
        raise ConfigError("--reviewer: needed for rows without a Reviewer")
    try:
        done = import_reviews(results, args.import_raven, reviewer=args.reviewer,
                              fingerprint=args.fingerprint)
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    for problem in done.problems:
        print(problem, file=sys.stderr)
    print(f"{args.import_raven}: {done.imported} verdicts imported, {done.unchanged} unchanged, "
          f"{done.blank} rows without a verdict, {len(done.problems)} refused")
    return 1 if done.problems else 0


def _serve(args: argparse.Namespace, results: str) -> int:
    from flows.review.service import ReviewSettings

    settings = ReviewSettings(
        results=results, reviewer=args.reviewer, min_score=args.min_score,
        score_bins=args.bins, goal=args.goal, location_threshold=args.location_threshold,
        species=tuple(s.strip() for s in args.species if s.strip()),
        retrain_every=args.retrain_every)
    return serve_page(settings, host=args.host, port=args.port,
                      allowed_hosts=tuple(args.allowed_host), classifier=args.classifier)


def serve_page(settings: "ReviewSettings", *, host: str, port: int,
               allowed_hosts: tuple[str, ...] = (), classifier: str | None = None,
               mark: tuple[str, list[str]] | None = None) -> int:
    """Serve the review page until Ctrl-C, printing the address to open: on `classifier`'s
    active-learning queue, or on `mark` = (label, window keys), a list to mark as examples."""
    from flows.review.server import ReviewServer, is_loopback
    from flows.review.service import BadRequest, NotInCatalog, ReviewService

    service = ReviewService(settings)
    try:
        # Beyond loopback the page needs a secret that only this terminal shows: a fresh random
        # access key per start (or DAWNCHORUS_REVIEW_KEY, to keep one across restarts).
        access_key = None
        if not is_loopback(host):
            access_key = os.environ.get("DAWNCHORUS_REVIEW_KEY") or secrets.token_urlsafe(24)
            if len(access_key) < 16:
                raise ConfigError("DAWNCHORUS_REVIEW_KEY: at least 16 characters")
        page = ""
        if classifier:
            try:
                page = "?" + urlencode({"classifier": service.classifier(classifier)["name"]})
            except (BadRequest, NotInCatalog) as exc:
                raise ConfigError(f"--classifier: {exc}") from None
        if mark:
            label, keys = mark
            windows = ",".join(keys)
            try:  # refuse here, in one line, what the page would refuse
                service.mark_list(label, service.mark_keys(windows))
            except (BadRequest, NotInCatalog) as exc:
                raise ConfigError(f"--review: {exc}") from None
            page = "?" + urlencode({"mark": label, "windows": windows}, safe=",")
        server = ReviewServer(service, host=host, port=port, access_key=access_key,
                              allowed_hosts=allowed_hosts)
        if access_key:
            log.warning("serving on %s over plain HTTP: requests need the access key, but anyone "
                        "who can watch this network can read it; prefer an SSH tunnel to the "
                        "default 127.0.0.1", host)
            print(f"Reviewing {settings.results} at {server.access_url}{page.replace('?', '&')}  "
                  "(open this address once; it holds the page's access key, keep it private; "
                  "Ctrl-C to stop)", flush=True)
        else:
            print(f"Reviewing {settings.results} at {server.url}{page}  (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    finally:
        service.close()
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from flows.outputs.query import format_table
    from flows.outputs.calibration.calibrate import calibrate

    import pyarrow as pa

    rows = calibrate(args.results, precision=args.precision, min_reviews=args.min_reviews)
    if not rows:
        print("no reviews yet: `dawnchorus review` first")
        return 0
    table = pa.Table.from_pylist([{
        "species": r.label, "fingerprint": r.config_fingerprint, "status": r.status,
        "threshold": None if r.threshold is None else round(r.threshold, 4),
        "reviewed": r.n_reviewed, "correct": r.n_correct, "unsure": r.n_unsure,
    } for r in rows])
    print(format_table(table))
    calibrated = sum(r.status == "calibrated" for r in rows)
    print(f"\n{calibrated} of {len(rows)} species calibrated for precision {args.precision:g}; "
          "the others keep the catalog's detection threshold")
    return 0
