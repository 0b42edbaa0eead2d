"""Discover: list the source, read new recordings' headers and start times, register them.

Plain functions; the Prefect tasks in `flows.pipeline.run` wrap them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from connectors.audio import read_header
from connectors.catalog import Catalog
from connectors.errors import InputError, ServiceError, transient_reason
from connectors.tables import DeploymentRow, RecordingRow, replace
from connectors.storage import (
    Deployment,
    SkippedPath,
    SourceObject,
    describe_service,
    open_root,
)
from connectors.source_check import Problem, check_listing, recording_problems, recording_warnings
from connectors.timeparse import resolve_start_time

log = logging.getLogger(__name__)

#: Header reads are I/O bound (one or two small range requests each on object storage).
HEADER_THREADS = 8
#: Status of a recording whose header could not be read because the storage failed (not the
#: file): it is not planned, and the next run reads it again as if it had never been seen.
UNAVAILABLE = "unavailable"


@dataclass
class Discovery:
    """What the source holds now."""

    objects: list[SourceObject]
    deployments: dict[str, Deployment]
    skipped: list[SkippedPath] = field(default_factory=list)  # listed paths that are not recordings
    empty_warning: str | None = None  # when no recording was found: root, extensions, what was skipped
    problems: list[Problem] = field(default_factory=list)  # the source check's warnings (docs/source.md)


@dataclass
class SyncResult:
    """How the source differs from the catalog, after registering the difference."""

    current_ids: list[str]  # recording ids of every object listed now
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # {uri, error} of new failures
    warnings: list[Problem] = field(default_factory=list)  # new recordings' source-check warnings
    #: {uri, error} of recordings whose headers the storage failed to give (read again next run)
    unavailable: list[dict[str, Any]] = field(default_factory=list)


def recording_id(obj: SourceObject) -> str:
    """Stable id of one version of one object: a changed size or ETag/mtime is a new recording."""
    key = f"{obj.uri}\n{obj.size_bytes}\n{obj.version_tag}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def discover(source: str, storage_options: dict[str, Any], only: tuple[str, ...] | None) -> Discovery:
    """List recordings and deployment metadata, checked (`connectors.source_check`): an error
    (bad metadata, a misnamed column, swapped coordinates...) raises ConfigError before any
    work; warnings travel with the discovery to the run header and the run's record. Storage
    that fails to list raises ServiceError (the run ends as the service's failure, not a verdict)."""
    try:
        checked = check_listing(source, storage_options, only)
    except Exception as exc:
        transient = transient_reason(exc)
        if transient is None:
            raise
        fs, _ = open_root(source, storage_options)
        raise ServiceError(describe_service(fs), f"listing {source} failed: {transient}") from exc
    checked.raise_errors()
    listing = checked.listing
    if only is not None:
        unmatched = sorted(set(only) - {o.deployment_id for o in listing.objects})
        if unmatched:  # `dawnchorus run` refuses these before it starts; a flow run says so here
            log.warning("deployments %s: no recordings under %s", ", ".join(unmatched), source)
    objects = listing.objects
    log.info("discovered %d recordings in %d deployments under %s (%d other paths skipped)", len(objects),
             len({o.deployment_id for o in objects}), source, len(listing.skipped))
    return Discovery(objects=objects, deployments=checked.deployments, skipped=listing.skipped,
                     empty_warning=listing.empty_warning(),
                     problems=[p for p in checked.report.warnings if p.code != "no_recordings"])


def _recording_row(obj: SourceObject, fs: Any, deployment: Deployment | None, run_id: str,
                   now: datetime, model: str | None = None,
                   model_rate_hz: int | None = None,
                   model_band_hz: tuple[float, float] | None = None,
                   min_recording_rate_hz: int | None = None) -> RecordingRow:
    """The catalog row of one new recording version: its header and start time, or why not."""
    row = RecordingRow(
        recording_id=recording_id(obj), deployment_id=obj.deployment_id, uri=obj.uri,
        object_key=obj.key, size_bytes=obj.size_bytes, etag=obj.etag, mtime=obj.mtime,
        duration_s=None, frames=None, sample_rate_hz=None, channels=None, format=None,
        subtype=None, start_utc=None, tz_name=None, time_source=None, tz_source=None,
        status="ok", error=None, run_id=run_id, discovered_at=now,
    )
    try:
        header = read_header(fs, obj.path, uri=obj.uri)
    except Exception as exc:  # a bad file must never stop the run; record why it failed
        transient = transient_reason(exc)
        if transient is not None:  # the storage failed, not the file: read again next run
            return replace(row, status=UNAVAILABLE, error=f"{describe_service(fs)}: {transient}")
        if isinstance(exc, InputError):
            return replace(row, status="failed", error=exc.reason)
        return replace(row, status="failed", error=f"unreadable: {type(exc).__name__}: {exc}")
    start = resolve_start_time(
        obj.key.rsplit("/", 1)[-1], header.comment, header.guano,
        deployment.timezone if deployment else None,
        deployment.clock_timezone if deployment else None,
    )
    problems = recording_problems(header.sample_rate_hz, start, model, model_rate_hz, obj.uri,
                                  model_band_hz, min_recording_rate_hz)
    return replace(
        row, duration_s=header.duration_s, frames=header.frames,
        sample_rate_hz=header.sample_rate_hz, channels=header.channels, format=header.format,
        subtype=header.subtype, start_utc=start.start_utc, tz_name=start.tz_name,
        time_source=start.time_source, tz_source=start.tz_source,
        time_conflict_s=start.conflict_s if start.conflicting else None,
        warnings=[f"metadata_refused: {text}" for text in start.warnings]
        + recording_warnings(problems) or None,
    )


def sync_recordings(catalog: Catalog, source: str, storage_options: dict[str, Any],
                    discovery: Discovery, run_id: str, model: str | None = None,
                    model_rate_hz: int | None = None,
                    model_band_hz: tuple[float, float] | None = None,
                    min_recording_rate_hz: int | None = None) -> SyncResult:
    """Register new and changed recordings (headers read once, in threads) in one transaction.

    Each new recording is checked against `model` (its rate `model_rate_hz`, its band
    `model_band_hz`, its lowest recording rate) and for start
    times that disagree; what the check says stays on the recording and in the result."""
    fs, _ = open_root(source, storage_options)
    held = catalog.known_recordings()
    # A version whose header the storage failed to give is not known: it is read again (and its
    # row replaced) as if it were new.
    known = [r for r in held if r.status != UNAVAILABLE]
    known_ids = {r.recording_id for r in known}
    ids_by_uri: dict[str, list[str]] = {}
    for r in known:
        ids_by_uri.setdefault(r.uri, []).append(r.recording_id)

    result = SyncResult(current_ids=[recording_id(o) for o in discovery.objects])
    todo = [o for o, rid in zip(discovery.objects, result.current_ids) if rid not in known_ids]
    result.unchanged = len(discovery.objects) - len(todo)
    superseded = [old for o in todo for old in ids_by_uri.get(o.uri, [])]
    todo_uris = {o.uri for o in todo}
    superseded += [r.recording_id for r in held
                   if r.status == UNAVAILABLE and r.uri in todo_uris]  # its row is written anew
    result.changed = sum(1 for o in todo if o.uri in ids_by_uri)
    result.new = len(todo) - result.changed

    now = datetime.now(timezone.utc)
    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
        rows = list(pool.map(
            lambda o: _recording_row(o, fs, discovery.deployments.get(o.deployment_id), run_id, now,
                                     model, model_rate_hz, model_band_hz, min_recording_rate_hz),
            todo,
        ))
    for row in rows:
        for text in row.warnings or ():
            code, _, message = text.partition(": ")
            result.warnings.append(Problem("warning", code, row.uri, message))
        if row.status == "failed":
            log.warning("recording failed: %s: %s", row.uri, row.error)
            result.failed.append({"uri": row.uri, "error": row.error})
        elif row.status == UNAVAILABLE:
            log.debug("recording unavailable (read again next run): %s: %s", row.uri, row.error)
            result.unavailable.append({"uri": row.uri, "error": row.error})
    if rows or superseded:
        catalog.register_recordings(rows, superseded)
    log.info("recordings: %d new, %d changed, %d unchanged, %d failed, %d unavailable", result.new,
             result.changed, result.unchanged, len(result.failed), len(result.unavailable))
    return result


def sync_deployments(catalog: Catalog, discovery: Discovery, run_id: str) -> None:
    """Upsert deployments.csv rows, plus a bare row for each deployment folder it does not name."""
    rows = []
    seen = {o.deployment_id for o in discovery.objects}
    for dep_id in sorted(seen | set(discovery.deployments)):
        d = discovery.deployments.get(dep_id)
        rows.append(DeploymentRow(
            deployment_id=dep_id,
            site_id=d.site_id if d else None,
            latitude=d.latitude if d else None,
            longitude=d.longitude if d else None,
            recorder=d.recorder if d else None,
            timezone=d.timezone if d else None,
            start_utc=d.start if d else None,
            end_utc=d.end if d else None,
            extra=json.dumps(d.extra, default=str) if d and d.extra else None,
            updated_run_id=run_id,
            clock_timezone=d.clock_timezone if d else None,
            species_include=list(d.species_include) if d and d.species_include else None,
            species_exclude=list(d.species_exclude) if d and d.species_exclude else None,
        ))
    catalog.upsert_deployments(rows)
