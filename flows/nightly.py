"""Prefect flows: `nightly` (new and changed recordings) and `backfill` (chosen deployments/model).

Thin tasks around the plain functions of discover / plan / pipeline / report; the flow body only
wires them. Retries only where repeating is safe (listing and header reads are read-only).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from connectors.catalog import Catalog
from flows import discover as discover_mod
from flows import report as report_mod
from flows.pipeline import CommitContext, DecodeOptions, ProcessResult, process_units
from flows.plan import Unit, plan_units
from flows.settings import RunSettings, config_fingerprint
from naturelm_core.backend import describe_backend

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("flow", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()), ("parameters", pa.string()), ("config_fingerprint", pa.string()),
    ("model_id", pa.string()), ("code_version", pa.string()), ("counts", pa.string()),
])


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


@task(name="identify-model", cache_policy=NO_CACHE)
def identify_model(settings: RunSettings) -> tuple[str, dict[str, Any], str, int]:
    """Model id, settings, fingerprint and sample rate; missing weights stop the run here."""
    info = describe_backend(settings.model, **settings.model_options)
    fingerprint = config_fingerprint(settings, info.model_id, info.settings)
    return info.model_id, info.settings, fingerprint, info.sample_rate_hz


@task(name="discover", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def discover_task(settings: RunSettings) -> discover_mod.Discovery:
    return discover_mod.discover(settings.source, settings.storage_options, settings.deployments)


@task(name="register-recordings", cache_policy=NO_CACHE)
def register_task(settings: RunSettings, discovery: discover_mod.Discovery,
                  run_id: str) -> discover_mod.SyncResult:
    with Catalog(settings.results) as catalog:
        discover_mod.sync_deployments(catalog, discovery, run_id)
        return discover_mod.sync_recordings(
            catalog, settings.source, settings.storage_options, discovery, run_id
        )


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(settings: RunSettings, current_ids: list[str], fingerprint: str) -> list[Unit]:
    with Catalog(settings.results) as catalog:
        if settings.retry_failed:
            catalog.forget_failed_windows(fingerprint)
        return plan_units(
            catalog, current_ids, fingerprint=fingerprint, window_s=settings.window_s,
            hop_s=settings.effective_hop_s, tail=settings.tail,
            channel_policy=settings.channel_policy, windows_per_unit=settings.windows_per_unit,
        )


@task(name="process", cache_policy=NO_CACHE)
def process_task(settings: RunSettings, units: list[Unit], run_id: str, fingerprint: str,
                 model_id: str, sample_rate_hz: int) -> ProcessResult:
    decode = DecodeOptions(
        source=settings.source, storage_options=settings.storage_options,
        window_s=settings.window_s, sample_rate_hz=sample_rate_hz,
        channel_policy=settings.channel_policy,
    )
    ctx = CommitContext(run_id=run_id, fingerprint=fingerprint, model_id=model_id,
                        window_s=settings.window_s)
    with Catalog(settings.results) as catalog:
        return process_units(
            units, catalog, ctx, decode=decode, model=settings.model,
            model_options=settings.model_options, tasks=settings.tasks,
            batch_size=settings.batch_size, model_actors=settings.model_actors,
            decode_cpus=settings.decode_cpus, actor_cpus=settings.actor_cpus,
            actor_gpus=settings.actor_gpus,
        )


@task(name="report", cache_policy=NO_CACHE)
def report_task(settings: RunSettings, run_id: str, counts: dict[str, Any]) -> str:
    with Catalog(settings.results) as catalog:
        return report_mod.write_report(catalog, settings.results, run_id, counts)


def _run_row(run_id: str, flow_name: str, started: datetime, status: str, settings: RunSettings,
             fingerprint: str | None, model_id: str | None, counts: dict[str, Any] | None,
             finished: datetime | None = None) -> pa.Table:
    return pa.Table.from_pylist([{
        "run_id": run_id, "flow": flow_name, "started_at": started, "finished_at": finished,
        "status": status, "parameters": settings.model_dump_json(),
        "config_fingerprint": fingerprint, "model_id": model_id, "code_version": code_version(),
        "counts": json.dumps(counts) if counts is not None else None,
    }], RUNS_SCHEMA)


def run_pipeline(settings: RunSettings, flow_name: str) -> dict[str, Any]:
    """discover → register → plan → process → report, recording the run in `runs`."""
    logger = get_run_logger()
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    started = datetime.now(timezone.utc)
    model_id, _, fingerprint, sample_rate_hz = identify_model(settings)
    with Catalog(settings.results) as catalog:
        catalog.start_run(_run_row(run_id, flow_name, started, "running", settings, fingerprint,
                                   model_id, None))
    counts: dict[str, Any] = {}
    status = "failed"
    try:
        discovery = discover_task(settings)
        sync = register_task(settings, discovery, run_id)
        units = plan_task(settings, sync.current_ids, fingerprint)
        result = process_task(settings, units, run_id, fingerprint, model_id, sample_rate_hz)
        counts = {
            "recordings_listed": len(sync.current_ids), "recordings_new": sync.new,
            "recordings_changed": sync.changed, "recordings_failed": len(sync.failed),
            "units_planned": len(units), "units_committed": result.units,
            "windows": result.windows, "windows_failed": result.windows_failed,
            "predictions": result.predictions,
        }
        status = "completed" if not result.uncommitted_units else "failed"
    finally:
        with Catalog(settings.results) as catalog:
            catalog.finish_run(_run_row(run_id, flow_name, started, status, settings, fingerprint,
                                        model_id, counts, datetime.now(timezone.utc)))
    counts["report"] = report_task(settings, run_id, counts)
    logger.info("run %s %s: %s", run_id, status, json.dumps(counts))
    summary = {"run_id": run_id, "status": status, "config_fingerprint": fingerprint, **counts}
    if status != "completed":
        raise IncompleteRunError(summary)  # the flow run ends Failed, where schedulers look
    return summary


@flow(name="nightly", log_prints=False)
def nightly(settings: RunSettings) -> dict[str, Any]:
    """Analyse every new or changed recording under the source root (scheduled nightly)."""
    return run_pipeline(settings, "nightly")


@flow(name="backfill", log_prints=False)
def backfill(settings: RunSettings) -> dict[str, Any]:
    """Analyse chosen deployments (settings.deployments), e.g. with a new model or prompt."""
    return run_pipeline(settings, "backfill")


logging.getLogger(__name__).addHandler(logging.NullHandler())
