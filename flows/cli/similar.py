"""`dawnchorus similar`: the windows that sound most like a clip, a window or words
(`flows.outputs.similar`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.errors import ConfigError
from flows.outputs.query import format_table
from flows.outputs.similar import DEFAULT_TOP, similar, write_hits_raven
from flows.review.defaults import DEFAULT_PORT, MAX_MARK_WINDOWS


SHOWN = ("rank", "cosine", "site_id", "deployment_id", "object_key", "channel", "window_index",
         "offset_s", "start_local", "start_utc", "detections")


def cmd_similar(args: argparse.Namespace) -> int:
    if args.export and not args.out:
        raise ConfigError("--export raven needs --out DIR")
    if args.review is not None:
        if not args.review.strip():
            raise ConfigError("--review: expected the name of the sound to mark the hits as")
        if args.top > MAX_MARK_WINDOWS:
            raise ConfigError(f"--review: at most {MAX_MARK_WINDOWS} hits per page (--top {args.top})")
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port {args.port}: expected 0 to 65535")
    result = similar(args.results, clip=args.clip, start_s=args.start, end_s=args.end,
                     window=args.window, text=args.text, top=args.top,
                     config_fingerprint=args.config_fingerprint, deployments=args.deployment)
    print(f"{len(result.hits)} windows most like {result.query} "
          f"({result.run.model_id}, {result.run.vectors} windows scanned):")
    table = pa.Table.from_pylist([{k: h[k] for k in SHOWN} for h in result.hits]) if result.hits \
        else pa.table({k: [] for k in SHOWN})
    print(format_table(table))
    if result.withheld:  # the privacy gate (docs/privacy.md) says what it left out
        print(result.withheld)
    if args.export:
        files = write_hits_raven(result, Path(args.out))
        print(f"raven: {len(result.hits)} selections in {len(files)} files under {args.out}")
    if args.review is not None:
        return _review(args, result)
    return 0


def _review(args: argparse.Namespace, result: Any) -> int:
    """Serve the review page on the hits, to mark each as an example of `--review LABEL`."""
    from flows.cli.review import _default_reviewer, serve_page
    from flows.review.defaults import DEFAULT_HOST
    from flows.review.service import ReviewSettings

    if not result.hits:
        print("no hits to review")
        return 0
    keys = [f"{h['recording_id']}.{result.run.fingerprint}.{h['channel']}.{h['window_index']}"
            for h in result.hits]
    settings = ReviewSettings(results=args.results, reviewer=args.reviewer or _default_reviewer())
    return serve_page(settings, host=DEFAULT_HOST, port=args.port, mark=(args.review, keys))


def add_similar_parser(sub: Any) -> None:
    p = sub.add_parser("similar", help="the windows that sound most like a clip, a window or words "
                                       "(needs a run with --embeddings)")
    p.add_argument("--results", required=True, help="results folder (catalog.sqlite + data/)")
    p.add_argument("--clip", help="audio file holding the example")
    p.add_argument("--start", type=float, help="example start within the clip, seconds (default 0)")
    p.add_argument("--end", type=float, help="example end, seconds (default: one window)")
    p.add_argument("--window", help="start from a window in the catalog: RECORDING_ID:INDEX")
    p.add_argument("--text", help="describe the sound in words (needs a CLAP run's embeddings)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"hits to show (default {DEFAULT_TOP})")
    p.add_argument("--deployment", action="append", help="only windows of this deployment (repeatable)")
    p.add_argument("--fingerprint", "--config-fingerprint", dest="config_fingerprint", metavar="PREFIX", help="embeddings of this fingerprint (default: the only one)")
    p.add_argument("--export", choices=["raven"], help="also write the hits for review")
    p.add_argument("--out", help="folder for --export")
    p.add_argument("--review", metavar="LABEL",
                   help="then serve the review page on the hits, to mark each as an example of "
                        "LABEL or not (verdicts `dawnchorus learn --label LABEL` learns from)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"with --review: port to serve on, on 127.0.0.1 (default {DEFAULT_PORT}; "
                        "0 = any free port)")
    p.add_argument("--reviewer", help="with --review: name recorded with each mark (default: "
                                      "your login name)")
    p.set_defaults(func=cmd_similar)
