"""Cascades across models: a cheap first stage decides which windows a later model answers.

A run's `cascade` (RunSettings) lists later stages, e.g. BirdNET proposes, NatureLM verifies::

    --cascade '[{"model": "naturelm", "model_options": {"weights": "...", "llama": "..."},
                 "tasks": ["classify"], "pass_task": "detect", "pass_threshold": 0.3,
                 "candidates_top_k": 3}]'

Each stage is a second pass over the previous stage's **committed** rows, not a second actor
stage in the same Ray pipeline:

- its plan is a pure function of the catalog: the windows the previous stage analysed and passed
  (`Catalog.cascade_windows`) minus those already committed under the stage's own fingerprint,
  so resume and exactly-once hold per stage exactly as for the first (a crash in stage 2 keeps
  every committed unit of both stages; the next run plans the rest);
- a stage can be added to a season analysed long ago, without running the first model again;
- its candidates are the previous stage's answers as users see them (top-k by rank);
- each stage runs at its own sample rate with its own actors and resources (a GPU model's
  actors are not held while the CPU detector runs), and its windows are re-decoded: only the
  passed fraction, which is the point of a cascade.

Every stage keeps the first stage's window grid (window, hop, tail, channel policy) and writes its
windows and predictions (no embeddings: `--embeddings` is the first stage's) under its own fingerprint
(`settings.cascade_fingerprint`: model, tasks, the fingerprint it follows, pass rule, candidate
rule). Its `windows` rows are the windows it answered: its effort is the first stage's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Callable

from connectors.audio import WindowSpec
from connectors.catalog import Catalog
from connectors.errors import ConfigError
from flows.pipeline.ray_engine import ProcessResult, process_units
from flows.pipeline.passes import stage_pass
from flows.pipeline.plan import Unit, _path_for
from flows.pipeline.settings import CascadeStage, RunSettings, cascade_fingerprint
from flows.pipeline.stages import CommitContext, DecodeOptions
from naturelm_core.backend import backend_class, describe_backend, recording_rate_floor

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    stage: int  # 2 = the first cascade stage (the run's own model is stage 1)
    model: str
    model_id: str
    config_fingerprint: str
    upstream_fingerprint: str
    windows_passed: int = 0  # planned by this run (not yet committed under this stage)
    process: ProcessResult = field(default_factory=ProcessResult)

    def counts(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "model_id": self.model_id,
            "config_fingerprint": self.config_fingerprint, "follows": self.upstream_fingerprint,
            "windows_planned": self.windows_passed, "units_committed": self.process.units,
            "windows": self.process.windows, "windows_failed": self.process.windows_failed,
            "predictions": self.process.predictions,
            "units_uncommitted": len(self.process.uncommitted_units),
        }


def check_stage(stage: CascadeStage, number: int) -> None:
    """Refuse a stage whose candidate rule its backend cannot follow, before any work."""
    if stage.candidates_top_k is not None and not hasattr(backend_class(stage.model), "classify_candidates"):
        raise ConfigError(f"cascade stage {number} ({stage.model}): candidates_top_k needs a model "
                          "that classifies over per-window candidates (clap, naturelm)")


def plan_stage_units(catalog: Catalog, current_ids: list[str], stage: CascadeStage, *, upstream: str,
                     fingerprint: str, windows_per_unit: int, retry_failed: bool) -> list[Unit]:
    """Units of the windows this stage still has to answer, one recording and channel each."""
    todo = catalog.cascade_windows(upstream, fingerprint, pass_task=stage.pass_task,
                                   threshold=stage.pass_threshold, top_k=stage.candidates_top_k,
                                   retry_failed=retry_failed)
    recordings = {r.recording_id: r for r in catalog.plannable_recordings(current_ids)}
    units = []
    for (recording_id, channel), rows in groupby(todo, key=lambda w: (w.recording_id, w.channel)):
        rec = recordings.get(recording_id)
        if rec is None:  # a recording no longer listed (or changed since): not this run's
            continue
        rows = list(rows)
        for start in range(0, len(rows), windows_per_unit):
            chunk = rows[start : start + windows_per_unit]
            key = f"{recording_id}:{fingerprint}:{channel}:{chunk[0].window_index}-{chunk[-1].window_index}"
            units.append(Unit(
                unit_id=hashlib.sha256(key.encode()).hexdigest()[:16],
                recording_id=recording_id, deployment_id=rec.deployment_id, uri=rec.uri,
                path=_path_for(rec.uri), size_bytes=rec.size_bytes or 0,
                version_tag=rec.version_tag, channels=(channel,),
                windows=tuple(WindowSpec(w.window_index, w.offset_s, w.duration_s, w.padded) for w in chunk),
                start_utc=rec.start_utc, tz_name=rec.tz_name, sample_rate_hz=rec.sample_rate_hz,
                candidates=tuple(w.candidates for w in chunk) if stage.candidates_top_k else None,
            ))
    return units


def run_cascade(settings: RunSettings, run_id: str, first_fingerprint: str, current_ids: list[str],
                on_stage: Callable[[StageResult], None] | None = None) -> list[StageResult]:
    """Every cascade stage in order, each over the rows its predecessor has committed."""
    results = []
    upstream = first_fingerprint
    for number, stage in enumerate(settings.cascade, start=2):
        check_stage(stage, number)
        info = describe_backend(stage.model, **stage.model_options)
        fingerprint = cascade_fingerprint(settings, stage, upstream, info.model_id, info.settings)
        result = StageResult(number, stage.model, info.model_id, fingerprint, upstream)
        with Catalog(settings.location) as catalog:
            units = plan_stage_units(catalog, current_ids, stage, upstream=upstream,
                                     fingerprint=fingerprint,
                                     windows_per_unit=settings.windows_per_unit,
                                     retry_failed=settings.retry_failed)
            result.windows_passed = sum(u.expected_rows for u in units)
            log.info("cascade stage %d (%s): %d windows passed by %s >= %g", number, info.model_id,
                     result.windows_passed, stage.pass_task, stage.pass_threshold)
            decode = DecodeOptions(source=settings.source, storage_options=settings.storage_options,
                                   window_s=settings.window_s, sample_rate_hz=info.sample_rate_hz,
                                   channel_policy=settings.channel_policy,
                                   min_recording_rate_hz=recording_rate_floor(stage.model, info),
                                   resampler=info.resampler)
            ctx = CommitContext(run_id=run_id, fingerprint=fingerprint, model_id=info.model_id,
                                window_s=settings.window_s, band_hz=info.band())
            result.process = process_units(units, catalog, ctx, decode=decode,
                                           options=stage_pass(settings, stage))
        results.append(result)
        if on_stage is not None:
            on_stage(result)
        upstream = fingerprint
    return results
