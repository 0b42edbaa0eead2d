"""Settings travel whole: every pass (the run's, each cascade stage's) gets the run's engine knobs
from one place (`flows.pipeline.passes`), and the cascade hands them to `process_units`."""

from __future__ import annotations

import pytest

from flows.pipeline import cascade
from flows.pipeline.passes import ENGINE_KNOBS, first_pass, stage_pass
from flows.pipeline.ray_engine import ProcessResult
from flows.pipeline.settings import RunSettings

# Every knob away from its default, so that a pass that dropped one would show it.
KNOBS = {"batch_size": 7, "model_actors": 2, "decode_cpus": 0.5, "actor_cpus": 0.25,
         "actor_gpus": 0.0, "decode_workers": 3, "decode_placement": "tasks",
         "commit_interval_s": 2.5}


def settings(tmp_path, **extra) -> RunSettings:
    return RunSettings(source=str(tmp_path / "source"), results=str(tmp_path / "results"),
                       model="placeholder", window_s=3.0, windows_per_unit=10,
                       cascade=[{"model": "placeholder", "tasks": ["classify"],
                                 "pass_threshold": 0.2}], **KNOBS, **extra)


def test_the_knobs_named_are_exactly_the_ones_set_here():
    assert set(ENGINE_KNOBS) == set(KNOBS)
    assert set(ENGINE_KNOBS) <= set(RunSettings.model_fields)


@pytest.mark.parametrize("name", ENGINE_KNOBS)
def test_a_cascade_stage_runs_with_the_runs_knobs(tmp_path, name):
    run = settings(tmp_path)
    stage = stage_pass(run, run.cascade[0])
    assert getattr(stage, name) == getattr(run, name) == KNOBS[name]
    assert getattr(first_pass(run, embeddings=False), name) == KNOBS[name]


def test_a_pass_takes_model_and_tasks_from_its_own_place(tmp_path):
    run = settings(tmp_path, tasks=("detect", "classify"))
    first, stage = first_pass(run, embeddings=True), stage_pass(run, run.cascade[0])
    assert (first.model, first.tasks, first.embeddings) == ("placeholder", ("detect", "classify"), True)
    assert (stage.tasks, stage.embeddings, stage.candidates) == (("classify",), False, False)


def test_the_cascade_hands_decode_workers_and_commit_interval_to_process_units(tmp_path,
                                                                              monkeypatch):
    run = settings(tmp_path)
    calls = []

    def fake_process_units(units, catalog, ctx, **kwargs):
        calls.append(kwargs)
        return ProcessResult()

    monkeypatch.setattr(cascade, "process_units", fake_process_units)
    cascade.run_cascade(run, "run-1", "upstream-fingerprint", [])
    assert len(calls) == 1
    options = calls[0]["options"]
    assert (options.decode_workers, options.commit_interval_s) == (3, 2.5)
