"""Contract tests every model backend must pass (perch-hoplite style: one suite, all backends).

To add a backend: register it in `backend.BACKENDS`, then add a factory to `CONTRACT_FACTORIES`
that builds it cheaply here (e.g. NatureLM-audio from a tiny random checkpoint written to
`tmp_path_factory`). `test_every_registered_backend_has_a_contract_factory` fails until you do.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable

import numpy as np
import pytest

from naturelm_core.backend import BACKENDS, BackendError, ModelBackend, Prediction, load_backend

Factory = Callable[[pytest.TempPathFactory], ModelBackend]

def tiny_naturelm(tmp: pytest.TempPathFactory) -> ModelBackend:
    from naturelm_core.naturelm.tiny import build_tiny_checkpoint

    weights, llama = build_tiny_checkpoint(tmp.mktemp("tiny-naturelm"))
    return load_backend("naturelm", weights=str(weights), llama=str(llama), max_new_tokens=4)


CLAP_LABELS = ["Eurasian Wren", "Common Chiffchaff", "Tawny Owl"]


def tiny_msclap(tmp: pytest.TempPathFactory) -> ModelBackend:
    from naturelm_core.clap.tiny import build_tiny_msclap

    weights, text_dir, config = build_tiny_msclap(tmp.mktemp("tiny-msclap"))
    return load_backend("clap", weights=str(weights), text_model=str(text_dir), model_config=str(config),
                        labels=CLAP_LABELS, top_k=3, batch_size=2)


def tiny_transformers_clap(tmp: pytest.TempPathFactory) -> ModelBackend:
    from naturelm_core.clap.tiny import build_tiny_transformers_clap

    folder = build_tiny_transformers_clap(tmp.mktemp("tiny-clap"))
    return load_backend("clap", weights=str(folder), labels=CLAP_LABELS, top_k=3, batch_size=2)


def tiny_salmonn(tmp: pytest.TempPathFactory) -> ModelBackend:
    from naturelm_core.salmonn.tiny import build_tiny_salmonn

    paths = build_tiny_salmonn(tmp.mktemp("tiny-salmonn"))
    return load_backend("salmonn", **{k: str(v) for k, v in paths.items()}, max_new_tokens=3, num_beams=2)


def tiny_batdetect2(tmp: pytest.TempPathFactory) -> ModelBackend:
    from naturelm_core.batdetect2.tiny import build_tiny_checkpoint

    weights = build_tiny_checkpoint(tmp.mktemp("tiny-batdetect2") / "tiny.pth.tar")
    return load_backend("batdetect2", checkpoint=str(weights))


#: Factory name -> factory; a name is a registered backend, or `<backend>-<variant>` for a second
#: configuration of one (the clap backend has two checkpoint families).
CONTRACT_FACTORIES: dict[str, Factory] = {
    "birdnet": lambda tmp: load_backend("birdnet", num_threads=1, chunk_batch_size=4, min_conf=0.0, top_k=3),
    "placeholder": lambda tmp: load_backend("placeholder"),
    "null": lambda tmp: load_backend("null"),
    "naturelm": tiny_naturelm,
    "salmonn": tiny_salmonn,
    "clap": tiny_msclap,
    "clap-transformers": tiny_transformers_clap,
    "batdetect2": tiny_batdetect2,
}
#: Registered backends with no cheap factory yet; each entry says what is missing.
PENDING_FACTORIES: dict[str, str] = {}

WINDOW_S = 4.0  # long enough for two BirdNET chunks, short enough to keep the suite fast


def test_every_registered_backend_has_a_contract_factory():
    uncovered = set(BACKENDS) - set(CONTRACT_FACTORIES) - set(PENDING_FACTORIES)
    assert not uncovered, f"add contract factories for {sorted(uncovered)}"


@pytest.fixture(scope="module", params=sorted(CONTRACT_FACTORIES))
def backend(request, tmp_path_factory) -> ModelBackend:
    return CONTRACT_FACTORIES[request.param](tmp_path_factory)


def make_batch(sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """Three windows: a loud chirp, noise with a padded tail, and one with no valid audio."""
    n = int(WINDOW_S * sample_rate_hz)
    t_s = np.arange(n) / sample_rate_hz
    rng = np.random.default_rng(7)
    chirp = 0.5 * np.sin(2 * np.pi * (2000 * t_s + 400 * t_s**2))
    noise = 0.05 * rng.standard_normal(n)
    noise[n // 2 :] = 0.0  # padding after the valid part
    audio = np.stack([chirp, noise, np.zeros(n)]).astype(np.float32)  # (B, S)
    valid = np.array([n, n // 2, 0])
    return audio, valid


def key(p: Prediction) -> tuple:
    return (p.item, p.task, p.rank, p.prompt_id, p.answer_text, p.label, p.scientific_name)


def test_scores_are_finite_probabilities(backend):
    audio, valid = make_batch(backend.sample_rate_hz)
    predictions = backend.predict(audio, valid, ["detect", "classify"])
    assert predictions
    for p in predictions:
        assert np.isfinite(p.score) and 0.0 <= p.score <= 1.0, p


def test_one_detect_per_window_with_audio_and_none_without(backend):
    audio, valid = make_batch(backend.sample_rate_hz)
    predictions = backend.predict(audio, valid, ["detect", "classify"])
    detect_items = sorted(p.item for p in predictions if p.task == "detect")
    assert detect_items == [0, 1]
    assert all(p.item != 2 for p in predictions), "window with no valid audio was answered"


def test_classify_ranks_are_one_to_k_and_distinct(backend):
    audio, valid = make_batch(backend.sample_rate_hz)
    predictions = backend.predict(audio, valid, ["classify"])
    for item in (0, 1):
        answers = [p for p in predictions if p.item == item]
        assert answers, f"no classify answer for window {item}"
        assert sorted(p.rank for p in answers) == list(range(1, len(answers) + 1))
        assert len({p.answer_text for p in answers}) == len(answers)
        by_rank = sorted(answers, key=lambda p: p.rank)
        assert all(a.score >= b.score for a, b in zip(by_rank, by_rank[1:]))


def test_batched_equals_one_at_a_time(backend):
    audio, valid = make_batch(backend.sample_rate_hz)
    tasks = ["detect", "classify"]
    batched = backend.predict(audio, valid, tasks)
    single = []
    for item in range(audio.shape[0]):
        for p in backend.predict(audio[item : item + 1], valid[item : item + 1], tasks):
            single.append(dataclasses.replace(p, item=item))  # renumber into the batch
    assert sorted(map(key, batched)) == sorted(map(key, single))
    batched_scores = {key(p): p.score for p in batched}
    single_scores = {key(p): p.score for p in single}
    for k, score in batched_scores.items():
        assert np.isclose(score, single_scores[k], rtol=1e-6, atol=1e-7), k


def test_unknown_task_is_rejected_by_name(backend):
    audio, valid = make_batch(backend.sample_rate_hz)
    with pytest.raises(ValueError, match="sing-along"):
        backend.predict(audio, valid, ["sing-along"])


@pytest.mark.parametrize(
    "audio, valid",
    [
        (np.zeros(100, dtype=np.float32), np.array([100])),  # 1-D audio
        (np.zeros((2, 100), dtype=np.float64), np.array([100, 100])),  # wrong dtype
        (np.zeros((2, 100), dtype=np.float32), np.array([100])),  # valid_samples length
        (np.zeros((1, 100), dtype=np.float32), np.array([101])),  # more valid than samples
        (np.zeros((1, 100), dtype=np.float32), np.array([-1])),  # negative
    ],
    ids=["1d", "float64", "valid-length", "valid-too-long", "valid-negative"],
)
def test_bad_batch_shapes_raise_value_error(backend, audio, valid):
    with pytest.raises(ValueError):
        backend.predict(audio, valid, ["detect"])


def test_model_id_is_stable_and_settings_serialise(backend, request, tmp_path_factory):
    again = CONTRACT_FACTORIES[request.node.callspec.params["backend"]](tmp_path_factory)
    assert backend.model_id == again.model_id
    assert backend.model_id.startswith(f"{backend.name}") and "@" in backend.model_id
    assert json.loads(json.dumps(backend.settings())) == backend.settings()
    assert backend.settings() == again.settings()


def test_embeddings_are_fixed_size_float32_and_batched_equals_one_at_a_time(backend):
    audio, valid = make_batch(backend.sample_rate_hz)
    audio, valid = audio[:2], valid[:2]  # embed needs valid samples in every row
    if backend.embedding_dim is None:  # no embeddings: says so by name
        with pytest.raises(BackendError, match="no audio embeddings"):
            backend.embed(audio, valid)
        return
    batched = backend.embed(audio, valid)
    assert batched.shape == (2, backend.embedding_dim) and batched.dtype == np.float32
    assert np.all(np.isfinite(batched))
    single = np.concatenate([backend.embed(audio[i : i + 1], valid[i : i + 1]) for i in range(2)])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        backend.embed(*make_batch(backend.sample_rate_hz))  # its third row has no valid samples
