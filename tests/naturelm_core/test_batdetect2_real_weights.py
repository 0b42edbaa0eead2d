"""BatDetect2's shipped UK model (installed by `make setup`: batdetect2==1.3.1, --no-deps) on
synthetic ultrasonic audio made here, and, with DAWNCHORUS_TEST_CLIPS set, on the real bat clips
against BatDetect2's own API output (tests/naturelm_core/data/batdetect2_api_clips.json).

Not skipped when the package is missing: the backend's one-line error then says what to install.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from naturelm_core.backend import held_by_recording
from naturelm_core.batdetect2.backend import BatDetect2Backend
from naturelm_core.batdetect2.checkpoint import shipped_checkpoint
from naturelm_core.batdetect2.config import UK_CLASS_NAMES, BatDetect2Config
from naturelm_core.batdetect2.checkpoint import read_checkpoint

RATE_HZ = 256_000
FIXTURE = Path(__file__).parent / "data" / "batdetect2_api_clips.json"
#: What "the same call" means against BatDetect2's API: times within 1 ms, the same species,
#: probabilities within 1e-4 (measured: 3e-7 s and bit-equal probabilities, docs/bats.md).
TIME_TOLERANCE_S = 1e-3
PROB_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def uk() -> BatDetect2Backend:
    return BatDetect2Backend(batch_size=3)


def test_the_shipped_checkpoint_is_the_published_uk_model():
    path = shipped_checkpoint()
    _, params = read_checkpoint(path)
    assert BatDetect2Config.from_params(params) == BatDetect2Config()  # our defaults = its params
    assert tuple(params["class_names"]) == UK_CLASS_NAMES
    assert BatDetect2Backend().model_id == "batdetect2-net2dfast@sha256:c4e399122bb8"


def fm_call(start_hz: float, end_hz: float, duration_s: float) -> np.ndarray:
    """A pipistrelle-like call: an exponential FM sweep down to its end frequency, Hann-shaped."""
    t = np.arange(int(duration_s * RATE_HZ)) / RATE_HZ
    rate = math.log(end_hz / start_hz) / duration_s
    phase = 2 * np.pi * start_hz * np.expm1(rate * t) / rate
    return np.hanning(t.size) * np.sin(phase)


PLANTED_S = (0.05, 0.15, 0.25, 0.35)


def test_planted_pipistrelle_calls_are_found_where_and_at_what_band_they_were_planted(uk):
    n = RATE_HZ // 2
    rng = np.random.default_rng(1)
    calls = 0.001 * rng.standard_normal(n)
    for start_s in PLANTED_S:
        piece = 0.3 * fm_call(75_000, 45_000, 0.005)
        first = int(start_s * RATE_HZ)
        calls[first : first + piece.size] += piece
    quiet = 0.001 * rng.standard_normal(n)
    audio = np.stack([calls, quiet, np.zeros(n)]).astype(np.float32)
    predictions = uk.predict(audio, np.full(3, n), ["detect", "classify"])

    found = sorted((p for p in predictions if p.item == 0 and p.task == "classify" and p.detection_score > 0.3),
                   key=lambda p: p.start_s)
    assert len(found) == len(PLANTED_S)
    for planted, call in zip(PLANTED_S, found):
        assert abs(call.start_s - planted) < 0.002, call
        assert 0.003 < call.end_s - call.start_s < 0.012, call
        assert call.low_freq_hz < 47_000 < 70_000 < call.high_freq_hz, call  # the sweep's band
        assert call.detection_score > 0.5 and call.scientific_name == "Pipistrellus pipistrellus"
    detect = {p.item: p for p in predictions if p.task == "detect"}
    assert detect[0].score > 0.5
    # Quiet noise and digital silence: no call a user would keep. (At BatDetect2's 0.01 default
    # both still give a few low-probability peaks, as BatDetect2 does on an all-zero file.)
    for item in (1, 2):
        assert detect[item].score < 0.3
        assert all(p.detection_score < 0.3 for p in predictions if p.item == item)


def batdetect2_audio(path: Path) -> np.ndarray:
    """The file at 256 kHz as BatDetect2 loads it: librosa's "polyphase" resampling, which is
    scipy's resample_poly at the reduced ratio, then fixed to ceil(n x ratio) samples."""
    native, rate_hz = sf.read(path, dtype="float32")
    if rate_hz == RATE_HZ:
        return native
    gcd = math.gcd(int(rate_hz), RATE_HZ)
    out = resample_poly(native, RATE_HZ // gcd, int(rate_hz) // gcd)
    n_out = math.ceil(native.shape[0] * RATE_HZ / rate_hz)
    out = np.pad(out, (0, max(0, n_out - out.shape[0])))[:n_out]
    return out.astype(np.float32)


def expected() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(expected()["files"]))
def test_real_clips_give_batdetect2s_own_calls(uk, clips_dir, name):
    want = expected()["files"][name]
    audio = batdetect2_audio(clips_dir / name)
    window = int(uk.native_window_s * RATE_HZ)  # 3-s windows, no overlap: the API's chunks
    count = math.ceil(audio.shape[0] / window)
    batch = np.zeros((count, window), np.float32)
    batch.reshape(-1)[: audio.shape[0]] = audio
    valid = np.minimum(window, audio.shape[0] - window * np.arange(count))
    predictions = [p for p in uk.predict(batch, valid, ["classify"])]
    ours = [(p.item * uk.native_window_s + p.start_s, p) for p in predictions]

    assert len(ours) == want["calls_at_default"]
    kept = [p for _, p in ours if held_by_recording(p.high_freq_hz, want["file_sample_rate_hz"])]
    assert len(kept) == want["annotations_at_default"]
    strong = sorted(((t, p) for t, p in ours if p.detection_score > 0.1), key=lambda tp: (tp[0], tp[1].low_freq_hz))
    assert len(strong) == len(want["calls"])
    for (start_s, p), (w_start, w_end, w_low, w_high, w_det, w_class, w_prob) in zip(
            strong, sorted(want["calls"], key=lambda c: (c[0], c[2]))):
        assert abs(start_s - w_start) < TIME_TOLERANCE_S
        assert abs(start_s + (p.end_s - p.start_s) - w_end) < TIME_TOLERANCE_S
        assert p.answer_text.startswith(w_class + " at ")
        assert abs(p.detection_score - w_det) < PROB_TOLERANCE and abs(p.score - w_prob) < PROB_TOLERANCE
        assert abs(p.low_freq_hz - w_low) < 1 and abs(p.high_freq_hz - w_high) < 1
