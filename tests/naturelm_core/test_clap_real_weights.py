"""Real CLAP weights, opt in: each test runs only when its environment variable names the files.

- DAWNCHORUS_MSCLAP_WEIGHTS: CLAP_weights_2023.pth (Zenodo 8378278 / hub microsoft/msclap) and
  DAWNCHORUS_MSCLAP_TEXT: a GPT-2 folder (config.json + vocab.json + merges.txt of "gpt2");
- DAWNCHORUS_CLAP_FOLDER: a transformers ClapModel folder (BioLingual, laion/clap-htsat-unfused).

They check that the published files load strictly at the published sizes and give finite,
normalised answers on a synthetic tone; the tiny-checkpoint tests cover behaviour.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from naturelm_core.backend import load_backend

MSCLAP_WEIGHTS = os.environ.get("DAWNCHORUS_MSCLAP_WEIGHTS")
MSCLAP_TEXT = os.environ.get("DAWNCHORUS_MSCLAP_TEXT")
CLAP_FOLDER = os.environ.get("DAWNCHORUS_CLAP_FOLDER")
LABELS = ["dog barking", "rain", "bird singing"]


def _tone(sample_rate_hz: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    audio = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)[None]
    return audio, np.array([audio.shape[1]])


@pytest.mark.skipif(not (MSCLAP_WEIGHTS and MSCLAP_TEXT), reason="set DAWNCHORUS_MSCLAP_WEIGHTS and DAWNCHORUS_MSCLAP_TEXT")
def test_published_msclap_2023_loads_strictly_and_answers():
    backend = load_backend("clap", weights=MSCLAP_WEIGHTS, text_model=MSCLAP_TEXT, labels=LABELS, top_k=3)
    assert (backend.embedding_dim, backend.native_window_s, backend.sample_rate_hz) == (1024, 7.0, 44_100)
    audio, valid = _tone(44_100, 7.0)
    predictions = backend.predict(audio, valid, ["classify"])
    assert sum(p.score for p in predictions) == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(backend.embed(audio, valid)).all()


@pytest.mark.skipif(not CLAP_FOLDER, reason="set DAWNCHORUS_CLAP_FOLDER to a transformers ClapModel folder")
def test_published_transformers_clap_folder_loads_and_answers():
    backend = load_backend("clap", weights=CLAP_FOLDER, labels=LABELS, top_k=3)
    audio, valid = _tone(backend.sample_rate_hz, backend.native_window_s)
    predictions = backend.predict(audio, valid, ["classify"])
    assert sum(p.score for p in predictions) == pytest.approx(1.0, abs=1e-6)
    vectors = backend.embed(audio, valid)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
