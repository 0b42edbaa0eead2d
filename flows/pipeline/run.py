"""Prefect flows: `nightly` (new and changed recordings) and `backfill` (chosen deployments/model).

Thin tasks around the plain functions of discover / plan / pipeline / report; the flow body only
wires them. Retries only where repeating is safe (listing and header reads are read-only), and
never for a configuration error, which no retry can fix.

One run at a time per SQLite catalog (`connectors.catalog.locks.RunLock`); on a Postgres
catalog, runs on different deployments at once and runs on the same deployments one after the
other (`connectors.catalog.locks.CatalogLease`, claimed once discovery knows the run's
deployments). A run that finds its way blocked fails fast naming the holder, or waits
`lease_wait_s`. The run marks runs
that died without finishing `interrupted`, then resumes their work: every committed unit stays,
every other one is planned again.

Start-up overlaps: once discovery has listed the source (and the run has claimed its
deployments), register → plan run in the background while the driver starts (or joins) Ray, so
a run waits for the longer of the two, not their sum. `run_plain` runs the same steps as plain
functions, with no Prefect API at all: what `dawnchorus run` does when no PREFECT_API_URL is set,
instead of starting Prefect's temporary server for a run nobody watches. After processing, the
catalog is maintained (`flows.pipeline.maintain`): few files, however many units.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from connectors.catalog import Catalog
from connectors.errors import ConfigError, ServiceError, transient_reason
from connectors.catalog.locks import run_lock
from connectors.storage import AUDIO_EXTENSIONS
from connectors.tables import RunRow, replace
from flows.pipeline import discover as discover_mod
from flows.pipeline import maintain as maintain_mod
from flows.outputs import report as report_mod
from flows.pipeline import signals
from flows.pipeline import solar as solar_mod
from flows.pipeline import species_filter as species_filter_mod
from flows.pipeline import watchers
from flows.pipeline.ray_engine import ProcessResult, process_units, start_ray, wait_for_ray
from flows.pipeline.passes import first_pass
from flows.pipeline.plan import Unit, plan_units
from flows.pipeline.settings import RunSettings, config_fingerprint, declared_native_window, resolve_settings
from flows.pipeline.speech import record_gate
from flows.pipeline.stages import CommitContext, DecodeOptions
from naturelm_core.backend import BackendInfo, describe_backend, recording_rate_floor
from flows.outputs.learn import apply_stored_classifiers
from flows.pipeline.cascade import run_cascade
from naturelm_core.backend import backend_class


class IncompleteRunError(RuntimeError):
    """Some planned units did not commit; the run is recorded as failed (a re-run resumes them)."""

    def __init__(self, summary: dict[str, Any]):
        super().__init__(f"run {summary['run_id']} did not commit every unit: {json.dumps(summary)}")
        self.summary = summary


def code_version() -> str:
    try:
        return version("dawnchorus")
    except PackageNotFoundError:
        return "unknown"


def _not_a_config_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: I/O hiccups are retried, configuration errors are not."""
    return not isinstance(state.data, ConfigError)


@task(name="identify-model", cache_policy=NO_CACHE)
def identify_model(settings: RunSettings) -> tuple[RunSettings, str, str, BackendInfo]:
    """The settings resolved for this model (its native window by default), model id,
    fingerprint and what the driver needs of the model (sample rate, band, lowest recording
    rate); missing weights stop the run here."""
    info = describe_backend(settings.model, **settings.model_options)
    # A describe() that builds no backend may not say: then the class declares it.
    native = info.native_window_s or declared_native_window(settings.model)
    settings = resolve_settings(settings, native)  # window and unit size: numbers from here on
    if info.runtime:  # how the model runs (BirdNET's engine): recorded in `runs`, workers pinned to it
        settings = settings.model_copy(update={"model_options": {**settings.model_options, **info.runtime}})
    fingerprint = config_fingerprint(settings, info.model_id, info.settings)
    return settings, info.model_id, fingerprint, info


def embedding_dim(settings: RunSettings) -> int | None:
    """The width of the embeddings this run writes; None when it writes none (not asked for, or
    a model without embeddings: said once, in the run's log)."""
    if not settings.embeddings:
        return None
    info = describe_backend(settings.model, **settings.model_options)
    if info.embedding is None:
        logging.getLogger(__name__).warning(
            "--embeddings: the %s model has no audio embeddings; this run writes none", settings.model)
        return None
    return int(info.embedding["dim"])


@task(name="discover", retries=2, retry_delay_seconds=5, retry_condition_fn=_not_a_config_error,
      cache_policy=NO_CACHE)
def discover_task(settings: RunSettings) -> discover_mod.Discovery:
    return discover_mod.discover(settings.source, settings.storage_options, settings.deployments)


@task(name="register-recordings", cache_policy=NO_CACHE)
def register_task(settings: RunSettings, discovery: discover_mod.Discovery,
                  run_id: str, info: BackendInfo | None = None) -> discover_mod.SyncResult:
    """Record the deployments and new recordings; each new recording is checked against the
    model `info` describes (its band, its lowest recording rate: docs/source.md)."""
    with Catalog(settings.location) as catalog:
        discover_mod.sync_deployments(catalog, discovery, run_id)
        if info is None:
            rate, band, floor = declared_sample_rate(settings.model), None, None
        else:
            rate, band = info.sample_rate_hz, info.band()
            floor = recording_rate_floor(settings.model, info)
        return discover_mod.sync_recordings(
            catalog, settings.source, settings.storage_options, discovery, run_id,
            model=settings.model, model_rate_hz=rate, model_band_hz=band,
            min_recording_rate_hz=floor,
        )


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(settings: RunSettings, sync: discover_mod.SyncResult, fingerprint: str) -> list[Unit]:
    with Catalog(settings.location) as catalog:
        return plan_units(
            catalog, sync.current_ids, fingerprint=fingerprint, window_s=settings.window_s,
            hop_s=settings.effective_hop_s, tail=settings.tail,
            channel_policy=settings.channel_policy, windows_per_unit=settings.windows_per_unit,
            retry_failed=settings.retry_failed, need_embeddings=embedding_dim(settings) is not None,
        )


@task(name="process", cache_policy=NO_CACHE)
def process_task(settings: RunSettings, units: list[Unit], run_id: str, fingerprint: str,
                 model_id: str, info: BackendInfo,
                 on_commit: Callable[[ProcessResult, Unit], None] | None = None,
                 on_analysed: Callable[[int, float], None] | None = None) -> ProcessResult:
    decode = DecodeOptions(
        source=settings.source, storage_options=settings.storage_options,
        window_s=settings.window_s, sample_rate_hz=info.sample_rate_hz,
        channel_policy=settings.channel_policy,
        min_recording_rate_hz=recording_rate_floor(settings.model, info),
        resampler=info.resampler,
    )
    dim = embedding_dim(settings)
    ctx = CommitContext(run_id=run_id, fingerprint=fingerprint, model_id=model_id,
                        window_s=settings.window_s, embedding_dim=dim, band_hz=info.band())
    with Catalog(settings.location) as catalog:
        return process_units(units, catalog, ctx, decode=decode,
                             options=first_pass(settings, embeddings=dim is not None),
                             on_commit=on_commit, on_analysed=on_analysed)


@task(name="cascade", cache_policy=NO_CACHE)
def cascade_task(settings: RunSettings, run_id: str, fingerprint: str,
                 current_ids: list[str]) -> list[dict[str, Any]]:
    """The run's later stages, each over the rows the stage before it committed."""

    return [r.counts() for r in run_cascade(settings, run_id, fingerprint, current_ids)]


@task(name="species-filter", cache_policy=NO_CACHE)
def species_filter_task(settings: RunSettings, run_id: str) -> int:
    """Ask BirdNET's meta-model about the deployments and weeks this run added (no retries: a
    missing model file is reported, and the detections it would hide stay visible)."""
    return species_filter_mod.update_location_filter(settings.location, run_id)


@task(name="maintain-catalog", cache_policy=NO_CACHE)
def maintain_task(settings: RunSettings) -> dict[str, Any]:
    """Merge the run's small files into the catalog's few; a failure here fails no run."""
    try:
        return maintain_mod.report_dict(maintain_mod.maintain_results(settings.location))
    except Exception as exc:  # the run's rows are committed; the next maintenance catches up
        logging.getLogger(__name__).warning("catalog maintenance failed: %s", exc, exc_info=True)
        return {"error": f"{type(exc).__name__}: {exc}"}


def publish_artifacts(run_id: str, summary: str, index: str) -> None:
    """The report on the Prefect flow run's page, when there is one (never outside a run: a
    rebuilt report must not start a Prefect server)."""
    try:
        from prefect.context import FlowRunContext
    except Exception:
        return
    if FlowRunContext.get() is None:
        return
    try:
        from prefect.artifacts import create_link_artifact, create_markdown_artifact

        create_markdown_artifact(key="run-summary", markdown=summary,
                                 description=f"dawnchorus run {run_id}")
        link = index if "://" in index else Path(index).resolve().as_uri()
        create_link_artifact(key="run-report", link=link,
                             link_text=f"report of run {run_id}",
                             description="plots, tables and failures")
    except Exception:  # the files are the record; an artifact is a convenience
        logging.getLogger(__name__).warning("could not publish the run report artifacts",
                                            exc_info=True)


@task(name="report", cache_policy=NO_CACHE)
def report_task(settings: RunSettings, run_id: str, counts: dict[str, Any],
                skipped: list[Any]) -> str:
    return report_mod.write_report(settings.location, run_id, counts, skipped,
                                   announce=publish_artifacts, storage_options=settings.storage_options)


def declared_sample_rate(model: str) -> int | None:
    """The sample rate a backend's class declares (None where it depends on its options)."""

    rate = getattr(backend_class(model), "sample_rate_hz", None)
    return int(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def run_warnings(discovery: discover_mod.Discovery, sync: discover_mod.SyncResult,
                 per_code: int = 3) -> list[str]:
    """The source check's warnings as the run header prints them and `runs.warnings` keeps
    them: the listing's each, the new recordings' at most `per_code` of a kind, then a count."""
    lines = [p.line() for p in discovery.problems]
    by_code: dict[str, list[Any]] = {}
    for problem in sync.warnings:
        by_code.setdefault(problem.code, []).append(problem)
    for code, problems in by_code.items():
        lines += [p.line() for p in problems[:per_code]]
        if len(problems) > per_code:
            lines.append(f"warning: {len(problems) - per_code} more recordings with {code} "
                         "(recordings.warnings)")
    return lines


def filters_line(settings: RunSettings) -> str:
    """Which filters the catalog applies to detections, for the run header."""
    with Catalog(settings.location) as catalog:
        detection = catalog.setting("detection_threshold")
        location = catalog.setting("location_filter_threshold")
        deployments = catalog.deployments()
    placed = sum(1 for d in deployments if d.latitude is not None and d.longitude is not None)
    listed = sum(1 for d in deployments if d.species_include or d.species_exclude)
    parts = [f"detection threshold {detection}"]
    if location is not None and float(location) > 0 and placed:
        parts.append(f"location filter on ({placed} of {len(deployments)} deployments have "
                     f"coordinates; occurrence < {location} hidden)")
    else:
        parts.append("location filter off")
    parts.append(f"species lists on {listed} deployments" if listed else "no species lists")
    return ", ".join(parts) + " (dawnchorus thresholds)"


def service_failures(sync: discover_mod.SyncResult, result: ProcessResult
                     ) -> dict[str, dict[str, Any]]:
    """service -> {recordings, windows, error}: what the infrastructure failed to give this run
    (none of it is recorded as failed; the next run plans it again)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in sync.unavailable:
        service = str(entry["error"]).split(": ", 1)[0]
        slot = out.setdefault(service, {"recordings": 0, "windows": 0, "error": entry["error"]})
        slot["recordings"] += 1
    for service, (windows, error) in result.service_failures.items():
        slot = out.setdefault(service, {"recordings": 0, "windows": 0, "error": error})
        slot["windows"] += windows
    return out


def service_failure_line(summary: dict[str, Any]) -> str | None:
    """One line for a run that a service failed (its summary's `service_failures`), else None:
    which service, what it answered, and what is left for the next run."""
    failures = summary.get("service_failures")
    if not failures:
        return None
    parts = []
    for service, f in failures.items():
        left = [f"{f[k]} {k}" for k in ("recordings", "windows") if f.get(k)]
        parts.append(f"{f['error']}" + (f" ({', '.join(left)} left for the next run)" if left else ""))
    run = f"run {summary['run_id']} " if summary.get("run_id") else ""
    return (f"{run}incomplete, a service failed: {'; '.join(parts)}; the next run retries this "
            "work by itself (no flag needed)")


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _covered_deployments(settings: RunSettings, discovery: discover_mod.Discovery) -> set[str]:
    """The deployments whose rows this run may write: those it found, and those it was asked for."""
    return {o.deployment_id for o in discovery.objects} | set(settings.deployments or ())


def _skipped_counts(skipped: list[Any]) -> dict[str, int]:
    return dict(sorted(Counter(getattr(s, "reason", str(s)) for s in skipped).items()))


@dataclass(frozen=True)
class Steps:
    """The pipeline's steps: Prefect tasks inside a flow run, or their plain functions."""

    identify: Callable[..., Any]
    discover: Callable[..., Any]
    register: Callable[..., Any]
    plan: Callable[..., Any]
    process: Callable[..., Any]
    cascade: Callable[..., Any]
    species_filter: Callable[..., Any]
    maintain: Callable[..., Any]
    report: Callable[..., Any]
    #: submit(step, *args) -> a future (`.result()`); futures among args are waited for first.
    submit: Callable[..., Any]


def _prefect_submit(step: Any, *args: Any) -> Any:
    return step.submit(*args)  # Prefect resolves upstream futures among the arguments


PREFECT_STEPS = Steps(identify_model, discover_task, register_task, plan_task, process_task,
                      cascade_task, species_filter_task, maintain_task, report_task,
                      submit=_prefect_submit)


def _plain_steps(executor: ThreadPoolExecutor) -> Steps:
    """The steps as plain functions; `submit` chains them on one background thread, in order."""

    def submit(step: Callable[..., Any], *args: Any) -> Future:
        return executor.submit(
            lambda: step(*(a.result() if isinstance(a, Future) else a for a in args)))

    return Steps(identify_model.fn, discover_task.fn, register_task.fn, plan_task.fn,
                 process_task.fn, cascade_task.fn, species_filter_task.fn, maintain_task.fn,
                 report_task.fn, submit=submit)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # a plain run
        return logging.getLogger(__name__)


def _apply_classifiers(settings: RunSettings, fingerprint: str, run_id: str,
                       logger: Any) -> dict[str, Any] | str:
    """The stored classifiers on this fingerprint's embeddings score the windows this run added
    (`flows.outputs.learn`); a failure is reported, never the run's end (the next run scores them)."""

    try:
        return apply_stored_classifiers(settings.location, fingerprint, run_id)
    except Exception as exc:
        logger.warning("stored classifiers not applied (the next run applies them): %s", exc)
        return f"failed: {exc}"


def _step(console: Any, what: str) -> None:
    """Say at the terminal (beside the progress bar) which step after the analysis is running."""
    if console is not None:
        console.step(what)


def run_pipeline(settings: RunSettings, flow_name: str, run_id: str | None = None,
                 steps: Steps = PREFECT_STEPS) -> dict[str, Any]:
    """identify → (discover → register → plan, while Ray starts) → process → cascade stages →
    species filter → maintain → report, recording the run in `runs`."""
    logger = _logger()
    run_id = run_id or new_run_id()
    with run_lock(settings.location, run_id, wait_s=settings.lease_wait_s) as lock:
        started = datetime.now(timezone.utc)
        settings, model_id, fingerprint, info = steps.identify(settings)
        ray_ready = start_ray()  # Ray starts (seconds) while the run is recorded and planned
        run = RunRow(
            run_id=run_id, flow=flow_name, started_at=started, finished_at=None, status="running",
            parameters=settings.public_json(), config_fingerprint=fingerprint, model_id=model_id,
            code_version=code_version(), counts=None, host=socket.gethostname(), pid=os.getpid(),
            interrupted_at=None,
        )
        with Catalog(settings.location) as catalog:
            dead = catalog.mark_interrupted(started, run_id, alive=lock.alive)
            catalog.start_run(run)
            record_gate(catalog, settings.speech_gate, run_id)  # docs/privacy.md
        if dead:
            logger.warning("marked %d run(s) that died without finishing as interrupted: %s%s; "
                           "this run resumes their work", len(dead), ", ".join(dead),
                           f" (last held by {lock.previous.describe()})" if lock.previous else "")
        counts: dict[str, Any] = {}
        skipped: list[Any] = []
        status = "failed"
        console = watchers.current()  # the CLI's header and progress bar, if any
        failure: BaseException | None = None
        try:
            discovery = steps.discover(settings)
            # Claim the deployments this run covers before it writes any of their rows; on a
            # SQLite catalog the run lock already covers them all.
            lock.claim(_covered_deployments(settings, discovery))
            sync_f = steps.submit(steps.register, settings, discovery, run_id, info)
            units_f = steps.submit(steps.plan, settings, sync_f, fingerprint)
            sync, units = sync_f.result(), units_f.result()
            wait_for_ray(ray_ready)
            skipped = discovery.skipped
            if not discovery.objects:
                logger.warning("no recordings under %s (looked for %s files, any case, in "
                               "deployment folders)", settings.source, ", ".join(AUDIO_EXTENSIONS))
            warnings = run_warnings(discovery, sync)
            for line in warnings:
                logger.info("source check: %s", line)
            run = replace(run, warnings=warnings or None)
            if console is not None:
                console.header(
                    source=settings.source, results=settings.results, model_id=model_id,
                    recordings_new=sync.new, recordings_changed=sync.changed,
                    planned_windows=sum(u.expected_rows for u in units),
                    planned_audio_s=sum(w.duration_s for u in units for w in u.windows),
                    warnings=warnings, filters=filters_line(settings),
                    licence=(info.runtime or {}).get("licence"))
            result = steps.process(settings, units, run_id, fingerprint, model_id, info,
                                   on_commit=console.on_commit if console is not None else None,
                                   on_analysed=console.on_analysed if console is not None else None)
            counts = {
                "recordings_listed": len(sync.current_ids), "recordings_new": sync.new,
                "recordings_changed": sync.changed, "recordings_failed": len(sync.failed),
                "paths_skipped": _skipped_counts(skipped),
                "units_planned": len(units), "units_committed": result.units,
                "windows": result.windows, "windows_failed": result.windows_failed,
                "predictions": result.predictions,
            }
            if settings.embeddings:
                counts["embeddings"] = result.embeddings
            status = "completed" if not result.uncommitted_units else "failed"
            failures = service_failures(sync, result)
            if failures:  # the infrastructure failed: the next run retries that work, no flag
                counts["recordings_unavailable"] = len(sync.unavailable)
                counts["windows_unavailable"] = result.windows_unavailable
                counts["service_failures"] = failures
                status = "failed"
                logger.info("%s", service_failure_line(counts))  # the CLI prints it, once
            if settings.cascade:
                _step(console, "cascade: verifying candidates")
                counts["cascade"] = steps.cascade(settings, run_id, fingerprint, sync.current_ids)
                if any(stage["units_uncommitted"] for stage in counts["cascade"]):
                    status = "failed"
            _step(console, "location filter: asking BirdNET's meta-model per site and week")
            try:
                counts["location_filter_weeks_asked"] = steps.species_filter(settings, run_id)
            except Exception as exc:  # the filter is an output's refinement, never the run's end
                logger.warning("location filter not updated (its species stay visible): %s", exc)
                counts["location_filter_weeks_asked"] = f"failed: {exc}"
            try:
                counts["solar"] = solar_mod.update_solar(settings.location)
            except Exception as exc:  # solar columns are an output's refinement, never the run's end
                logger.warning("solar time not updated (its columns stay empty): %s", exc)
                counts["solar"] = f"failed: {exc}"
            if settings.embeddings:
                counts["classifiers"] = _apply_classifiers(settings, fingerprint, run_id, logger)
            _step(console, "maintaining the catalog (merging small files)")
            counts["catalog_maintenance"] = steps.maintain(settings)  # after the run's last write
        except BaseException as exc:
            failure = exc
            transient = None if isinstance(exc, (ServiceError, ConfigError)) else transient_reason(exc)
            if transient is not None:  # e.g. the source's listing: one line naming the service
                raise ServiceError(f"source {settings.source}", transient) from exc
            raise
        finally:
            finished = datetime.now(timezone.utc)
            if signals.received() is not None:  # SIGTERM or SIGINT: what a re-run resumes
                status = "interrupted"
                counts["interrupted_by"] = signals.name(signals.received())
            try:
                with Catalog(settings.location) as catalog:
                    catalog.finish_run(replace(
                        run, status=status, counts=json.dumps(counts), finished_at=finished,
                        interrupted_at=finished if status == "interrupted" else None))
            except Exception as exc:
                if failure is None:
                    raise
                # The run's own failure is what the user must see (a full disk fails this too);
                # the next run marks this one interrupted.
                logger.info("run %s could not be recorded as finished: %s", run_id, exc)
        _step(console, "writing the report (species cards, clips, plots)")
        counts["report"] = steps.report(settings, run_id, counts, skipped)
        try:
            hidden = report_mod.hidden_by_filters(settings.location, run_id)
        except Exception as exc:  # a summary line must never fail a finished run
            logger.warning("could not list what the filters hid: %s", exc)
            hidden = []
        _step(console, "done")
    logger.info("run %s %s: %s", run_id, status, json.dumps(counts))
    summary = {"run_id": run_id, "status": status, "config_fingerprint": fingerprint, **counts,
               "warnings": list(run.warnings or ()), "hidden_by_filters": hidden}
    if status != "completed":
        raise IncompleteRunError(summary)  # the flow run ends Failed, where schedulers look
    return summary


def run_plain(settings: RunSettings, flow_name: str = "nightly",
              run_id: str | None = None) -> dict[str, Any]:
    """The pipeline without Prefect: the same steps as plain functions, no API server."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dawnchorus-prepare") as executor:
        return run_pipeline(settings, flow_name, run_id, steps=_plain_steps(executor))


logging.getLogger(__name__).addHandler(logging.NullHandler())
