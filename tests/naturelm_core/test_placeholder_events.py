"""The placeholder's event mode locates planted calls: FM sweeps at 384 kHz come back as one
classify answer each, with a box around the sweep's own time and frequencies."""

from __future__ import annotations

import numpy as np
import pytest

from naturelm_core.backend import BackendError, describe_backend, recording_rate_floor
from naturelm_core.placeholder import EVENT_FRAME, PlaceholderBackend
from tests.support.synth_audio import chirp, fade, noise, place

RATE_HZ = 384_000
FRAME_S = EVENT_FRAME / RATE_HZ  # the detector's time resolution: a box edge is within it
#: (start_s, duration_s) of each planted 50 -> 40 kHz sweep in a 1-s window
PLANTED = [(0.100, 0.005), (0.250, 0.004), (0.600, 0.008)]


def bat_window(calls=PLANTED, high_hz=50_000.0, low_hz=40_000.0) -> np.ndarray:
    audio = noise(1.0, RATE_HZ, level_dbfs=-60, seed=3)
    for start_s, duration_s in calls:
        sweep = fade(chirp(high_hz, low_hz, duration_s, RATE_HZ), 0.0005, RATE_HZ)
        audio = place(audio, sweep, start_s, RATE_HZ)
    return audio


def bat_backend(**options) -> PlaceholderBackend:
    return PlaceholderBackend(sample_rate_hz=RATE_HZ, events=True, band_low_hz=10_000,
                              band_high_hz=120_000, min_recording_rate_hz=240_000, **options)


def test_each_planted_sweep_comes_back_with_its_box():
    answers = bat_backend().predict(bat_window()[None], np.array([RATE_HZ]), ["classify"])
    assert len(answers) == len(PLANTED)
    for answer, (start_s, duration_s) in zip(answers, PLANTED):
        assert answer.task == "classify" and answer.label == "call 45 kHz"
        assert answer.start_s == pytest.approx(start_s, abs=FRAME_S)
        assert answer.end_s == pytest.approx(start_s + duration_s, abs=FRAME_S)
        # The middle 90 % of a linear 40-50 kHz sweep's energy: 41-49 kHz, to a bin (750 Hz).
        assert 40_000 <= answer.low_freq_hz <= 42_000 and 48_000 <= answer.high_freq_hz <= 50_000
        assert answer.detection_score == answer.score and answer.score > 0.99


def test_quiet_noise_holds_no_call_and_a_window_level_answer_has_no_box():
    quiet = noise(1.0, RATE_HZ, level_dbfs=-60, seed=4)[None]
    assert bat_backend().predict(quiet, np.array([RATE_HZ]), ["classify"]) == []
    (detect,) = bat_backend().predict(quiet, np.array([RATE_HZ]), ["detect"])
    assert detect.start_s is None and detect.low_freq_hz is None


def test_calls_outside_the_band_are_not_heard():
    low = bat_window(high_hz=8_000.0, low_hz=6_000.0)[None]  # below the 10 kHz band edge
    assert bat_backend().predict(low, np.array([RATE_HZ]), ["classify"]) == []


def test_a_call_past_the_valid_samples_is_not_located():
    window = bat_window()
    answers = bat_backend().predict(window[None], np.array([int(0.4 * RATE_HZ)]), ["classify"])
    assert [round(a.start_s, 2) for a in answers] == [0.1, 0.25]


def test_band_and_rate_floor_reach_the_driver_and_the_fingerprint():
    info = describe_backend("placeholder", sample_rate_hz=RATE_HZ, events=True,
                            band_low_hz=10_000, band_high_hz=120_000, min_recording_rate_hz=240_000)
    assert info.band() == (10_000.0, 120_000.0)
    assert recording_rate_floor("placeholder", info) == 240_000
    plain = describe_backend("placeholder")
    assert plain.band() == (0.0, 8_000.0) and recording_rate_floor("placeholder", plain) is None
    assert "events" in info.settings and "events" not in plain.settings  # old fingerprints hold


@pytest.mark.parametrize("options", [{"band_low_hz": 130_000, "band_high_hz": 120_000}, {"band_high_hz": 200_000},
                                     {"min_recording_rate_hz": 0}, {"event_step_hz": 0}])
def test_a_bad_event_option_is_refused(options):
    with pytest.raises(BackendError):
        PlaceholderBackend(sample_rate_hz=RATE_HZ, events=True, **options)
