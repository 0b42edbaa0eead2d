"""`dawnchorus`: run the pipeline, query the catalog, review and calibrate detections, build the
demo, build tiny test checkpoints."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("dawnchorus")

#: Exit status of a run that a service failed (storage, Ray, the disk): sysexits' EX_TEMPFAIL,
#: "try again later" - the next run retries the work without any flag.
EXIT_SERVICE = 75


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Every RunSettings field (flows.cli.settings_args derives them), plus the flow to run and two
    shorthands for NatureLM's weight options."""
    from flows.cli.settings_args import add_settings_arguments
    from flows.pipeline.settings import RunSettings

    add_settings_arguments(p, RunSettings)
    p.add_argument("--weights", help="shorthand for --model-option weights=DIR: NatureLM release "
                                     "folder or URI (config.json + model.safetensors)")
    p.add_argument("--llama", help="shorthand for --model-option llama=DIR: Llama base folder or "
                                   "URI (Hugging Face format)")
    p.add_argument("--flow", choices=["nightly", "backfill"], default="nightly",
                   help="which flow records the run (default: nightly)")


def settings_from_args(args: argparse.Namespace):
    """RunSettings from the parsed `run` arguments; ConfigError (one line, naming the flag)."""
    from flows.cli.settings_args import build_settings, settings_values
    from flows.pipeline.settings import RunSettings, declared_native_window

    values = settings_values(args, RunSettings)
    for shorthand in ("weights", "llama"):
        if getattr(args, shorthand, None):
            values.setdefault("model_options", {})[shorthand] = getattr(args, shorthand)
    settings = build_settings(RunSettings, values)
    remembered = continue_analysis(settings, values)
    if remembered:
        settings = build_settings(RunSettings, {**remembered, **values})
    # A hop with no window is checked against the model's native window when the run resolves
    # it; a class that declares its window lets the flags be named here, before any model loads.
    native = declared_native_window(settings.model) if settings.window_s is None else None
    if settings.hop_s is not None and native is not None and settings.hop_s > native:
        from connectors.errors import ConfigError

        raise ConfigError(f"--hop-s ({settings.hop_s:g}) must not exceed --window-s (default: "
                          f"the {settings.model} model's native window, {native:g} s)")
    return settings


#: The settings that make an analysis (its fingerprint); a plain run continues the results'.
ANALYSIS_FIELDS = ("model", "model_options", "tasks", "window_s", "hop_s", "tail",
                   "channel_policy", "cascade")
#: Model options that say how a model ran, not what it answers (`ModelBackend.runtime`).
RUNTIME_OPTIONS = ("runtime", "cnn_engine", "device", "licence")


def continue_analysis(settings: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The analysis settings the results already hold (their default fingerprint's latest run),
    for the fields not given on the command line: a plain `dawnchorus run` continues the
    results' analysis instead of starting a second one, and a note names every remembered field
    that is not the default. A given field that differs from the analysis' is a deliberate
    change: a new analysis from the defaults and what was given (a new fingerprint), said in a
    note. Nothing for new or empty results."""
    from connectors.catalog import CatalogReader, reads
    from flows.pipeline.settings import DEFAULT_WINDOW_S, declared_native_window

    location = settings.location
    if location.exists() is not True:
        return {}
    try:
        with CatalogReader(location) as reader:
            chosen = (reader.default_fingerprint[0] if reader.default_fingerprint
                      else (reader.fingerprints[0] if reader.fingerprints else None))
            if chosen is None:
                return {}
            parameters = reads.latest_run_parameters(reader, chosen)
    except Exception as exc:  # the run itself names what is wrong with the catalog
        log.debug("could not read the results' analysis settings: %s", exc)
        return {}
    if not parameters:
        return {}
    before = json.loads(parameters)
    before["model_options"] = {k: v for k, v in (before.get("model_options") or {}).items()
                               if k not in RUNTIME_OPTIONS}
    model = before.get("model") or settings.model
    if before.get("window_s") == (declared_native_window(model) or DEFAULT_WINDOW_S):
        before["window_s"] = None  # the model's own window: stays "the model's" when it changes
    fill = {k: before[k] for k in ANALYSIS_FIELDS if k in before and k not in given}
    changed = [k for k in ANALYSIS_FIELDS if k in given and k in before
               and _comparable(given[k]) != _comparable(before[k])]
    if changed:  # a deliberate change: a new analysis, from the defaults and what was given
        NOTE.warning("a new analysis beside fingerprint %s (the results'): %s; its results get "
                     "a fingerprint of their own", chosen,
                     ", ".join(f"--{k.replace('_', '-')} {_shown(given[k])} (was {_shown(before[k])})"
                               for k in changed))
        return {}
    defaults = settings.model_dump()
    kept = [k for k, v in fill.items() if _comparable(v) != _comparable(defaults.get(k))]
    if kept:
        NOTE.warning("continuing the results' analysis (fingerprint %s): %s", chosen,
                     ", ".join(f"{k.replace('_', '-')} {_shown(fill[k])}" for k in kept))
    return fill


def _comparable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


NOTE = logging.getLogger("dawnchorus.note")


def _run_flow(flow: Any, settings: Any, run_id: str, verbose: bool = False,
              start: Any = None) -> dict[str, Any]:
    """Run a flow with the terminal's header, progress bar and summary (`flows.cli.terminal`); the
    logs go to <results>/logs/<run_id>.log. An incomplete run still has a summary.

    With a Prefect API configured (PREFECT_API_URL) the flow runs as a Prefect flow run; without
    one, its steps run as plain functions instead of under Prefect's temporary server.
    """
    from flows.pipeline.prefect_flows import prefect_api_configured
    from flows.pipeline.run import IncompleteRunError, run_plain
    from flows.cli.terminal import run_console

    with run_console(local_log_root(settings.location), run_id, verbose) as (console, log_file):
        if start is not None:  # e.g. Ray's start-up, whose lines then go to the log with the rest
            start()
        try:
            if prefect_api_configured():
                summary = flow(settings, run_id)
            else:
                summary = run_plain(settings, flow.name, run_id)
        except IncompleteRunError as exc:
            summary = exc.summary
        log.info("run summary: %s", json.dumps(summary, default=str))
        console.set_heard(run_heard(settings, summary))
        console.summary(summary, log_file)
    return summary


def run_heard(settings: Any, summary: dict[str, Any]) -> dict[str, Any] | None:
    """What the run heard (analysis `report_heard_counts` for its windows), or None when the
    catalog cannot say (it is logged)."""
    from connectors.catalog import CatalogReader

    fingerprint = summary.get("config_fingerprint")
    try:
        with CatalogReader(settings.location) as reader:
            if fingerprint not in reader.fingerprints:
                return None
            return reader.analysis("report_heard_counts", {
                "config_fingerprint": fingerprint, "analysed_by_run": summary["run_id"]}).to_pylist()[0]
    except Exception:  # the summary's other lines still print
        log.warning("could not count what the run heard", exc_info=True)
        return None


def local_log_root(location: Any) -> Path:
    """Where a run's log file goes (`<root>/logs/<run_id>.log`): the local results folder; for
    results on S3, the SQLite catalog's folder, or else DAWNCHORUS_LOG_DIR (default
    ~/.cache/dawnchorus)."""
    import os

    if location.root is not None:
        return location.root
    if location.catalog_path is not None:
        return location.catalog_path.parent
    return Path(os.environ.get("DAWNCHORUS_LOG_DIR", "~/.cache/dawnchorus")).expanduser()


def cmd_run(args: argparse.Namespace) -> int:
    from connectors.source_check import check_listing
    from connectors.storage import check_source

    settings = settings_from_args(args)
    # Everything a user can get wrong about the source, before Prefect and Ray are even imported:
    # the places (root, bucket, credentials, storage options, deployments.csv, --deployment ids),
    # then the source contract (docs/source.md: misnamed columns, unmatched ids, coordinates).
    # Each a ConfigError: one line, exit 2, nothing created under the results.
    check_source(settings.source, settings.storage_options, settings.deployments)
    check_listing(settings.source, settings.storage_options, settings.deployments).raise_errors()

    import os

    from connectors.catalog.connection import full_place
    from connectors.catalog.guard import refuse_lost_catalog
    from connectors.catalog.locks import run_lock
    from connectors.errors import DiskFull, disk_full
    from flows.outputs.redact import install_log_redaction
    from flows.pipeline import signals
    from flows.pipeline.prefect_flows import backfill, nightly
    from flows.pipeline.ray_engine import (check_ray_address, probe_ray_address,
                                           quiet_ray_signal_handler, start_ray)
    from flows.pipeline.reaper import start_reaper
    from flows.pipeline.run import new_run_id, service_failure_line

    location = settings.location
    install_log_redaction([settings.storage_options,
                           {f"secret_{i}": s for i, s in enumerate(sorted(location.secrets()))}])
    check_ray_address()
    location.check_reachable()  # the results bucket
    probe_ray_address()  # a RAY_ADDRESS where nothing answers ends the run now, in one line
    refuse_lost_catalog(location)  # before the run lock: nothing is created beside lost data
    run_id = new_run_id()
    # A log line that cannot be written (a full disk) is dropped, not printed with a traceback:
    # the failure it meets reaches the terminal as one line.
    logging.raiseExceptions = False
    signals.install()  # SIGTERM / SIGINT: one line, the run recorded interrupted, exit 143 / 130
    quiet_ray_signal_handler()
    if not os.environ.get("RAY_ADDRESS", "").strip():
        start_reaper()  # the local Ray this run starts never outlives it, even after SIGKILL
    try:
        # Take the catalog before Prefect starts: a busy or impossible catalog is refused at
        # once, in one line; the flow re-enters the lock (or lease) this process holds.
        with run_lock(location, run_id, wait_s=settings.lease_wait_s):
            # Ray starts in the background (seconds, spent while the flow imports, loads and
            # plans) once the terminal's logs go to the run's log file.
            summary = _run_flow(backfill if args.flow == "backfill" else nightly, settings,
                                run_id, args.verbose, start=start_ray)
    except BaseException as exc:
        signum = signals.received()
        if signum is None:
            if isinstance(exc, OSError) and disk_full(exc):  # the run lock, the log, a report
                what = f"writing {exc.filename}" if exc.filename else "writing the run's files"
                raise DiskFull(full_place(location), what) from None
            raise
        print(f"dawnchorus: interrupted by {signals.name(signum)}: run {run_id} is recorded as "
              "interrupted; its committed units stay and the next run resumes the rest",
              file=sys.stderr)
        return 128 + signum
    line = service_failure_line(summary)
    if line is not None:  # never "completed": the infrastructure failed, and the next run retries
        print(f"dawnchorus: error: {line}", file=sys.stderr)
        return EXIT_SERVICE
    return 0 if summary["status"] == "completed" else 1


def _minutes_from_sunrise(minutes: float | None) -> str:
    """"sunrise +42 min" / "sunrise -7 min"; empty where the site has no coordinates (or on a
    polar day or night, where there is no sunrise)."""
    return "" if minutes is None else f"sunrise {round(minutes):+d} min"


def cmd_demo(args: argparse.Namespace) -> int:
    """Lay out the shipped field recordings (and, with --clips, a user's clips mixed into
    background noise), run the nightly flow on them, and print what was heard, when (local
    time), the effort per night, each label beside what the run found, and where the report is."""
    import pyarrow as pa

    from flows.cli import demo_field
    from flows.outputs.query import format_table, run_analysis
    from flows.pipeline.prefect_flows import nightly
    from flows.pipeline.run import new_run_id
    from flows.pipeline.settings import RunSettings

    out = Path(args.out)
    if args.clips:
        from flows.cli.demo import build_demo

        build_demo(out, clips_dir=Path(args.clips))  # its deployments and truth rows are kept
    info = demo_field.lay_out(out)
    settings = RunSettings(source=str(info.source_root), results=str(out / "results"),
                           model=args.model)
    summary = _run_flow(nightly, settings, new_run_id(), args.verbose)
    results = settings.results
    print("\nWhat was heard, per site (detections = windows with the species, score >= the "
          "catalog's threshold, species filters applied; times are local to the site, and the "
          "first detection also in minutes from that day's sunrise):")
    heard = run_analysis(results, "first_last").to_pylist()
    print(format_table(pa.Table.from_pylist([
        {"site_id": h["site_id"], "label": h["label"], "scientific_name": h["scientific_name"],
         "detections": h["detections"], "first_local": h["first_local"],
         "first_vs_sunrise": _minutes_from_sunrise(h["first_minutes_from_sunrise"]),
         "last_local": h["last_local"]} for h in heard])))
    print("\nEffort per site and night (night = the local date of the evening):")
    effort = run_analysis(results, "report_effort_by_night")
    print(format_table(effort.select(["site_id", "night_date", "recordings", "minutes_analysed",
                                      "windows_failed", "detections", "species"])))
    from connectors.catalog import CatalogReader, reads

    with (CatalogReader(results, location_threshold=0.0) as unfiltered,
          CatalogReader(results) as filtered):
        hidden = reads.detection_count(unfiltered) - reads.detection_count(filtered)
    if hidden:
        print(f"({hidden} detections of species unlikely at these sites in these weeks are hidden "
              f"by the location filter: dawnchorus query --results {results} "
              "\"from species_filter where not kept\")")
    with open(info.truth_csv, newline="", encoding="utf-8") as fh:
        truth = list(csv.DictReader(fh))
    found = demo_field.named_right(truth, run_analysis(results, "detections_by_file").to_pylist())
    hits = sum(row["match"] for row in found)
    print("\nEach species as its recording was labelled (the NPS titles, an expert Raven table"
          + (", the clips' manifest" if args.clips else "") + ") beside the best detection of it "
          "in the labelled span:")
    print(format_table(pa.Table.from_pylist(found)))
    print(f"\nReport:  {summary.get('report')}")
    print(f"Catalog: {Path(results).resolve() / 'catalog.sqlite'}")
    print(f"Query it: dawnchorus query species_by_night --results {results}")
    print(f"          dawnchorus duckdb --results {results}")
    print(f"\n{hits} of {len(found)} named right.")
    return 0 if summary["status"] == "completed" else 1


def cmd_tiny_naturelm(args: argparse.Namespace) -> int:
    from naturelm_core.naturelm.tiny import build_tiny_checkpoint

    naturelm_dir, llama_dir = build_tiny_checkpoint(Path(args.out))
    print(f"NatureLM release: {naturelm_dir}\nLlama base:       {llama_dir}")
    return 0


def cmd_tiny_salmonn(args: argparse.Namespace) -> int:
    """Write a tiny random SALMONN (release layout); the last line is the run options selecting it."""
    from naturelm_core.salmonn.tiny import build_tiny_salmonn, run_options

    paths = build_tiny_salmonn(Path(args.out))
    for name, path in paths.items():
        print(f"{name + ':':9s}{path}")
    print(run_options(paths))
    return 0


def add_review_parsers(sub: argparse._SubParsersAction) -> None:
    """`review` (the review page, the Raven round trip) and `calibrate`: flows/review/."""
    from flows.cli.review import add_calibrate_parser, add_review_parser

    add_review_parser(sub)
    add_calibrate_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    from flows.cli.settings_args import OneLineParser

    parser = OneLineParser(prog="dawnchorus", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="analyse new or changed recordings (the nightly flow)")
    _add_run_arguments(run)
    run.set_defaults(func=cmd_run)

    from flows.cli.check import add_check_parser

    add_check_parser(sub)
    from flows.cli.query import add_query_parser

    add_query_parser(sub)
    from flows.cli.thresholds import add_thresholds_parser

    add_thresholds_parser(sub)
    from flows.cli.export import add_export_parser

    add_export_parser(sub)
    from flows.cli.report import add_report_parser

    add_report_parser(sub)
    from flows.cli.duckdb_shell import add_duckdb_parser

    add_duckdb_parser(sub)
    from flows.cli.similar import add_similar_parser

    add_similar_parser(sub)
    from flows.cli.learn import add_learn_parser

    add_learn_parser(sub)
    from flows.cli.density import add_density_parser

    add_density_parser(sub)

    demo = sub.add_parser("demo", help="run nightly on the shipped field recordings "
                                            "(two deployments), print what was heard")
    demo.add_argument("--out", default="demo")
    demo.add_argument("--clips", help="folder of your own clips with manifest.csv, mixed into "
                                      "background noise beside the shipped recordings")
    demo.add_argument("--model", default="birdnet")
    demo.set_defaults(func=cmd_demo)

    add_review_parsers(sub)
    from flows.cli.maintain import add_maintain_parser

    add_maintain_parser(sub)

    dev = sub.add_parser("dev", help="developer tools")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    tiny = dev_sub.add_parser("tiny-naturelm", help="build a tiny random NatureLM checkpoint")
    tiny.add_argument("--out", required=True)
    tiny.set_defaults(func=cmd_tiny_naturelm)
    tiny_salmonn = dev_sub.add_parser("tiny-salmonn", help="build a tiny random SALMONN checkpoint set")
    tiny_salmonn.add_argument("--out", required=True)
    tiny_salmonn.set_defaults(func=cmd_tiny_salmonn)
    return parser


class _StderrNow(logging.StreamHandler):
    """A handler writing to whatever sys.stderr is at the time (a test's capture included)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _OncePerCommand(logging.Filter):
    """Each note once per command (a report reads many analyses of one fingerprint)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def main(argv: Sequence[str] | None = None) -> int:
    from flows.outputs.redact import install_log_redaction

    install_log_redaction()  # the AWS credential variables never reach a log line
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Notes (which fingerprint a command read, ...): one plain line each on stderr.
    notes = logging.getLogger("dawnchorus.note")
    for old in list(notes.handlers):
        notes.removeHandler(old)
    handler = _StderrNow()
    handler.setFormatter(logging.Formatter("dawnchorus: note: %(message)s"))
    handler.addFilter(_OncePerCommand())
    notes.addHandler(handler)
    notes.propagate = False
    # Every Prefect API call is an httpx INFO line; keep the terminal for progress.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from flows.cli.console import one_line, quiet_user_error_tracebacks, user_error

    quiet_user_error_tracebacks()
    from connectors.errors import ServiceError

    try:
        return args.func(args)
    except ServiceError as exc:  # the infrastructure failed: one line, exit 75, the next run retries
        print(f"dawnchorus: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_SERVICE
    except Exception as exc:  # a user error ends the CLI one way: one line, exit 2
        error = user_error(exc)
        if error is None:
            raise  # a bug: its traceback is the report
        print(f"dawnchorus: error: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
