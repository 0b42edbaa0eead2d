"""`dawnchorus check --source S`: the source contract, checked (`connectors.source_check`,
docs/source.md). Reads only listings, headers and deployments.csv; writes nothing."""

from __future__ import annotations

import argparse
from typing import Any


def model_rate(model: str) -> int | None:
    """The sample rate the model's class declares, for the band check (None: not declared)."""
    from naturelm_core.backend import backend_class

    rate = getattr(backend_class(model), "sample_rate_hz", None)
    return int(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def cmd_check(args: argparse.Namespace) -> int:
    from connectors.source_check import check_source, format_report
    from flows.cli.settings_args import _nest

    options = _nest(args.storage_option or [], "--storage-option")
    report = check_source(args.source, options, model=args.model, model_rate_hz=model_rate(args.model),
                          only=tuple(args.deployment) if args.deployment else None)
    for line in format_report(report):
        print(line)
    return 2 if report.errors else 0


def add_check_parser(sub: Any) -> None:
    from flows.cli.settings_args import parse_key_value
    from naturelm_core.backend import BACKENDS

    p = sub.add_parser(
        "check", help="check a source: deployments, times, sample rates, deployments.csv",
        description="Per deployment: files, first and last local time, sample rates, time zone and "
                    "coordinates; then every problem, errors first (docs/source.md). Exit 2 on an "
                    "error. Reads only listings, headers and deployments.csv.")
    p.add_argument("--source", required=True, help="source root: a local folder, file:// or s3://")
    p.add_argument("--model", default="birdnet", choices=sorted(BACKENDS),
                   help="the model whose band recordings are compared with (default: birdnet)")
    p.add_argument("--deployment", action="append", metavar="DEPLOYMENT",
                   help="only this deployment (repeatable)")
    p.add_argument("--storage-option", action="append", type=parse_key_value, metavar="KEY=VALUE",
                   help="s3fs option (client_kwargs.endpoint_url=...)")
    p.set_defaults(func=cmd_check)
