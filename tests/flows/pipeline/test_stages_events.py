"""Decode, infer and commit of an event model as plain functions (no Ray): a located call's box
reaches its predictions row in the recording's time frame, every window records the band it
covered, a malformed box fails its window with the reason, and a recording below the model's
lowest rate fails its windows naming the file instead of being resampled up."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from connectors.catalog import Catalog
from flows.pipeline.discover import discover, sync_deployments, sync_recordings
from flows.pipeline.plan import plan_units
from flows.pipeline.stages import (
    CommitContext,
    DecodeOptions,
    Predictor,
    _answer_problem,
    decode_unit,
    unit_rows,
    window_band,
)
from naturelm_core.backend import Prediction, describe_backend, held_by_recording, recording_rate_floor
from tests.flows.pipeline.test_stages import as_batch, as_rows
from tests.support.synth_audio import audiomoth_name, chirp, fade, noise, place, write_wav

BAT_RATE_HZ = 384_000
WINDOW_S = 1.0
START = datetime(2024, 6, 1, 22, 0, tzinfo=timezone.utc)
OPTIONS = {"sample_rate_hz": BAT_RATE_HZ, "events": True, "band_low_hz": 10_000,
           "band_high_hz": 120_000, "min_recording_rate_hz": 240_000}
#: (seconds from the recording's start) of 5 ms 50 -> 40 kHz sweeps; 1.30 lies in window 1
PLANTED_S = [0.20, 1.30]


def bat_recording(folder, rate_hz: int, seconds: float = 2.0):
    folder.mkdir(parents=True, exist_ok=True)
    audio = noise(seconds, rate_hz, level_dbfs=-60, seed=1)
    if rate_hz >= 2 * 50_000:
        for t_s in PLANTED_S:
            audio = place(audio, fade(chirp(50_000, 40_000, 0.005, rate_hz), 0.0005, rate_hz), t_s,
                          rate_hz)
    return write_wav(folder / audiomoth_name(START), audio, rate_hz)


def run_stages(source, results):
    info = describe_backend("placeholder", **OPTIONS)
    found = discover(str(source), {}, None)
    with Catalog(results) as catalog:
        sync_deployments(catalog, found, "run-1")
        sync = sync_recordings(catalog, str(source), {}, found, "run-1", model="placeholder",
                               model_rate_hz=info.sample_rate_hz, model_band_hz=info.band(),
                               min_recording_rate_hz=recording_rate_floor("placeholder", info))
        units = plan_units(catalog, sync.current_ids, fingerprint="fp", window_s=WINDOW_S,
                           hop_s=WINDOW_S, tail="pad", channel_policy="mean", windows_per_unit=10)
    decode = DecodeOptions(str(source), {}, WINDOW_S, BAT_RATE_HZ, "mean",
                           min_recording_rate_hz=recording_rate_floor("placeholder", info))
    predictor = Predictor("placeholder", OPTIONS, ("classify",))
    ctx = CommitContext("run-1", "fp", "placeholder@x", WINDOW_S, band_hz=info.band())
    out = {}
    for unit in units:
        windows, predictions = unit_rows(
            unit, as_rows(predictor(as_batch(decode_unit(unit.as_item(), decode)))), ctx)
        out[unit.uri.rsplit("/", 2)[-2]] = (windows, predictions)
    return sync, out


def test_calls_reach_the_rows_in_the_recordings_time_and_windows_record_their_band(tmp_path):
    bat_recording(tmp_path / "src" / "fast", BAT_RATE_HZ)
    bat_recording(tmp_path / "src" / "slow", 48_000)
    sync, out = run_stages(tmp_path / "src", tmp_path / "results")
    windows, predictions = out["fast"]
    assert [w.status for w in windows] == ["ok", "ok"]
    assert {(w.band_low_hz, w.band_high_hz) for w in windows} == {(10_000.0, 120_000.0)}
    assert [p.window_index for p in predictions] == [0, 1]
    for p, t_s in zip(predictions, PLANTED_S):
        assert p.call_start_s == pytest.approx(t_s, abs=512 / BAT_RATE_HZ)  # recording time
        assert p.call_end_s == pytest.approx(t_s + 0.005, abs=512 / BAT_RATE_HZ)
        assert 40_000 <= p.low_freq_hz < p.high_freq_hz <= 50_000
        assert p.detection_score == pytest.approx(p.score)
    # The 48 kHz file is refused, named, with its reason; no row claims its band was heard.
    slow_windows, slow_predictions = out["slow"]
    assert slow_predictions == [] and {w.status for w in slow_windows} == {"failed"}
    error = slow_windows[0].error
    assert error.endswith("recorded at 48 kHz, below the 240 kHz the model needs to hear its "
                          "band: not resampled up, not analysed") and "/slow/" in error
    assert [p.code for p in sync.warnings] == ["below_model_rate"]
    assert sync.warnings[0].where.endswith(f"slow/{audiomoth_name(START)}")


def test_a_window_level_model_leaves_the_call_columns_null(tmp_path):
    bat_recording(tmp_path / "src" / "fast", BAT_RATE_HZ)
    found = discover(str(tmp_path / "src"), {}, None)
    with Catalog(tmp_path / "results") as catalog:
        sync = sync_recordings(catalog, str(tmp_path / "src"), {}, found, "run-1")
        (unit,) = plan_units(catalog, sync.current_ids, fingerprint="fp", window_s=WINDOW_S,
                             hop_s=WINDOW_S, tail="pad", channel_policy="mean", windows_per_unit=10)
    predictor = Predictor("placeholder", {"sample_rate_hz": 48_000}, ("detect", "classify"))
    rows = as_rows(predictor(as_batch(decode_unit(unit.as_item(), DecodeOptions(
        str(tmp_path / "src"), {}, WINDOW_S, 48_000, "mean")))))
    ctx = CommitContext("run-1", "fp", "placeholder@x", WINDOW_S, band_hz=(0.0, 24_000.0))
    windows, predictions = unit_rows(unit, rows, ctx)
    assert len(predictions) == 4
    assert all(p.call_start_s is None and p.low_freq_hz is None and p.detection_score is None
               for p in predictions)
    # A bird-rate model over a 384 kHz file: its windows say they heard up to 24 kHz only.
    assert {(w.band_low_hz, w.band_high_hz) for w in windows} == {(0.0, 24_000.0)}


def test_a_call_above_the_recordings_nyquist_is_not_kept(tmp_path):
    """A 192 kHz file analysed at 384 kHz (the model's floor lowered to take it): the resampled
    band above 96 kHz holds nothing of the file, so a call boxed there is not a call in it."""
    bat_recording(tmp_path / "src" / "dep", 192_000)
    found = discover(str(tmp_path / "src"), {}, None)
    with Catalog(tmp_path / "results") as catalog:
        sync = sync_recordings(catalog, str(tmp_path / "src"), {}, found, "run-1")
        (unit,) = plan_units(catalog, sync.current_ids, fingerprint="fp", window_s=WINDOW_S,
                             hop_s=WINDOW_S, tail="pad", channel_policy="mean", windows_per_unit=10)
    options = {**OPTIONS, "min_recording_rate_hz": 192_000}
    rows = as_rows(Predictor("placeholder", options, ("classify",))(as_batch(decode_unit(
        unit.as_item(), DecodeOptions(str(tmp_path / "src"), {}, WINDOW_S, BAT_RATE_HZ, "mean",
                                      min_recording_rate_hz=192_000)))))
    # Put one answer's box above 96 kHz, as a model seeing the empty upper band might.
    first = json.loads(rows[0]["predictions"])
    assert len(first) == 1
    ghost = {**first[0], "label": "ghost", "low_freq_hz": 97_000.0, "high_freq_hz": 110_000.0}
    at_edge = {**first[0], "label": "edge", "high_freq_hz": 96_000.9}  # 96,000 Hz in whole Hz
    rows[0]["predictions"] = json.dumps(first + [ghost, at_edge])
    ctx = CommitContext("run-1", "fp", "placeholder@x", WINDOW_S, band_hz=(10_000.0, 120_000.0))
    windows, predictions = unit_rows(unit, rows, ctx)
    assert {(w.band_low_hz, w.band_high_hz) for w in windows} == {(10_000.0, 96_000.0)}
    labels = [p.label for p in predictions if p.window_index == 0]
    assert "ghost" not in labels and "edge" in labels and len(labels) == 2
    assert held_by_recording(None, 192_000) and held_by_recording(96_000.0, None)


def test_the_band_is_cut_at_the_recordings_nyquist():
    assert window_band((10_000.0, 120_000.0), 192_000) == (10_000.0, 96_000.0)
    assert window_band((0.0, 24_000.0), 384_000) == (0.0, 24_000.0)
    assert window_band((10_000.0, 120_000.0), 16_000) == (10_000.0, 10_000.0)  # nothing covered
    assert window_band(None, 48_000) == (None, None)


@pytest.mark.parametrize("box, reason", [
    ({"start_s": 0.1, "end_s": 0.2, "low_freq_hz": 4e4}, "without high_freq_hz"),
    ({"start_s": 0.2, "end_s": 0.1, "low_freq_hz": 4e4, "high_freq_hz": 5e4}, "reversed"),
    ({"start_s": 0.1, "end_s": float("nan"), "low_freq_hz": 4e4, "high_freq_hz": 5e4}, "not finite"),
    ({"start_s": 0.1, "end_s": 0.2, "low_freq_hz": 4e4, "high_freq_hz": 5e4,
      "detection_score": 1.5}, "detection_score 1.5"),
])
def test_a_malformed_call_box_is_a_reason_to_fail_the_window(box, reason):
    answer = Prediction(0, "classify", "p", "x", "x", None, 0.9, **box)
    assert reason in _answer_problem(answer)
    assert _answer_problem(Prediction(0, "classify", "p", "x", "x", None, 0.9)) is None
