"""The plain-torch Kaldi fbank against torchaudio's own `compliance/kaldi.py` (the oracle).

torchaudio does not import beside this CPU torch, but its `compliance/kaldi.py` is plain torch:
it is loaded alone, with an empty stand-in `torchaudio` module for its top-level import (only
MFCC uses it). The file comes from DAWNCHORUS_TORCHAUDIO_KALDI or the `--target` install under
`.venv/torchaudio-oracle/`; without either the oracle tests skip.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from naturelm_core.audio_llm.beats import fbank_batch, kaldi_fbank, num_fbank_frames

REPO_ROOT = Path(__file__).resolve().parents[2]
ORACLE_INSTALL = "pip install --no-deps --target .venv/torchaudio-oracle torchaudio==2.11.0"
FLOAT32_EPS = 2.0**-23  # std::numeric_limits<float>::epsilon()
# Upstream BEATs normalisation (reference §1.2): (fbank - 15.41663) / (2 * 6.55582).
BEATS_MEAN, BEATS_STD = 15.41663, 6.55582


def _oracle_path() -> Path | None:
    configured = os.environ.get("DAWNCHORUS_TORCHAUDIO_KALDI")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT / ".venv" / "torchaudio-oracle" / "torchaudio" / "compliance" / "kaldi.py")
    return next((path for path in candidates if path.is_file()), None)


@pytest.fixture(scope="module")
def oracle():
    path = _oracle_path()
    if path is None:
        pytest.skip(
            "torchaudio's compliance/kaldi.py not found (set DAWNCHORUS_TORCHAUDIO_KALDI or run "
            f"`{ORACLE_INSTALL}` from the repo root; `make test` does this)"
        )
    previous = sys.modules.get("torchaudio")
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")  # stand-in for kaldi.py's import
    try:
        spec = importlib.util.spec_from_file_location("_torchaudio_kaldi_oracle", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            del sys.modules["torchaudio"]
        else:
            sys.modules["torchaudio"] = previous

    def fbank(waveform: torch.Tensor) -> torch.Tensor:
        return module.fbank(
            waveform.unsqueeze(0) * 2**15,
            num_mel_bins=128,
            sample_frequency=16000,
            frame_length=25,
            frame_shift=10,
        )

    return fbank


def _noise(num_samples: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_samples, generator=generator, dtype=torch.float64) * 1.6 - 0.8


def _chirp(num_samples: int, start_hz: float = 100.0, end_hz: float = 7500.0) -> torch.Tensor:
    t = torch.arange(num_samples, dtype=torch.float64) / 16000
    duration_s = num_samples / 16000
    phase = 2 * math.pi * (start_hz * t + (end_hz - start_hz) * t**2 / (2 * duration_s))
    return 0.5 * torch.sin(phase)


CASES = {
    "noise_10s": lambda: _noise(160_000, 0),
    "chirp_3s": lambda: _chirp(48_000),
    "noise_5s": lambda: _noise(80_000, 1),
    "chirp_odd": lambda: _chirp(16_000 + 123),
    "noise_one_frame": lambda: _noise(400, 2),
    "noise_odd": lambda: _noise(559, 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torchaudio_in_float64(oracle, case):
    wave = CASES[case]()
    expected = oracle(wave)
    got = kaldi_fbank(wave)
    assert got.dtype == torch.float64
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)


def test_ten_seconds_gives_998_frames(oracle):
    wave = _noise(160_000, 4)
    assert kaldi_fbank(wave).shape == (998, 128)
    assert oracle(wave).shape == (998, 128)
    assert num_fbank_frames(160_000) == 998


def test_mel_bin_3_is_the_log_floor_like_torchaudio(oracle):
    wave = _chirp(32_000)
    got = kaldi_fbank(wave)
    floor = math.log(FLOAT32_EPS)  # -15.942385...
    assert torch.all(got[:, 3] == floor)
    assert torch.all(oracle(wave)[:, 3] == floor)
    # Every other bin carries signal somewhere in a full-band chirp.
    others = torch.cat([got[:, :3], got[:, 4:]], dim=1)
    assert torch.all(others.amax(dim=0) > floor)


def test_float32_input_is_computed_in_float32_like_torchaudio(oracle):
    wave = _chirp(24_000).float()
    got = kaldi_fbank(wave)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, oracle(wave), rtol=1e-5, atol=1e-4)


def test_batch_is_normalised_and_rows_are_independent(oracle):
    waves = torch.stack([_noise(24_000, 5), _chirp(24_000), torch.zeros(24_000, dtype=torch.float64)])
    batch = fbank_batch(waves)
    assert batch.shape == (3, num_fbank_frames(24_000), 128)
    for row, wave in zip(batch, waves):
        expected = (oracle(wave) - BEATS_MEAN) / (2 * BEATS_STD)
        torch.testing.assert_close(row, expected, rtol=1e-12, atol=1e-10)
    # Silence: every bin at the log floor, i.e. (log(eps) - mean) / (2 * std) = -2.3916929.
    torch.testing.assert_close(batch[2], torch.full_like(batch[2], -2.3916929), rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_samples, frames", [(399, 0), (400, 1), (559, 1), (560, 2), (48_000, 298)])
def test_frame_count_formula(num_samples, frames):
    assert num_fbank_frames(num_samples) == frames


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="shorter than one fbank frame"):
        kaldi_fbank(torch.zeros(399, dtype=torch.float64))
    with pytest.raises(ValueError, match="1 dimension"):
        kaldi_fbank(torch.zeros(1, 16000))
    with pytest.raises(ValueError, match="floating-point"):
        kaldi_fbank(torch.zeros(16000, dtype=torch.int16))
    with pytest.raises(ValueError, match="2 dimension"):
        fbank_batch(torch.zeros(16000))
