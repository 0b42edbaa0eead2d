"""A pass: one model over planned units (`ray_engine.process_units`), with the run's engine knobs.

A run makes one pass, then one per cascade stage. Every pass takes its model, options and tasks
from its own place (the run's settings, or its `CascadeStage`) and every engine knob
(`ENGINE_KNOBS`) from the run's settings: a cascade stage runs on the same machine under the
same limits as the first pass, so it inherits `decode_workers` and `commit_interval_s` too (the
cascade used to drop those two, silently running with the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.pipeline.settings import CascadeStage, RunSettings

#: Run settings every pass, first or cascade stage, takes unchanged from the run.
ENGINE_KNOBS: tuple[str, ...] = (
    "batch_size", "model_actors", "decode_cpus", "actor_cpus", "actor_gpus", "decode_workers",
    "decode_placement", "commit_interval_s",
)
#: Finished units wait at most `commit_interval_s` for company before they commit (a crash loses
#: at most that much finished work, re-planned, never duplicated; a night writes one file per
#: table and partition per interval instead of one per unit), or until they hold this many
#: window + prediction rows (bounded driver memory; not a setting).
COMMIT_MAX_ROWS = 200_000


@dataclass(frozen=True)
class PassSettings:
    """Everything `process_units` needs besides the units, the catalog and where rows go."""

    model: str
    model_options: dict[str, Any]
    tasks: tuple[str, ...]
    batch_size: int
    model_actors: int
    decode_cpus: float
    actor_cpus: float
    actor_gpus: float
    decode_workers: int | None
    decode_placement: str
    commit_interval_s: float
    embeddings: bool = False  # write one vector per window
    candidates: bool = False  # classify over the previous stage's top-k labels
    commit_max_rows: int = COMMIT_MAX_ROWS


def _knobs(settings: RunSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in ENGINE_KNOBS}


def first_pass(settings: RunSettings, *, embeddings: bool) -> PassSettings:
    """The run's own model over its planned units."""
    return PassSettings(model=settings.model, model_options=settings.model_options,
                        tasks=settings.tasks, embeddings=embeddings, **_knobs(settings))


def stage_pass(settings: RunSettings, stage: CascadeStage) -> PassSettings:
    """A cascade stage's model over the windows its predecessor passed; the run's knobs."""
    return PassSettings(model=stage.model, model_options=stage.model_options, tasks=stage.tasks,
                        candidates=stage.candidates_top_k is not None, **_knobs(settings))
