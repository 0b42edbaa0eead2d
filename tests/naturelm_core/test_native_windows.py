"""Backend-native windows: a run's default window is the model's own, and covering it wastes no
model work (BirdNET: one 3-s chunk per 3-s window; a multiple of 3 s without overlap)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from flows.pipeline.settings import (
    DEFAULT_WINDOW_S, UNIT_AUDIO_S, RunSettings, config_fingerprint, resolve_settings,
)
from naturelm_core.backend import BACKENDS, backend_class, describe_backend
from naturelm_core.birdnet.backend import CHUNK_SAMPLES, SAMPLE_RATE_HZ, BirdNETBackend, chunk_starts


def settings(**fields) -> RunSettings:
    return RunSettings(source="src", results="res", **fields)


def native(model: str) -> float | None:
    return backend_class(model).native_window_s


def test_backends_declare_their_native_windows():
    assert native("birdnet") == 3.0
    assert native("naturelm") == 10.0
    assert native("salmonn") == 10.0  # each 10-s window is one SALMONN clip (Whisper pads it to 30 s)
    # The placeholder stands in for NatureLM-audio in pipeline tests, the null model for BirdNET.
    assert native("placeholder") == 10.0
    assert native("null") == 3.0
    # What the driver asks before any worker loads the model says the same.
    assert describe_backend("birdnet", num_threads=1).native_window_s == 3.0
    assert describe_backend("null").native_window_s == 3.0
    assert set(BACKENDS) >= {"birdnet", "naturelm", "placeholder", "null"}


@pytest.mark.parametrize("model, window_s, per_unit", [
    ("birdnet", 3.0, 100), ("naturelm", 10.0, 30), ("placeholder", 10.0, 30),
])
def test_window_and_unit_size_default_to_the_models_native_window(model, window_s, per_unit):
    raw = settings(model=model)
    assert raw.window_s is None and raw.windows_per_unit is None
    resolved = resolve_settings(raw, native(model))
    assert resolved.window_s == window_s
    assert resolved.effective_hop_s == window_s
    assert resolved.windows_per_unit == per_unit == UNIT_AUDIO_S / window_s
    # Given values stay as given.
    chosen = resolve_settings(settings(model=model, window_s=6.0, windows_per_unit=7), native(model))
    assert (chosen.window_s, chosen.windows_per_unit) == (6.0, 7)


def test_a_model_that_takes_any_length_gets_the_default_window():
    assert resolve_settings(settings(), None).window_s == DEFAULT_WINDOW_S


def test_the_fingerprint_records_the_resolved_window():
    default = resolve_settings(settings(model="birdnet"), 3.0)
    explicit = resolve_settings(settings(model="birdnet", window_s=3.0), 3.0)
    ten = resolve_settings(settings(model="birdnet", window_s=10.0), 3.0)
    assert config_fingerprint(default, "m@1", {}) == config_fingerprint(explicit, "m@1", {})
    assert config_fingerprint(default, "m@1", {}) != config_fingerprint(ten, "m@1", {})
    with pytest.raises(ValueError, match="resolved"):
        config_fingerprint(settings(model="birdnet"), "m@1", {})


def test_a_hop_longer_than_the_native_window_is_refused_when_resolved():
    with pytest.raises(ValidationError, match="hop_s"):
        resolve_settings(settings(model="birdnet", hop_s=5.0), 3.0)


@pytest.mark.parametrize("window_s", [3.0, 6.0, 9.0, 30.0])
def test_multiples_of_three_seconds_are_covered_without_overlap(window_s):
    starts = chunk_starts(round(window_s * SAMPLE_RATE_HZ))
    assert list(starts) == list(range(0, round(window_s * SAMPLE_RATE_HZ), CHUNK_SAMPLES))
    assert len(starts) * 3.0 == window_s  # every sample scored exactly once


@pytest.fixture(scope="module")
def birdnet():
    return BirdNETBackend(num_threads=1, chunk_batch_size=8)


@pytest.mark.parametrize("window_s, chunks_per_window", [(3.0, 1), (9.0, 3), (10.0, 4)])
def test_birdnet_runs_one_chunk_per_three_seconds_of_native_windows(birdnet, monkeypatch,
                                                                    window_s, chunks_per_window):
    rows = []
    lane = birdnet._lanes[0]  # one thread, one interpreter: every chunk goes through it
    real = lane.run
    monkeypatch.setattr(lane, "run", lambda chunks: rows.append(len(chunks)) or real(chunks))
    n = round(window_s * SAMPLE_RATE_HZ)
    audio = np.random.default_rng(0).uniform(-0.1, 0.1, (5, n)).astype(np.float32)
    birdnet.predict(audio, np.full(5, n), ("detect",))
    # 10 s is the one shape here that needs a moved-back chunk (0, 3, 6, 7 s): 20 % more work.
    assert sum(rows) == 5 * chunks_per_window
