"""Shared tiny SALMONN for the test_salmonn_* files: built once per session, loaded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from naturelm_core.salmonn.checkpoint import load_salmonn
from naturelm_core.salmonn.tiny import build_tiny_salmonn


@pytest.fixture(scope="session")
def tiny_salmonn(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_salmonn(tmp_path_factory.mktemp("tiny-salmonn"))


@pytest.fixture(scope="session")
def salmonn_model(tiny_salmonn):
    p = tiny_salmonn
    return load_salmonn(str(p["release"]), str(p["whisper"]), str(p["beats"]), str(p["vicuna"])).model


def noise(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    """Float32 noise with a tone in it, 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * 16000))
    t = np.arange(n) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (800 + 300 * seed) * t)
    return (level * rng.standard_normal(n) + tone).astype(np.float32)
