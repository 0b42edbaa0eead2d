"""Decode, infer and commit as plain functions on one batch, without Ray: the effort rows are exact,
nothing non-finite reaches the catalog, a file rewritten since discovery is refused, and a
recording with a failed window is completed by the next run and re-run by --retry-failed."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
import pytest
import soundfile as sf

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import replace
from flows.pipeline.discover import discover, sync_deployments, sync_recordings
from flows.pipeline.plan import Unit, plan_units
from flows.pipeline.stages import CommitContext, DecodeOptions, Predictor, decode_unit, unit_rows
from naturelm_core.backend import BACKENDS, Prediction
from naturelm_core.placeholder import PlaceholderBackend
from tests.support.synth_audio import audiomoth_name, noise, place, tone, truncate_wav, write_wav

RATE_HZ = 16_000
START = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)
TASKS = ("detect", "classify")


def as_batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Decoded rows as the numpy column batch Ray Data hands the model stage."""
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0] if k != "audio"}
    batch["audio"] = np.stack([r["audio"] for r in rows])  # (B, S)
    return batch


def as_rows(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The model stage's output columns back as rows, as the driver receives them."""
    return [{k: batch[k][i] for k in batch} for i in range(len(batch["unit_id"]))]


def plan(source, results, windows_per_unit=30, retry_failed=False) -> list[Unit]:
    """Discover and register the source, then plan it, exactly as a run does (minus Ray)."""
    found = discover(str(source), {}, None)
    with Catalog(results) as catalog:
        sync_deployments(catalog, found, "run-1")
        sync = sync_recordings(catalog, str(source), {}, found, "run-1")
        return plan_units(catalog, sync.current_ids, fingerprint="fp", window_s=10.0, hop_s=10.0,
                          tail="pad", channel_policy="mean", windows_per_unit=windows_per_unit,
                          retry_failed=retry_failed)


def process(units: Sequence[Unit], source, backend: str = "placeholder", fail: set[int] = frozenset()):
    """decode → infer → unit rows for each unit; windows in `fail` fail as a model error would."""
    options = DecodeOptions(str(source), {}, 10.0, RATE_HZ, "mean")
    predictor = Predictor(backend, {"sample_rate_hz": RATE_HZ} if backend == "placeholder" else {}, TASKS)
    ctx = CommitContext("run-1", "fp", "model@x", 10.0)
    out = []
    for unit in units:
        rows = as_rows(predictor(as_batch(decode_unit(unit.as_item(), options))))
        for r in rows:
            if r["window_index"] in fail:
                r.update(status="failed", error="model error: RuntimeError: out of memory", predictions="[]")
        out.append(unit_rows(unit, rows, ctx))
    return out


def recording(folder, samples, subtype="PCM_16", name=None):
    folder.mkdir(parents=True, exist_ok=True)
    return write_wav(folder / (name or audiomoth_name(START)), samples, RATE_HZ, subtype=subtype)


def test_non_finite_samples_fail_their_windows_and_never_reach_predictions(tmp_path):
    audio = place(noise(30.0, RATE_HZ, -30), tone(1000.0, 2.0, RATE_HZ), 3.0, RATE_HZ)
    audio[int(12.5 * RATE_HZ)] = np.nan
    audio[int(25.0 * RATE_HZ)] = np.inf
    recording(tmp_path / "src" / "dep", audio, subtype="FLOAT")
    [(windows, predictions)] = process(plan(tmp_path / "src", tmp_path / "res"), tmp_path / "src")
    assert [w.status for w in windows] == ["ok", "failed", "failed"]
    for w in windows[1:]:
        assert "non-finite samples" in w.error and "20240501_040000.WAV" in w.error
    assert {p.window_index for p in predictions} == {0}
    assert all(math.isfinite(p.score) and 0 <= p.score <= 1 for p in predictions)


class NaNBackend(PlaceholderBackend):
    """The placeholder, except that it scores the second window of every batch NaN."""

    def predict(self, audio, valid_samples, tasks) -> list[Prediction]:
        out = super().predict(audio, valid_samples, tasks)
        return [Prediction(p.item, p.task, p.prompt_id, p.answer_text, p.label, p.scientific_name,
                           float("nan") if p.item == 1 else p.score, p.rank) for p in out]


def test_a_backend_returning_nan_fails_those_windows(tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, "nan-test", "tests.flows.pipeline.test_stages:NaNBackend")
    recording(tmp_path / "src" / "dep", noise(30.0, RATE_HZ, -20))
    units = plan(tmp_path / "src", tmp_path / "res")
    options = DecodeOptions(str(tmp_path / "src"), {}, 10.0, RATE_HZ, "mean")
    out = Predictor("nan-test", {"sample_rate_hz": RATE_HZ}, TASKS)(
        as_batch(decode_unit(units[0].as_item(), options)))
    assert list(out["status"]) == ["ok", "failed", "ok"]
    assert "not a probability" in out["error"][1]
    assert out["predictions"][1] == "[]" and out["predictions"][0] != "[]"


def test_commit_refuses_a_non_finite_score(tmp_path):
    recording(tmp_path / "src" / "dep", noise(10.0, RATE_HZ, -20))
    [(windows, predictions)] = process(plan(tmp_path / "src", tmp_path / "res"), tmp_path / "src")
    bad = [replace(predictions[0], score=float("nan"))]
    with Catalog(tmp_path / "res") as catalog, pytest.raises(ValueError, match="finite probabilities"):
        catalog.commit_unit(windows, bad)
    with CatalogReader(tmp_path / "res") as reader:
        assert reader.query("select count(*) as n from windows").to_pylist() == [{"n": 0}]


def test_a_file_rewritten_after_discovery_is_refused(tmp_path):
    path = recording(tmp_path / "src" / "dep", noise(30.0, RATE_HZ, -20))
    units = plan(tmp_path / "src", tmp_path / "res")
    write_wav(path, noise(20.0, RATE_HZ, -20, seed=3), RATE_HZ)  # rewritten in place, shorter
    [(windows, predictions)] = process(units, tmp_path / "src")
    assert [w.status for w in windows] == ["failed"] * 3 and not predictions
    assert all("changed since discovery" in w.error for w in windows)
    # The next run sees a new version of the file and analyses it; the stale one is gone.
    again = plan(tmp_path / "src", tmp_path / "res")
    assert [len(u.windows) for u in again] == [2] and again[0].recording_id != units[0].recording_id


def test_a_truncated_files_effort_is_the_audio_really_there(tmp_path):
    path = recording(tmp_path / "src" / "dep", noise(35.0, RATE_HZ, -20))
    truncate_wav(path, keep_fraction=0.5)  # the header still promises 35 s; 17.5 s are there
    [(windows, _)] = process(plan(tmp_path / "src", tmp_path / "res"), tmp_path / "src")
    got = [(w.status, round(w.duration_s, 4), w.padded) for w in windows]
    assert got == [("ok", 10.0, False), ("ok", 7.5, True), ("empty", 0.0, True), ("empty", 0.0, True)]
    assert sf.info(str(path)).duration == pytest.approx(17.5)


def test_a_failed_window_does_not_end_its_recording_and_retry_failed_reruns_exactly_it(tmp_path):
    recording(tmp_path / "src" / "dep", noise(60.0, RATE_HZ, -20))
    source, results = tmp_path / "src", tmp_path / "res"
    units = plan(source, results, windows_per_unit=2)
    assert [[w.index for w in u.windows] for u in units] == [[0, 1], [2, 3], [4, 5]]
    # Run 1 commits its first unit with window 1 failed (a transient model error) and dies.
    [(windows, predictions)] = process(units[:1], source, fail={1})
    with Catalog(results) as catalog:
        catalog.commit_unit(windows, predictions)
    # Run 2 plans every uncommitted window of the (readable) recording, not the failed one.
    units = plan(source, results, windows_per_unit=2)
    assert [[w.index for w in u.windows] for u in units] == [[2, 3], [4, 5]]
    with Catalog(results) as catalog:
        for windows, predictions in process(units, source):
            catalog.commit_unit(windows, predictions)
    assert plan(source, results, windows_per_unit=2) == []
    # --retry-failed plans exactly the failed window; its retry replaces the failed row.
    retry = plan(source, results, windows_per_unit=2, retry_failed=True)
    assert [[w.index for w in u.windows] for u in retry] == [[1]]
    with Catalog(results) as catalog:
        for windows, predictions in process(retry, source):
            catalog.commit_unit(windows, predictions)
    with CatalogReader(results) as reader:
        rows = reader.query("select window_index, status from windows order by window_index").to_pylist()
        statuses = reader.query("select status from recordings").to_pylist()
        detect = reader.query("select window_index from predictions where task = 'detect' "
                              "order by window_index").to_pylist()
    assert rows == [{"window_index": i, "status": "ok"} for i in range(6)]
    assert statuses == [{"status": "ok"}]
    assert [r["window_index"] for r in detect] == list(range(6))
    assert plan(source, results, windows_per_unit=2, retry_failed=True) == []


def test_a_unit_committed_twice_is_in_the_catalog_once(tmp_path):
    # A signal between the database's commit and the driver's bookkeeping made the driver commit
    # the same finished units again on its way out (CI, 2026-12-07: 12 rows twice after Ctrl-C).
    recording(tmp_path / "src" / "dep", noise(40.0, RATE_HZ, -20))
    source, results = tmp_path / "src", tmp_path / "res"
    first, second = process(plan(source, results, windows_per_unit=2), source)
    with Catalog(results) as catalog:
        catalog.commit_units([first])
        catalog.commit_units([first, second])  # the first again, beside one not yet in
        catalog.commit_units([first, second])
    with CatalogReader(results) as reader:
        windows = reader.query("select window_index, count(*) as n from windows "
                               "group by all order by all").to_pylist()
        predictions = reader.query("select count(*) as n from predictions").to_pylist()[0]["n"]
    assert windows == [{"window_index": i, "n": 1} for i in range(4)]
    assert predictions == len(first[1]) + len(second[1]) > 0


def test_stereo_mean_fails_when_one_channel_is_non_finite(tmp_path):
    left = noise(10.0, RATE_HZ, -20)
    right = noise(10.0, RATE_HZ, -20, seed=1)
    right[100] = np.nan
    recording(tmp_path / "src" / "dep", np.stack([left, right], axis=1), subtype="FLOAT")
    [(windows, predictions)] = process(plan(tmp_path / "src", tmp_path / "res"), tmp_path / "src")
    assert [w.status for w in windows] == ["failed"] and not predictions


def test_each_channel_policy_fails_only_the_bad_channel(tmp_path):
    left = noise(10.0, RATE_HZ, -20)
    right = noise(10.0, RATE_HZ, -20, seed=1)
    right[100] = np.inf
    recording(tmp_path / "src" / "dep", np.stack([left, right], axis=1), subtype="FLOAT")
    found = discover(str(tmp_path / "src"), {}, None)
    with Catalog(tmp_path / "res") as catalog:
        sync = sync_recordings(catalog, str(tmp_path / "src"), {}, found, "run-1")
        [unit] = plan_units(catalog, sync.current_ids, fingerprint="fp", window_s=10.0, hop_s=10.0,
                            tail="pad", channel_policy="each", windows_per_unit=30)
    rows = decode_unit(unit.as_item(), DecodeOptions(str(tmp_path / "src"), {}, 10.0, RATE_HZ, "each"))
    assert [(r["channel"], r["status"]) for r in rows] == [(1, "ok"), (2, "failed")]
