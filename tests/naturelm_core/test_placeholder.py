"""The placeholder backend answers what synthetic audio of known content implies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from naturelm_core.backend import BackendError, load_backend
from naturelm_core.placeholder import PlaceholderBackend, rms_dbfs

RATE_HZ = 16_000
WINDOW_S = 10.0


def tone(freq_hz: float, peak: float, duration_s: float = WINDOW_S) -> np.ndarray:
    t_s = np.arange(int(duration_s * RATE_HZ)) / RATE_HZ
    return (peak * np.sin(2 * np.pi * freq_hz * t_s)).astype(np.float32)


def noise(rms: float, duration_s: float = WINDOW_S, seed: int = 0) -> np.ndarray:
    samples = np.random.default_rng(seed).standard_normal(int(duration_s * RATE_HZ))
    return (rms * samples).astype(np.float32)


def run(backend, windows, valid=None, tasks=("detect", "classify")):
    audio = np.stack(windows)  # (B, S)
    if valid is None:
        valid = np.full(audio.shape[0], audio.shape[1])
    return backend.predict(audio, np.asarray(valid), list(tasks))


@pytest.fixture
def placeholder() -> PlaceholderBackend:
    return PlaceholderBackend()


def test_registered_under_its_name():
    backend = load_backend("placeholder", sample_rate_hz=32_000)
    assert isinstance(backend, PlaceholderBackend) and backend.sample_rate_hz == 32_000
    assert backend.model_id == "placeholder-v1@none"


def test_loud_tone_is_detected_and_faint_noise_is_not(placeholder):
    # A sine of peak 10**(-3/20) has RMS 10**(-6/20): -6 dBFS. Noise of RMS 1e-3 is -60 dBFS.
    loud = tone(1000, peak=10 ** (-3 / 20))
    faint = noise(rms=1e-3)
    detect = {p.item: p for p in run(placeholder, [loud, faint], tasks=["detect"])}
    assert detect[0].score > 0.999 and detect[0].label == "animal"
    assert detect[1].score < 1e-6


@pytest.mark.parametrize("level_dbfs", [-40.0, -32.0, -30.0, -27.0, -20.0])
def test_detect_follows_the_documented_logistic(placeholder, level_dbfs):
    window = noise(rms=10 ** (level_dbfs / 20), seed=3)
    measured_dbfs = 20 * math.log10(float(np.sqrt(np.mean(window.astype(np.float64) ** 2))))
    (p,) = run(placeholder, [window], tasks=["detect"])
    assert p.score == pytest.approx(1 / (1 + math.exp(-(measured_dbfs + 30) / 2)), rel=1e-9)
    assert measured_dbfs == pytest.approx(level_dbfs, abs=0.05)  # the window is what we meant


def test_detect_threshold_is_an_option():
    window = noise(rms=10 ** (-45 / 20))
    (default,) = run(PlaceholderBackend(), [window], tasks=["detect"])
    (lenient,) = run(PlaceholderBackend(threshold_dbfs=-50.0), [window], tasks=["detect"])
    assert default.score < 0.01 < 0.9 < lenient.score


def test_detect_uses_only_valid_samples(placeholder):
    # Half a window of -10 dBFS tone then padding: padding must not dilute the level.
    window = tone(500, peak=10 ** (-7 / 20))
    window[window.shape[0] // 2 :] = 0.0
    (padded,) = run(placeholder, [window], valid=[window.shape[0] // 2], tasks=["detect"])
    (as_if_valid,) = run(placeholder, [window], tasks=["detect"])
    assert padded.answer_text == "rms -10.0 dBFS"
    assert padded.score > as_if_valid.score


def test_silence_scores_zero(placeholder):
    (p,) = run(placeholder, [np.zeros(RATE_HZ, np.float32)], tasks=["detect"])
    assert p.score == 0.0
    assert rms_dbfs(np.zeros(8, np.float32)) == -math.inf


@pytest.mark.parametrize("freq_hz, label", [(440.0, "tone 400 Hz"), (1234.0, "tone 1200 Hz"),
                                            (2951.0, "tone 3000 Hz")])
def test_classify_names_the_tone_rounded_to_100_hz(placeholder, freq_hz, label):
    (p,) = run(placeholder, [tone(freq_hz, peak=0.5)], tasks=["classify"])
    assert (p.label, p.answer_text, p.rank, p.scientific_name) == (label, label, 1, None)
    assert p.score > 0.99  # a pure tone: (almost) all its power within +-50 Hz of the peak


def test_classify_score_is_low_for_noise_and_for_two_tones(placeholder):
    two = tone(1000, peak=0.5) + tone(3000, peak=0.4)  # the 1000 Hz one dominates
    (white, pair) = run(placeholder, [noise(rms=0.1), two], tasks=["classify"])
    assert white.score < 0.05
    assert pair.label == "tone 1000 Hz"
    assert pair.score == pytest.approx(0.25 / (0.25 + 0.16), abs=0.01)  # power ratio of peaks


def test_classify_ignores_a_dc_offset(placeholder):
    (p,) = run(placeholder, [tone(700, peak=0.2) + np.float32(0.5)], tasks=["classify"])
    assert p.label == "tone 700 Hz"


def test_zero_valid_window_yields_nothing(placeholder):
    predictions = run(placeholder, [tone(500, 0.5), tone(500, 0.5)], valid=[0, 100])
    assert {p.item for p in predictions} == {1}


def test_unknown_task_and_bad_options_are_refused(placeholder):
    with pytest.raises(ValueError, match="caption"):
        run(placeholder, [tone(500, 0.5)], tasks=["caption"])
    with pytest.raises(BackendError, match="sample_rate_hz"):
        PlaceholderBackend(sample_rate_hz=0)
    with pytest.raises(BackendError, match="slope_db"):
        PlaceholderBackend(slope_db=0.0)
