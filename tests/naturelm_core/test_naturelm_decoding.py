"""The cached engine paths against the plain reference path (tiny checkpoint, CPU, float32).

"shared": one prefix pass per window (BOS, header, <Audio>, audio rows, </Audio>...) copied to
every prompt; "unshared": every row runs its whole prompt; "reference": Hugging Face `generate`
for every row plus a teacher-forced scoring pass. The three must give the same answers and, up
to float rounding, the same scores -- in batches mixing prompts of different lengths.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from naturelm_core.audio_llm import decoding as D
from naturelm_core.naturelm import prompts as P
from naturelm_core.naturelm.checkpoint import load_naturelm, parse_device
from naturelm_core.audio_llm.engine import (
    CPU_AUTO_BATCH, Engine, EngineConfig, auto_batch_size, kv_bytes_per_token, window_bytes,
)  # fmt: skip
from naturelm_core.naturelm.model import GenerationOptions
from naturelm_core.naturelm.tiny import TINY_SPECIES, build_tiny_checkpoint

SAMPLE_RATE_HZ = 16_000
LONG_QUERY = "Describe the sounds in this recording and name every animal species you can hear in it."
DESCRIBE = P.Prompt(prompt_id="test-describe", task="describe", text=LONG_QUERY)
MIXED = [P.DETECT_PROMPT, P.CLASSIFY_PROMPT, P.CAPTION_PROMPT, DESCRIBE]  # prompts of three lengths
PATHS = ("reference", "unshared", "shared")


def _windows(n: int = 4) -> np.ndarray:
    """n 10-s windows of different content: tones, noise, a chirp, silence-ish."""
    t = np.arange(10 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    rng = np.random.default_rng(3)
    rows = [
        0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 3000 * t), 0.2 * rng.standard_normal(t.size),
        0.4 * np.sin(2 * np.pi * (500 + 300 * t) * t),
    ]  # fmt: skip
    return np.clip(np.stack(rows[:n]), -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(tiny):
    return load_naturelm(str(tiny[0]), str(tiny[1])).model  # eager attention on CPU


_REFERENCE: dict = {}  # reference-path answers, computed once per setting (generate is the slow part)


_EMBEDS: dict = {}  # the audio embeddings of _windows(), encoded once per model


def _run(model, path, prompts=MIXED, tasks=None, wave=None, **config):
    """(engine, answers) for `_windows()` (already encoded: one batch) or `wave` (through `run`)."""
    options = config.pop("generation", GenerationOptions(max_new_tokens=8))
    engine = Engine(model, prompts, EngineConfig(path=path, generation=options, **config))
    if wave is not None:
        return engine, engine.run(wave, tasks)
    if id(model) not in _EMBEDS:
        _EMBEDS[id(model)] = model.encode_audio(torch.from_numpy(_windows()))
    wanted = [p for p in prompts if tasks is None or p.task in tasks]
    if path != "reference":
        return engine, engine.answer(_EMBEDS[id(model)], wanted)
    key = (id(model), tuple(wanted), options, tuple(sorted(config.items())))
    if key not in _REFERENCE:
        _REFERENCE[key] = engine.answer(_EMBEDS[id(model)], wanted)
    return engine, _REFERENCE[key]


def _assert_same(got, expected, compare_text=True):
    assert [(a.item, a.prompt) for a in got] == [(a.item, a.prompt) for a in expected]
    for a, b in zip(got, expected):
        if compare_text:
            assert a.text == b.text, (a.item, a.prompt.task)
        assert a.score == pytest.approx(b.score, rel=1e-4, abs=1e-6), (a.item, a.prompt.task)


# ------------------------------------------------------------------ detection is one forward


def test_detect_in_one_forward_equals_the_generate_based_p_yes(model, monkeypatch):
    _, reference = _run(model, "reference", tasks=["detect"])
    monkeypatch.setattr(model, "generate", lambda *a, **k: pytest.fail("detection must not decode"))
    monkeypatch.setattr(model.llama_model, "generate", lambda *a, **k: pytest.fail("detection must not decode"))
    for path in ("shared", "unshared"):
        engine, fast = _run(model, path, tasks=["detect"], batch_size=4)
        _assert_same(fast, reference, compare_text=False)
        assert {a.text for a in fast} <= {"yes", "no"}
        assert all(a.text == ("yes" if a.score >= 0.5 else "no") for a in fast)
        # shared: one prefix pass + one prompt pass; unshared: one pass. One logit row per window.
        assert engine.work.forwards == (2 if path == "shared" else 1)
        assert engine.work.logit_positions == len(_windows())


def test_detection_scores_vary_with_the_audio(model):
    _, answers = _run(model, "shared", tasks=["detect"])
    assert len({round(a.score, 6) for a in answers}) > 1


# ------------------------------------------------------------------ shared == unshared == reference


@pytest.mark.parametrize("num_beams", [1, 2])
def test_free_text_answers_agree_on_all_paths_in_a_mixed_batch(model, num_beams):
    options = GenerationOptions(max_new_tokens=8, num_beams=num_beams)
    assert len({len(model.prompt_tokens(p.text)) for p in MIXED}) >= 3
    results = {path: _run(model, path, generation=options)[1] for path in PATHS}
    for path in ("unshared", "shared"):
        free_text = [a for a in results[path] if a.prompt.task != "detect"]
        reference = [a for a in results["reference"] if a.prompt.task != "detect"]
        _assert_same(free_text, reference)
        detect = [a for a in results[path] if a.prompt.task == "detect"]
        _assert_same(detect, [a for a in results["reference"] if a.prompt.task == "detect"], compare_text=False)
    assert len({a.text for a in results["shared"] if a.prompt.task != "detect"}) > 1


def test_shared_path_under_sdpa_equals_the_eager_reference(tiny, model):
    # The shared path's rows have masked slots between prefix and suffix; SDPA (the CUDA default)
    # must treat them as eager attention does.
    sdpa = load_naturelm(str(tiny[0]), str(tiny[1]), attn_implementation="sdpa").model
    options = GenerationOptions(max_new_tokens=8, num_beams=2)
    reference = _run(model, "reference", generation=options)[1]
    shared = _run(sdpa, "shared", generation=options)[1]
    _assert_same([a for a in shared if a.prompt.task != "detect"], [a for a in reference if a.prompt.task != "detect"])
    _assert_same(shared, reference, compare_text=False)


@pytest.mark.parametrize(
    "num_beams, max_new, min_new, length_penalty",
    [(1, 3, 2, 1.0), (2, 8, 0, 2.0), (3, 8, 2, 0.5)],
)
def test_decoding_options_agree_with_generate(model, num_beams, max_new, min_new, length_penalty):
    options = GenerationOptions(max_new_tokens=max_new, min_new_tokens=min_new, num_beams=num_beams,
                                length_penalty=length_penalty)
    prompts = [P.CLASSIFY_PROMPT, P.CAPTION_PROMPT]
    reference = _run(model, "reference", prompts, generation=options)[1]
    shared = _run(model, "shared", prompts, generation=options)[1]
    _assert_same(shared, reference)
    assert max(len(model.tokenizer(a.text, add_special_tokens=False)["input_ids"]) for a in shared) > 1


@pytest.mark.parametrize("num_beams", [1, 2])
def test_repetition_penalty_agrees_with_generate_without_padding(model, num_beams):
    # generate() skips the penalty on the first `left padding` generated tokens of a row (its
    # mask offsets the prompt); with one prompt there is no padding and the two must agree.
    options = GenerationOptions(max_new_tokens=10, min_new_tokens=6, num_beams=num_beams, repetition_penalty=1.5)
    reference = _run(model, "reference", [P.CAPTION_PROMPT], generation=options)[1]
    shared = _run(model, "shared", [P.CAPTION_PROMPT], generation=options)[1]
    _assert_same(shared, reference)
    plain = _run(model, "shared", [P.CAPTION_PROMPT], generation=dataclasses.replace(options, repetition_penalty=1.0))[1]
    assert [a.text for a in plain] != [a.text for a in shared]


def test_candidate_classification_agrees_on_all_paths(model):
    results = {path: _run(model, path, tasks=["classify"], candidates=TINY_SPECIES)[1] for path in PATHS}
    for path in ("unshared", "shared"):
        _assert_same(results[path], results["reference"])
    assert all(a.text in TINY_SPECIES for a in results["shared"])


def test_candidate_passes_in_small_chunks_equal_one_pass(model):
    lm = D.CachedLM(model, length_bucket=8)
    embeds = model.encode_audio(torch.from_numpy(_windows(3)))
    tok = model.prompt_tokens(P.CLASSIFY_PROMPT.text)
    pieces = [torch.cat([lm.embed(tok.before_audio), embeds[i], lm.embed(tok.after_audio)]) for i in range(3)]
    state, _ = lm.extend(None, pieces)
    ids = [tuple(model.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in TINY_SPECIES]
    whole = D.candidate_log_probs(lm, state, ids, max_rows=10_000)
    chunked = D.candidate_log_probs(lm, state, ids, max_rows=1)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    expected = model.candidate_probabilities(embeds, P.CLASSIFY_PROMPT.text, TINY_SPECIES)
    torch.testing.assert_close(torch.softmax(whole, -1), expected, rtol=1e-4, atol=1e-6)


def test_shared_path_batched_equals_one_window_at_a_time(model):
    wave = _windows()
    options = GenerationOptions(max_new_tokens=8, num_beams=2)
    batched = _run(model, "shared", wave=wave, generation=options, batch_size=4)[1]
    single = []
    for i in range(wave.shape[0]):
        for a in _run(model, "shared", wave=wave[i : i + 1], generation=options, batch_size=1)[1]:
            single.append(dataclasses.replace(a, item=i))
    _assert_same(batched, single)


def test_length_buckets_do_not_change_answers(model):
    options = GenerationOptions(max_new_tokens=8, num_beams=2)
    one = _run(model, "shared", generation=options, length_bucket=1)[1]
    for bucket in (32,):
        _assert_same(_run(model, "shared", generation=options, length_bucket=bucket)[1], one)


# ------------------------------------------------------------------ sharing and early exit, counted


def _common_start(seqs):
    n = 0
    while all(len(s) > n + 1 for s in seqs) and len({s[n] for s in seqs}) == 1:
        n += 1
    return n


def test_the_prefix_runs_once_per_window_and_is_reused_by_every_prompt(model):
    wave = _windows()
    prompts = [P.DETECT_PROMPT, P.CLASSIFY_PROMPT, P.Prompt("g", "guide", P.GUIDE_SPECIES_TEXT, "not_none")]
    tasks = [p.task for p in prompts]
    tokens = [model.prompt_tokens(p.text) for p in prompts]
    assert len({t.before_audio for t in tokens}) == 1
    n_audio = 29
    first_pass = {}
    for path in ("shared", "unshared"):
        engine = Engine(model, prompts, EngineConfig(path=path, candidates=TINY_SPECIES[:1], length_bucket=1))
        engine.run(wave, [t for t in tasks if t != "classify"])
        first_pass[path] = engine.work.tokens
    shared_prefix = len(tokens[0].before_audio) + n_audio + _common_start([t.after_audio for t in tokens])
    n_prompts = len([t for t in tasks if t != "classify"])
    # Unshared computes the prefix once per (window, prompt); shared once per window.
    assert first_pass["unshared"] - first_pass["shared"] == (n_prompts - 1) * len(wave) * shared_prefix


def test_finished_rows_leave_the_batch(model):
    options = GenerationOptions(max_new_tokens=10, num_beams=1)
    prompt = P.CAPTION_PROMPT
    engine = Engine(model, [P.CLASSIFY_PROMPT, prompt], EngineConfig(generation=options))
    wave = _windows()
    embeds = model.encode_audio(torch.from_numpy(wave))
    rows = engine._prompt_rows(embeds, list(range(len(wave))), [prompt.text], {})
    engine.work.reset()
    decoded = D.greedy_decode(engine.lm, rows.select(prompt.text, list(range(len(wave)))), options)
    # Row r generates n_r tokens (its stop included, if any); all but the first need a step, and
    # only rows still running take part in a step.
    generated = [len(d.token_ids) + int(d.stopped) for d in decoded]
    assert len(set(generated)) > 1, "the test needs answers of different lengths"
    assert engine.work.positions == sum(n - 1 for n in generated)
    assert engine.work.forwards == max(generated) - 1


def test_beam_groups_leave_once_their_answer_is_final(model):
    options = GenerationOptions(max_new_tokens=12, num_beams=2)
    prompt = P.CAPTION_PROMPT
    engine = Engine(model, [prompt], EngineConfig(generation=options))
    wave = _windows()
    embeds = model.encode_audio(torch.from_numpy(wave))
    rows = engine._prompt_rows(embeds, list(range(len(wave))), [prompt.text], {})
    engine.work.reset()
    decoded = D.beam_decode(engine.lm, rows.select(prompt.text, list(range(len(wave)))), options)
    steps = engine.work.forwards
    assert steps >= 2 and any(d.stopped for d in decoded)
    # Without early exit every step would carry every group's beams.
    assert engine.work.positions < steps * len(wave) * options.num_beams
    assert engine.work.positions % options.num_beams == 0  # groups leave whole


# ------------------------------------------------------------------ cascade


@pytest.mark.parametrize("path", ["shared", "unshared"])
def test_cascade_classifies_exactly_the_windows_above_the_threshold(model, path):
    wave = _windows()
    plain = _run(model, path, tasks=["detect"])[1]
    p_yes = sorted(a.score for a in plain)
    threshold = (p_yes[1] + p_yes[2]) / 2
    passing = {a.item for a in plain if a.score >= threshold}
    assert 0 < len(passing) < len(wave)
    options = GenerationOptions(max_new_tokens=8)
    _, answers = _run(model, path, tasks=["detect", "classify"], cascade_threshold=threshold, generation=options)
    assert {a.item for a in answers if a.prompt.task == "classify"} == passing
    assert {a.item for a in answers if a.prompt.task == "detect"} == set(range(len(wave)))
    everything = _run(model, "reference", tasks=["classify"], generation=options)[1]
    expected = [a for a in everything if a.item in passing]
    _assert_same([a for a in answers if a.prompt.task == "classify"], expected)
    only = _run(model, path, tasks=["classify"], cascade_threshold=threshold, generation=options)[1]
    assert {a.item for a in only} == passing and all(a.prompt.task == "classify" for a in only)


# ------------------------------------------------------------------ prompt sets


def test_the_prompting_guide_set_detects_and_names_with_one_prompt(model):
    guide = P.load_prompt_set("prompting-guide-v1")
    detect = next(p for p in guide if p.task == "detect")
    assert detect.text == "What are the common names for the species in the audio, if any?"
    wave = _windows()
    engine, answers = _run(model, "shared", prompts=list(guide), tasks=["detect", "classify"])
    embeds = model.encode_audio(torch.from_numpy(wave))
    log_probs = model.next_token_log_probs(embeds, [detect.text] * len(wave))
    none_ids = list(P.none_token_ids(model.tokenizer))
    expected = 1 - log_probs[:, none_ids].exp().sum(-1)
    got = [a.score for a in answers if a.prompt.task == "detect"]
    assert got == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-6)
    classify = [a for a in answers if a.prompt.task == "classify"]
    reference = _run(model, "reference", prompts=[P.Prompt("g", "classify", detect.text)], tasks=["classify"])[1]
    assert [a.text for a in classify] == [a.text for a in reference]
    # classify decodes from the very rows detect was scored on: with a one-token answer (no
    # decoding step) asking both tasks costs what detection alone costs.
    one_token = GenerationOptions(max_new_tokens=1)
    alone = _run(model, "shared", prompts=list(guide), tasks=["detect"], generation=one_token)[0].work
    both = _run(model, "shared", prompts=list(guide), tasks=["detect", "classify"], generation=one_token)[0].work
    assert (both.forwards, both.tokens) == (alone.forwards, alone.tokens)


def test_a_prompt_set_from_a_json_file(tmp_path):
    path = tmp_path / "set.json"
    entries = [{"prompt_id": "mine-detect-v1", "task": "detect", "text": "Any birds? Answer yes or no.", "scoring": "yes_no"}]
    path.write_text(json.dumps({"prompts": entries}), encoding="utf-8")
    assert P.load_prompt_set(str(path)) == (P.Prompt(**entries[0]),)
    path.write_text(json.dumps({"prompts": entries * 2}), encoding="utf-8")
    with pytest.raises(ValueError, match="one prompt per task"):
        P.load_prompt_set(str(path))
    path.write_text(json.dumps({"prompts": [{**entries[0], "scoring": "loudness"}]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"set\.json.*scoring 'loudness'"):
        P.load_prompt_set(str(path))
    with pytest.raises(ValueError, match="naturelm-default-v1"):
        P.load_prompt_set("no-such-set")


# ------------------------------------------------------------------ batch sizing, devices


def test_auto_batch_size_fits_the_free_memory():
    gib = 1 << 30
    # 100 GiB free, 80 % usable, 4 GiB kept for the audio side, 200 MiB per window: 76 GiB / 200 MiB.
    assert auto_batch_size(100 * gib, 200 << 20, 0.8, 10_000, 4 * gib) == (76 * gib) // (200 << 20) == 389
    assert auto_batch_size(100 * gib, 200 << 20, 0.8, 256, 4 * gib) == 256  # capped
    assert auto_batch_size(1 << 20, 200 << 20, 0.8, 256) == 1  # never zero


def test_window_bytes_grow_with_beams_and_answer_length(model):
    base = window_bytes(model, MIXED, GenerationOptions(max_new_tokens=10, num_beams=1), 60)
    assert window_bytes(model, MIXED, GenerationOptions(max_new_tokens=10, num_beams=2), 60) > base
    assert window_bytes(model, MIXED, GenerationOptions(max_new_tokens=300, num_beams=1), 60) > base
    # Per position: 2 layers x (K, V) x 2 KV heads x 16 dims x 4 bytes for the tiny float32 Llama.
    assert kv_bytes_per_token(model) == 2 * 2 * 2 * 16 * 4


def test_auto_device_is_cuda_only_when_torch_sees_a_gpu():
    assert parse_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_engine_auto_batch_size_without_a_gpu(model):
    if model.device.type == "cuda":
        pytest.skip("CPU model expected")
    assert Engine(model, MIXED, EngineConfig(batch_size="auto")).batch_size == CPU_AUTO_BATCH


def test_bad_engine_options_are_refused(model):
    for bad in ({"batch_size": 0}, {"batch_size": "big"}, {"path": "fast"}, {"length_bucket": 0},
                {"candidates": ("",)}, {"memory_fraction": 1.5}):
        with pytest.raises(ValueError):
            EngineConfig(**bad)
    with pytest.raises(ValueError, match="cascade"):
        Engine(model, [DESCRIBE, P.CLASSIFY_PROMPT], EngineConfig(cascade_threshold=0.5))


def test_float64_fbank_on_the_production_path(model):
    wave = torch.from_numpy(_windows(2))
    assert model.fbank_dtype == torch.float64
    embeds = model.encode_audio(wave)
    try:
        model.fbank_dtype = torch.float32
        embeds_f32 = model.encode_audio(wave)
    finally:
        model.fbank_dtype = torch.float64
    torch.testing.assert_close(model.encode_audio(wave.double()), embeds)  # the float32 input is widened
    assert not torch.equal(embeds, embeds_f32)


# ------------------------------------------------------------------ GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_bf16_shared_path_agrees_with_the_reference_path(tmp_path):
    naturelm_dir, llama_dir = build_tiny_checkpoint(tmp_path / "tiny")
    gpu = load_naturelm(str(naturelm_dir), str(llama_dir), device="cuda").model
    assert gpu.llm_dtype == torch.bfloat16
    assert gpu.llama_model.config._attn_implementation == "sdpa"
    options = GenerationOptions(max_new_tokens=6, num_beams=2)
    shared = Engine(gpu, MIXED, EngineConfig(batch_size="auto", generation=options))
    assert shared.batch_size >= 1
    got = shared.run(_windows())
    reference = Engine(gpu, MIXED, EngineConfig(path="reference", generation=options)).run(_windows())
    for a, b in zip(got, reference):
        assert math.isclose(a.score, b.score, rel_tol=0.1, abs_tol=0.02)

