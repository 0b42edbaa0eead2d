"""`dawnchorus check --source S`: the source contract, checked (`connectors.source_check`,
docs/source.md). Reads only listings, headers and deployments.csv; writes nothing."""

from __future__ import annotations

import argparse
from typing import Any


def model_hearing(model: str, options: dict[str, Any]) -> tuple[int | None, tuple[float, float] | None,
                                                                int | None]:
    """(sample rate, band, lowest recording rate) of the model with these options, as a run would
    describe it; a model that cannot be described here (weights not given) falls back to what its
    class declares (band: half its rate)."""
    from naturelm_core.backend import BackendError, backend_class, describe_backend, recording_rate_floor

    try:
        info = describe_backend(model, **options)
    except BackendError:
        cls = backend_class(model)
        rate = getattr(cls, "sample_rate_hz", None)
        rate = int(rate) if isinstance(rate, (int, float)) and rate > 0 else None
        return rate, None, cls.min_recording_rate_hz
    return info.sample_rate_hz, info.band(), recording_rate_floor(model, info)


def cmd_check(args: argparse.Namespace) -> int:
    from connectors.source_check import check_source, format_report
    from flows.cli.settings_args import _nest

    options = _nest(args.storage_option or [], "--storage-option")
    rate, band, floor = model_hearing(args.model, _nest(args.model_option or [], "--model-option"))
    report = check_source(args.source, options, model=args.model, model_rate_hz=rate,
                          only=tuple(args.deployment) if args.deployment else None,
                          model_band_hz=band, min_recording_rate_hz=floor)
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
    p.add_argument("--model-option", action="append", type=parse_key_value, metavar="KEY=VALUE",
                   help="the model's options, as for `run` (its band and lowest recording rate "
                        "may depend on them)")
    p.add_argument("--deployment", action="append", metavar="DEPLOYMENT",
                   help="only this deployment (repeatable)")
    p.add_argument("--storage-option", action="append", type=parse_key_value, metavar="KEY=VALUE",
                   help="s3fs option (client_kwargs.endpoint_url=...)")
    p.set_defaults(func=cmd_check)
