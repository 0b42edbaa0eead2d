"""The `clap` backend on tiny checkpoints of both families: zero-shot answers, settings, embeddings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from naturelm_core.backend import BackendError, describe_backend, load_backend
from naturelm_core.clap import zeroshot
from naturelm_core.clap.tiny import build_tiny_msclap, build_tiny_transformers_clap

LABELS = ["Eurasian Wren", "Common Chiffchaff", "Tawny Owl", "European Robin"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    weights, text_dir, config = build_tiny_msclap(tmp_path_factory.mktemp("msclap"))
    hf_dir = build_tiny_transformers_clap(tmp_path_factory.mktemp("hf-clap"))
    return {
        "msclap-2023": dict(weights=str(weights), text_model=str(text_dir), model_config=str(config)),
        "transformers": dict(weights=str(hf_dir)),
    }


@pytest.fixture(scope="module", params=["msclap-2023", "transformers"])
def family(request):
    return request.param


@pytest.fixture(scope="module")
def backend(folders, family):
    return load_backend("clap", labels=LABELS, top_k=len(LABELS), batch_size=2, **folders[family])


def batch(sample_rate_hz: int, n_windows: int = 3, window_s: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = int(window_s * sample_rate_hz)
    t_s = np.arange(n) / sample_rate_hz
    rng = np.random.default_rng(seed)
    rows = [0.4 * np.sin(2 * np.pi * (1500 + 500 * i) * t_s) + 0.02 * rng.standard_normal(n) for i in range(n_windows)]
    return np.stack(rows).astype(np.float32), np.full(n_windows, n)


def probabilities(predictions, task="classify") -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for p in predictions:
        if p.task == task:
            out.setdefault(p.item, {})[p.answer_text] = p.score
    return out


def test_family_rate_and_native_window(backend, family):
    expected = {"msclap-2023": (44_100, 7.0, 16), "transformers": (48_000, 10.0, 16)}[family]
    assert (backend.sample_rate_hz, backend.native_window_s, backend.embedding_dim) == expected
    assert backend.model_id.startswith(f"clap-{family}@sha256:")


def test_zero_shot_probabilities_over_the_label_set_sum_to_one(backend):
    audio, valid = batch(backend.sample_rate_hz)
    probs = probabilities(backend.predict(audio, valid, ["classify"]))
    assert sorted(probs) == [0, 1, 2]
    for item, by_label in probs.items():
        assert sorted(by_label) == sorted(LABELS)
        assert sum(by_label.values()) == pytest.approx(1.0, abs=1e-9)
    assert probs[0] != probs[2]  # different audio, different answer


def test_classify_is_softmax_of_scaled_cosine_between_embed_and_the_prompts(backend):
    audio, valid = batch(backend.sample_rate_hz, n_windows=1)
    audio_vec = torch.from_numpy(backend.embed(audio, valid)).double()
    text_vec = backend._runner.text_embeddings(backend.prompts.label_prompts()).double()
    cosine = torch.nn.functional.cosine_similarity(audio_vec[:, None], text_vec[None], dim=-1)[0]
    expected = torch.softmax(backend._runner.logit_scale * cosine, dim=0).numpy()
    got = probabilities(backend.predict(audio, valid, ["classify"]))[0]
    np.testing.assert_allclose([got[name] for name in LABELS], expected, rtol=1e-4)


def test_probabilities_change_with_the_prompt_set_and_so_does_the_fingerprint(folders, family, backend):
    from flows.pipeline.settings import RunSettings, config_fingerprint, resolve_settings

    other = load_backend("clap", labels=LABELS, top_k=len(LABELS), template="the call of a {common_name}", **folders[family])
    audio, valid = batch(backend.sample_rate_hz, n_windows=1)
    a = probabilities(backend.predict(audio, valid, ["classify"]))[0]
    b = probabilities(other.predict(audio, valid, ["classify"]))[0]
    assert max(abs(a[k] - b[k]) for k in LABELS) > 1e-3
    # A run fingerprints its resolved settings (the window: the family's native one).
    run = resolve_settings(RunSettings(source="src", results="res", model="clap"), backend.native_window_s)
    fingerprints = {
        config_fingerprint(run, x.model_id, x.settings())
        for x in (backend, other)
    }
    fewer = describe_backend("clap", labels=LABELS[:3], top_k=len(LABELS), **folders[family])
    fingerprints.add(config_fingerprint(run, fewer.model_id, fewer.settings))
    assert len(fingerprints) == 3
    assert other.settings()["prompts"]["template"] == "the call of a {common_name}"
    assert backend.settings()["prompts"]["labels_sha256"] != fewer.settings["prompts"]["labels_sha256"]


def test_describe_reads_identity_and_settings_without_building_the_model(folders, family, backend):
    info = describe_backend("clap", labels=LABELS, top_k=len(LABELS), batch_size=2, **folders[family])
    assert info.model_id == backend.model_id
    assert info.settings == backend.settings()
    assert (info.sample_rate_hz, info.native_window_s) == (backend.sample_rate_hz, backend.native_window_s)


def test_detect_is_the_animal_prompts_share_and_needs_no_label_set(folders, family):
    animal = ("a bird singing", "a frog calling")
    background = ("wind", "rain", "silence")
    det = load_backend(
        "clap", detect_prompts=[f"this is {p}" for p in animal], background_prompts=[f"this is {p}" for p in background],
        **folders[family],
    )  # fmt: skip
    audio, valid = batch(det.sample_rate_hz, n_windows=2)
    predictions = det.predict(audio, valid, ["detect"])
    assert [(p.item, p.label, p.task) for p in predictions] == [(0, "animal", "detect"), (1, "animal", "detect")]
    texts = [f"this is {p}" for p in (*animal, *background)]
    cosine = torch.nn.functional.cosine_similarity(
        torch.from_numpy(det.embed(audio, valid)).double()[:, None], det._runner.text_embeddings(texts).double()[None], dim=-1
    )  # (B, 5)
    probs = torch.softmax(det._runner.logit_scale * cosine, dim=-1).numpy()
    np.testing.assert_allclose([p.score for p in predictions], probs[:, :2].sum(axis=1), rtol=1e-4)
    assert all(p.answer_text in texts for p in predictions)
    with pytest.raises(ValueError, match="classify needs a label set"):
        det.predict(audio, valid, ["classify"])


def test_same_audio_same_answer_whatever_shares_the_batch(backend):
    audio, valid = batch(backend.sample_rate_hz, n_windows=3)
    first = backend.predict(audio, valid, ["detect", "classify"])
    reordered = backend.predict(audio[::-1].copy(), valid[::-1].copy(), ["detect", "classify"])
    remap = {0: 2, 1: 1, 2: 0}
    again = sorted((dataclasses.replace(p, item=remap[p.item]) for p in reordered), key=lambda p: (p.item, p.task, p.rank))
    first = sorted(first, key=lambda p: (p.item, p.task, p.rank))
    assert [(p.item, p.task, p.answer_text) for p in first] == [(p.item, p.task, p.answer_text) for p in again]
    np.testing.assert_allclose([p.score for p in first], [p.score for p in again], rtol=1e-5, atol=1e-7)


def test_short_window_is_repeat_padded_from_its_valid_part(backend):
    sr = backend.sample_rate_hz
    audio, valid = batch(sr, n_windows=1, window_s=2.0)
    padded = np.zeros((1, 4 * sr), np.float32)
    padded[:, : audio.shape[1]] = audio
    np.testing.assert_allclose(backend.embed(padded, valid), backend.embed(audio, valid), rtol=1e-5, atol=1e-6)


def test_windows_longer_than_native_are_refused(backend):
    n = round(backend.native_window_s * backend.sample_rate_hz) + 1
    with pytest.raises(ValueError, match=f"at most {backend.native_window_s:g} s"):
        backend.predict(np.zeros((1, n), np.float32), np.array([n]), ["detect"])


def test_non_finite_audio_is_refused_not_answered(backend):
    audio, valid = batch(backend.sample_rate_hz, n_windows=2)
    audio[1, 100] = np.nan
    with pytest.raises(ValueError, match=r"rows \[1\] hold non-finite samples"):
        backend.predict(audio, valid, ["detect"])
    valid[1] = 50  # the NaN lies in the padding: ignored
    assert len(backend.predict(audio, valid, ["detect"])) == 2


def test_embed_batched_equals_one_at_a_time(backend):
    audio, valid = batch(backend.sample_rate_hz, n_windows=3)
    valid[1] //= 3
    batched = backend.embed(audio, valid)
    single = np.concatenate([backend.embed(audio[i : i + 1], valid[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, backend.embedding_dim) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    valid[2] = 0
    with pytest.raises(ValueError, match=r"rows \[2\] have no valid samples"):
        backend.embed(audio, valid)


def test_candidates_per_window_equal_a_backend_with_that_label_set(folders, family, backend):
    audio, valid = batch(backend.sample_rate_hz, n_windows=3)
    lists = [["Tawny Owl", "Eurasian Wren"], [], ["Turdus merula", "Common Chiffchaff", "Tawny Owl"]]
    answers = backend.classify_candidates(audio, valid, lists)
    probs = probabilities(answers)
    assert sorted(probs) == [0, 2]
    assert sorted(probs[2]) == sorted(lists[2])
    for by_label in probs.values():
        assert sum(by_label.values()) == pytest.approx(1.0, abs=1e-9)
    blackbird = next(p for p in answers if p.answer_text == "Turdus merula")
    assert (blackbird.label, blackbird.scientific_name) == ("Eurasian Blackbird", "Turdus merula")
    fixed = load_backend("clap", labels=lists[2], top_k=3, **folders[family])
    expected = probabilities(fixed.predict(audio[2:], valid[2:], ["classify"]))[0]
    assert probs[2] == pytest.approx(expected, rel=1e-5)
    assert {p.prompt_id for p in answers} == {backend.prompts.candidates_prompt_id}
    with pytest.raises(ValueError, match="2 lists for 3 windows"):
        backend.classify_candidates(audio, valid, lists[:2])


def test_labels_resolve_to_birdnet_species_and_a_labels_file_works(folders, tmp_path):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text(
        "# my site\nTroglodytes troglodytes_Eurasian Wren\nstrix aluco\n\nwind in reeds\nengine_noise\n", encoding="utf-8"
    )
    b = load_backend("clap", labels_file=str(labels_file), top_k=3, **folders["transformers"])
    got = [(l.name, l.common_name, l.scientific_name) for l in b.prompts.labels]
    assert got == [
        ("Troglodytes troglodytes_Eurasian Wren", "Eurasian Wren", "Troglodytes troglodytes"),
        ("strix aluco", "Tawny Owl", "Strix aluco"),
        ("wind in reeds", "wind in reeds", None),
        ("engine_noise", "engine_noise", None),  # not "Genus species_Common name": a free name
    ]
    assert b.prompts.label_prompts()[1] == "This is a sound of Tawny Owl."


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(labels=["Tawny Owl", "tawny owl"]), "name the same class"),
        (dict(labels=["Tawny Owl"], template="a sound of {name}"), "must contain {common_name}"),
        (dict(labels=["wind in reeds"], template="{scientific_name}"), "no known scientific name"),
        (dict(labels="Tawny Owl"), "labels must be a list"),
        (dict(top_k=0), "top_k and batch_size"),
        (dict(detect_prompts=["x"], background_prompts=["x"]), "both animal and background"),
        (dict(lables=["Tawny Owl"]), "unexpected keyword argument 'lables'"),
        (dict(device="meta"), "only 'cpu' and 'cuda"),
    ],
    ids=["duplicate", "bad-template", "no-scientific-name", "string-labels", "top-k", "overlap", "typo", "device"],
)
def test_bad_options_stop_before_the_model_is_built(folders, options, message):
    with pytest.raises(BackendError, match=message):
        describe_backend("clap", **folders["transformers"], **options)


def test_missing_or_wrong_weights_are_named(folders, tmp_path):
    with pytest.raises(BackendError, match="weights is required"):
        describe_backend("clap")
    with pytest.raises(BackendError, match=str(tmp_path / "nope")):
        describe_backend("clap", weights=str(tmp_path / "nope"))
    with pytest.raises(BackendError, match="text_model .* is required"):
        describe_backend("clap", weights=folders["msclap-2023"]["weights"])
    with pytest.raises(BackendError, match="apply to MS-CLAP .pth weights only"):
        describe_backend("clap", weights=folders["transformers"]["weights"], text_model="x")


def test_default_templates_are_each_familys_evaluated_wording():
    assert zeroshot.DEFAULT_TEMPLATES["msclap-2023"].format(common_name="dog barking") == "this is the sound of dog barking"
    assert zeroshot.DEFAULT_TEMPLATES["transformers"].format(common_name="Tawny Owl") == "This is a sound of Tawny Owl."
