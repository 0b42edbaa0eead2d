"""The `naturelm` backend's contract on a tiny checkpoint: batches, skipped rows, normalisation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from naturelm_core.backend import TASKS, BackendError, Prediction, load_backend
from naturelm_core.audio_llm.engine import WindowAnswer
from naturelm_core.naturelm.backend import WINDOW_SAMPLES, NatureLMBackend
from naturelm_core.naturelm.tiny import TINY_SPECIES, build_tiny_checkpoint

SAMPLE_RATE_HZ = 16_000
#: BirdNET-style labels for the tiny species (scientific names are facts, not model output).
LABELS = {
    "American Robin": "Turdus migratorius",
    "Eurasian Blackbird": "Turdus merula",
    "Common Raven": "Corvus corax",
    "Sandhill Crane": "Antigone canadensis",
    "Great Horned Owl": "Bubo virginianus",
    "Northern Cardinal": "Cardinalis cardinalis",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    naturelm_dir, llama_dir = build_tiny_checkpoint(root)
    labels = root / "labels.txt"
    labels.write_text("".join(f"{LABELS[c]}_{c}\n" for c in TINY_SPECIES), encoding="utf-8")
    return naturelm_dir, llama_dir, labels


@pytest.fixture(scope="module")
def backend(tiny):
    naturelm_dir, llama_dir, labels = tiny
    return NatureLMBackend(
        weights=str(naturelm_dir), llama=str(llama_dir), max_new_tokens=8, labels_path=str(labels)
    )


def _batch(n_samples: int = WINDOW_SAMPLES) -> np.ndarray:
    t = np.arange(n_samples) / SAMPLE_RATE_HZ
    rows = [0.5 * np.sin(2 * np.pi * f * t) for f in (440.0, 1200.0, 3000.0)]
    return np.stack(rows).astype(np.float32)


def test_predict_answers_every_task_for_valid_rows_only(backend):
    audio = _batch()
    valid = np.array([WINDOW_SAMPLES, 0, WINDOW_SAMPLES // 2])
    predictions = backend.predict(audio, valid, list(TASKS))
    assert all(isinstance(p, Prediction) for p in predictions)
    assert sorted((p.item, p.task) for p in predictions) == [(0, "classify"), (0, "detect"), (2, "classify"), (2, "detect")]
    for p in predictions:
        assert 0.0 <= p.score <= 1.0 and p.rank == 1
        if p.task == "detect":
            assert p.label == "animal" and p.scientific_name is None and p.prompt_id == "naturelm-detect-v1"
        else:
            assert p.prompt_id == "naturelm-classify-common-v1"
            # Either a known species (with its scientific name) or the raw answer text.
            assert (p.label, p.scientific_name) in {(c, s) for c, s in LABELS.items()} or (
                p.scientific_name is None and p.label == (p.answer_text or None)
            )


def test_all_rows_empty_gives_no_predictions(backend):
    assert backend.predict(_batch(), np.zeros(3, dtype=np.int64), ["detect"]) == []


def test_short_windows_are_zero_padded_to_ten_seconds(backend):
    short = _batch(3 * SAMPLE_RATE_HZ)
    padded = np.zeros((3, WINDOW_SAMPLES), dtype=np.float32)
    padded[:, : short.shape[1]] = short
    valid = np.full(3, short.shape[1])
    a = backend.predict(short, valid, ["detect"])
    b = backend.predict(padded, valid, ["detect"])
    assert [(p.item, p.answer_text) for p in a] == [(p.item, p.answer_text) for p in b]
    assert [p.score for p in a] == pytest.approx([p.score for p in b], abs=1e-6)


def test_too_long_windows_and_unknown_tasks_are_refused(backend):
    with pytest.raises(ValueError, match="at most 10 s"):
        backend.predict(np.zeros((1, WINDOW_SAMPLES + 1), np.float32), np.array([1]), ["detect"])
    with pytest.raises(ValueError, match="does not support"):
        backend.predict(_batch(), np.full(3, WINDOW_SAMPLES), ["sing"])
    with pytest.raises(ValueError, match="float32"):
        backend.predict(_batch().astype(np.float64), np.full(3, WINDOW_SAMPLES), ["detect"])


def test_classify_answers_are_normalised_to_species(backend, monkeypatch):
    prompt = backend.engine._prompt("classify")
    texts = ["american robin", "The answer is Turdus merula.", "a humming fridge", ""]
    fake = [WindowAnswer(i, prompt, text, 0.25) for i, text in enumerate(texts)]
    monkeypatch.setattr(backend.engine, "run", lambda wave, tasks: fake)
    audio = np.zeros((4, WINDOW_SAMPLES), np.float32)
    got = backend.predict(audio, np.full(4, WINDOW_SAMPLES), ["classify"])
    assert [(p.label, p.scientific_name, p.answer_text) for p in got] == [
        ("American Robin", "Turdus migratorius", "american robin"),
        ("Eurasian Blackbird", "Turdus merula", "The answer is Turdus merula."),
        ("a humming fridge", None, "a humming fridge"),
        (None, None, ""),
    ]


def test_items_map_back_to_the_original_rows(backend, monkeypatch):
    seen = {}

    def run(wave, tasks):
        seen["rows"] = wave.shape[0]
        return [WindowAnswer(i, backend.engine._prompt("detect"), "yes", 0.9) for i in range(wave.shape[0])]

    monkeypatch.setattr(backend.engine, "run", run)
    got = backend.predict(np.zeros((4, WINDOW_SAMPLES), np.float32), np.array([0, 5, 0, 7]), ["detect"])
    assert seen["rows"] == 2 and [p.item for p in got] == [1, 3]


def test_model_id_and_settings(backend, tiny):
    assert re.fullmatch(r"naturelm-audio@sha256:[0-9a-f]{12}", backend.model_id)
    settings = backend.settings()
    json.dumps(settings)  # enters the config fingerprint
    assert settings["prompts"]["classify"]["text"].startswith("What is the common name")
    assert settings["generation"]["max_new_tokens"] == 8 and settings["generation"]["num_beams"] == 2
    assert settings["merging_alpha"] == 1.0 and settings["cascade_threshold"] is None


def test_settings_change_with_answer_changing_options(tiny, backend):
    naturelm_dir, llama_dir, labels = tiny
    other = load_backend(
        "naturelm", weights=str(naturelm_dir), llama=str(llama_dir), labels_path=str(labels),
        merging_alpha=0.5, cascade_threshold=0.3, candidates=list(TINY_SPECIES), max_new_tokens=8,
    )  # fmt: skip
    assert other.model_id == backend.model_id
    changed = {k for k in backend.settings() if backend.settings()[k] != other.settings()[k]}
    assert changed == {"merging_alpha", "cascade_threshold", "candidates"}
    predictions = other.predict(_batch(), np.full(3, WINDOW_SAMPLES), ["classify"])
    # Candidates are scored, so every classify answer is a species of the list.
    for p in predictions:
        assert p.label in LABELS and p.scientific_name == LABELS[p.label]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"cascade_threshold": 1.5}, "cascade_threshold"),
        ({"merging_alpha": -1.0}, "merging_alpha"),
        ({"batch_size": "huge"}, "batch_size"),
        ({"device": "tpu"}, "tpu"),
        ({"weights": "/nonexistent/release"}, "/nonexistent/release"),
    ],
)
def test_bad_options_raise_backend_errors(tiny, options, message):
    naturelm_dir, llama_dir, labels = tiny
    kwargs = {"weights": str(naturelm_dir), "llama": str(llama_dir), "labels_path": str(labels), **options}
    with pytest.raises(BackendError, match=re.escape(message)):
        NatureLMBackend(**kwargs)


def test_describe_matches_the_loaded_backend_without_loading_it(tiny, backend):
    naturelm_dir, llama_dir, labels = tiny
    info = NatureLMBackend.describe(weights=str(naturelm_dir), llama=str(llama_dir),
                                    max_new_tokens=8, labels_path=str(labels))
    assert info.model_id == backend.model_id
    assert info.settings == backend.settings()
    assert info.sample_rate_hz == backend.sample_rate_hz == 16_000
    changed = NatureLMBackend.describe(weights=str(naturelm_dir), llama=str(llama_dir),
                                       max_new_tokens=8, merging_alpha=0.5)
    assert changed.settings != info.settings


def test_describe_names_a_missing_release(tmp_path):
    with pytest.raises(BackendError, match="missing"):
        (tmp_path / "empty").mkdir()
        NatureLMBackend.describe(weights=str(tmp_path / "empty"), llama=str(tmp_path / "empty"))


def test_weights_load_from_s3_through_a_real_s3_server(tiny, backend, s3_server, tmp_path):
    naturelm_dir, llama_dir, labels = tiny
    bucket = s3_server.make_bucket("models")
    s3_server.upload_tree(naturelm_dir, f"{bucket}/naturelm-audio")
    s3_server.upload_tree(llama_dir, f"{bucket}/llama")
    remote = NatureLMBackend(weights=f"{bucket}/naturelm-audio", llama=f"{bucket}/llama",
                             max_new_tokens=8, labels_path=str(labels), cache_dir=str(tmp_path))
    assert remote.model_id == backend.model_id
    assert remote.settings() == backend.settings()
    audio = _batch()[:2]
    valid = np.full(2, WINDOW_SAMPLES)
    assert remote.predict(audio, valid, ["detect"]) == backend.predict(audio, valid, ["detect"])


def test_embed_is_the_mean_of_the_windows_projected_audio_tokens(backend):
    import torch

    audio = _batch(3 * SAMPLE_RATE_HZ)  # short windows: zero-padded to 10 s as for predict
    valid = np.full(3, audio.shape[1])
    vectors = backend.embed(audio, valid)
    padded = np.zeros((3, WINDOW_SAMPLES), np.float32)
    padded[:, : audio.shape[1]] = audio
    tokens = backend.model.encode_audio(torch.from_numpy(padded))  # (B, N, D)
    assert vectors.shape == (3, backend.embedding_dim) == (3, tokens.shape[-1])
    np.testing.assert_allclose(vectors, tokens.float().mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"rows \[1\] have no valid samples"):
        backend.embed(audio, np.array([10, 0, 10]))


def test_the_prompting_guide_set_answers_detect_and_classify_with_one_question(tiny, backend):
    naturelm_dir, llama_dir, labels = tiny
    guide = NatureLMBackend(weights=str(naturelm_dir), llama=str(llama_dir), max_new_tokens=8,
                            labels_path=str(labels), prompt_set="prompting-guide-v1")
    predictions = guide.predict(_batch(), np.full(3, WINDOW_SAMPLES), ["detect", "classify"])
    assert {p.prompt_id for p in predictions} == {"naturelm-guide-species-v1"}
    assert sorted((p.item, p.task) for p in predictions) == [(i, t) for i in range(3) for t in ("classify", "detect")]
    assert guide.settings()["prompt_set"] == "prompting-guide-v1"
    assert guide.settings()["prompts"]["detect"]["scoring"] == "not_none"
    assert guide.settings() != backend.settings()
    info = NatureLMBackend.describe(weights=str(naturelm_dir), llama=str(llama_dir), max_new_tokens=8,
                                    prompt_set="prompting-guide-v1")
    assert info.settings == guide.settings()


def test_an_unknown_prompt_set_is_a_backend_error(tiny):
    naturelm_dir, llama_dir, labels = tiny
    with pytest.raises(BackendError, match="no-such-set"):
        NatureLMBackend(weights=str(naturelm_dir), llama=str(llama_dir), prompt_set="no-such-set")
    with pytest.raises(BackendError, match="no-such-set"):
        NatureLMBackend.describe(weights=str(naturelm_dir), llama=str(llama_dir), prompt_set="no-such-set")


def test_auto_device_records_the_dtype_rule_and_a_pinned_device_its_dtype(tiny, backend):
    naturelm_dir, llama_dir, _ = tiny
    assert NatureLMBackend.native_window_s == 10.0
    assert backend.settings()["llm_dtype"].startswith("auto")  # the default device is "auto"
    pinned = NatureLMBackend.describe(weights=str(naturelm_dir), llama=str(llama_dir), max_new_tokens=8, device="cpu")
    assert pinned.settings["llm_dtype"] == "torch.float32"
    if backend.model.device.type == "cpu":
        assert backend.engine.batch_size == 4  # batch_size="auto" without a GPU
