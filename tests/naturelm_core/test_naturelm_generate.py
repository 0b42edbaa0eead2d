"""Prompts, left-padded batched generation, merging_alpha, scores and the engine (tiny model)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from naturelm_core.naturelm import prompts as P
from naturelm_core.naturelm.checkpoint import load_naturelm
from naturelm_core.audio_llm.engine import Engine, EngineConfig
from naturelm_core.naturelm.model import GenerationOptions
from naturelm_core.naturelm.tiny import TINY_SPECIES, build_tiny_checkpoint

SAMPLE_RATE_HZ = 16_000
SHORT = GenerationOptions(max_new_tokens=10)
LONG_QUERY = "Describe the sounds in this recording and name every animal species you can hear in it."


def _windows() -> np.ndarray:
    """Four 10-s windows of different content: two tones, noise, a chirp."""
    t = np.arange(10 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    rng = np.random.default_rng(0)
    chirp = np.sin(2 * np.pi * (500 + 300 * t) * t)
    rows = [0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 3000 * t), 0.2 * rng.standard_normal(t.size), 0.4 * chirp]
    return np.clip(np.stack(rows), -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(tiny):
    m = load_naturelm(str(tiny[0]), str(tiny[1])).model
    yield m
    m.set_merging_alpha(1.0)


@pytest.fixture(scope="module")
def embeds(model):
    return model.encode_audio(torch.from_numpy(_windows()))


# ------------------------------------------------------------------ prompts


def test_prompt_text_is_the_published_template():
    expected = (
        "<|start_header_id|>user<|end_header_id|>\n\n<Audio><AudioHere></Audio> What is the common name for "
        "the focal species in the audio? Answer:<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert P.format_prompt("What is the common name for the focal species in the audio? Answer: \n") == expected
    # A query that places the audio itself keeps its placement.
    assert P.format_prompt("Listen: <Audio><AudioHere></Audio> Name it.").count("<AudioHere>") == 1
    with pytest.raises(ValueError, match="exactly once"):
        P.format_prompt("<AudioHere> and <AudioHere>")


def test_prompt_tokens_have_one_bos_and_end_with_the_assistant_header(model):
    tok = model.tokenizer
    pieces = model.prompt_tokens(P.CLASSIFY_PROMPT.text)
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    ids = [*pieces.before_audio, *pieces.after_audio]
    assert ids[0] == bos and ids.count(bos) == 1
    assert tok.decode(pieces.before_audio[1:]) == "<|start_header_id|>user<|end_header_id|>\n\n<Audio>"
    assert tok.decode(pieces.after_audio).startswith("</Audio> What is the common name")
    assert tok.decode(pieces.after_audio).endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_left_padding_layout(model, embeds):
    queries = ["Caption the audio", LONG_QUERY]
    e, mask, positions, end = model.assemble(embeds[:2], queries)
    lengths = [len(model.prompt_tokens(q)) + embeds.shape[1] for q in queries]
    assert lengths[0] < lengths[1] and end == max(lengths) == e.shape[1]
    pad = lengths[1] - lengths[0]
    assert mask[0, :pad].sum() == 0 and mask[0, pad:].all() and mask[1].all()
    assert positions[0, pad:].tolist() == list(range(lengths[0]))  # real tokens count from 0
    # The audio sits right after "<Audio>" in both rows.
    n_before = len(model.prompt_tokens(queries[0]).before_audio)
    assert torch.equal(e[0, pad + n_before : pad + n_before + embeds.shape[1]], embeds[0])


# ------------------------------------------------------------------ generation


@pytest.mark.parametrize("num_beams", [1, 2])
def test_batched_generation_equals_one_at_a_time(model, embeds, num_beams):
    queries = [P.CLASSIFY_PROMPT.text, P.DETECT_PROMPT.text, "Caption the audio", LONG_QUERY]
    assert len({len(model.prompt_tokens(q)) for q in queries}) >= 3  # prompts of different lengths
    options = dataclasses.replace(SHORT, num_beams=num_beams)
    batched = model.generate(embeds, queries, options)
    single = [model.generate(embeds[i : i + 1], [q], options)[0] for i, q in enumerate(queries)]
    assert batched == single
    assert any(a.token_ids for a in batched)
    # Same prompt for every window: answers still depend on the audio.
    same_prompt = model.generate(embeds, [LONG_QUERY] * 4, options)
    assert len({a.token_ids for a in same_prompt}) > 1


def test_greedy_generation_is_deterministic(model, embeds):
    options = dataclasses.replace(SHORT, num_beams=1)
    queries = [P.CLASSIFY_PROMPT.text] * 4
    assert model.generate(embeds, queries, options) == model.generate(embeds, queries, options)


def test_greedy_answer_follows_the_argmax_of_teacher_forcing(model, embeds):
    options = dataclasses.replace(SHORT, num_beams=1, max_new_tokens=4, min_new_tokens=0)
    answer = model.generate(embeds[:1], [LONG_QUERY], options)[0]
    first, _ = model.continuation_log_probs(embeds[:1], [LONG_QUERY], [answer.token_ids], [answer.stopped])
    expected_first = answer.token_ids[0] if answer.token_ids else None
    best = int(first[0].argmax())
    assert best == expected_first or (expected_first is None and best in model.stop_ids)


def test_pad_token_is_never_a_candidate(model, embeds):
    log_probs = model.next_token_log_probs(embeds, [P.CLASSIFY_PROMPT.text] * 4)
    assert torch.isneginf(log_probs[:, model.pad_id]).all()
    answers = model.generate(embeds, [LONG_QUERY] * 4, SHORT)
    assert all(model.pad_id not in a.token_ids for a in answers)


def test_merging_alpha_zero_gives_the_base_llama_logits(tiny, model, embeds):
    base = LlamaForCausalLM.from_pretrained(str(tiny[1]), dtype=torch.float32, local_files_only=True).eval()
    vocab = base.config.vocab_size
    e, mask, positions, _ = model.assemble(embeds[:2], [P.DETECT_PROMPT.text, LONG_QUERY])
    with torch.inference_mode():
        expected = base(inputs_embeds=e, attention_mask=mask, position_ids=positions).logits
        try:
            model.set_merging_alpha(0.0)
            at_zero = model.llama_model(inputs_embeds=e, attention_mask=mask, position_ids=positions).logits
            model.set_merging_alpha(0.5)
            at_half = model.llama_model(inputs_embeds=e, attention_mask=mask, position_ids=positions).logits
        finally:
            model.set_merging_alpha(1.0)
        at_one = model.llama_model(inputs_embeds=e, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    torch.testing.assert_close(at_zero[..., :vocab][real], expected[real], rtol=1e-5, atol=1e-5)
    assert (at_one[..., :vocab][real] - expected[real]).abs().max() > 1e-2
    assert (at_half[..., :vocab][real] - at_one[..., :vocab][real]).abs().max() > 1e-3


def test_negative_merging_alpha_is_refused(model):
    with pytest.raises(ValueError, match="merging_alpha"):
        model.set_merging_alpha(-0.1)


# ------------------------------------------------------------------ scores


def test_yes_no_probability_renormalises_over_the_yes_and_no_ids(model):
    yes_ids, no_ids = P.yes_no_token_ids(model.tokenizer)
    assert len(yes_ids) >= 2 and len(no_ids) >= 2
    log_probs = torch.full((1, len(model.tokenizer)), -30.0)
    log_probs[0, yes_ids[0]] = math.log(0.2)
    log_probs[0, yes_ids[1]] = math.log(0.1)
    log_probs[0, no_ids[0]] = math.log(0.6)
    p_yes = float(model.yes_no_probability(log_probs)[0])
    # 0.3 / (0.3 + 0.6), up to the e^-30 mass of the other variants.
    assert p_yes == pytest.approx(1 / 3, abs=1e-6)


def test_sequence_probability_is_the_product_of_token_probabilities(model, embeds):
    query = P.CLASSIFY_PROMPT.text
    answer = model.tokenizer("Common Raven", add_special_tokens=False)["input_ids"]
    _, totals = model.continuation_log_probs(embeds[:1], [query], [answer], [True])
    # Recompute step by step: next-token distributions of growing prefixes.
    expected = 0.0
    for n in range(len(answer) + 1):
        e, mask, pos, _ = model.assemble(embeds[:1], [query], [answer[:n]])
        with torch.inference_mode():
            logits = model.llama_model(inputs_embeds=e, attention_mask=mask, position_ids=pos).logits[0, -1].float().clone()
            logits[model.pad_id] = float("-inf")
        step = torch.log_softmax(logits, -1)
        expected += float(step[answer[n]]) if n < len(answer) else float(torch.logsumexp(step[list(model.stop_ids)], 0))
    assert float(totals[0]) == pytest.approx(expected, abs=1e-4)
    assert 0.0 < math.exp(float(totals[0])) < 1.0


def test_candidate_probabilities_are_normalised_and_batch_independent(model, embeds):
    query = P.CLASSIFY_PROMPT.text
    probs = model.candidate_probabilities(embeds, query, TINY_SPECIES, chunk_rows=5)
    assert probs.shape == (4, len(TINY_SPECIES))
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    alone = model.candidate_probabilities(embeds[2:3], query, TINY_SPECIES)
    torch.testing.assert_close(alone[0], probs[2], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ engine


@pytest.fixture(scope="module")
def three_prompts():
    return [
        P.DETECT_PROMPT,
        P.CLASSIFY_PROMPT,
        P.Prompt(prompt_id="test-caption", task="caption", text=LONG_QUERY),
    ]


def test_engine_scores_lie_in_the_unit_interval(model, three_prompts):
    engine = Engine(model, three_prompts, EngineConfig(batch_size=4, generation=SHORT))
    answers = engine.run(_windows())
    assert [(a.item, a.prompt.task) for a in answers] == [(i, p.task) for i in range(4) for p in three_prompts]
    assert all(0.0 <= a.score <= 1.0 for a in answers)
    # Detection scores vary with the audio (the tiny model is random, not constant).
    assert len({round(a.score, 6) for a in answers if a.prompt.task == "detect"}) > 1


def test_three_prompts_on_one_encoding_equal_three_separate_calls(model, three_prompts, monkeypatch):
    calls = []
    encode = model.encode_audio
    monkeypatch.setattr(model, "encode_audio", lambda wave: calls.append(wave.shape[0]) or encode(wave))
    wave = _windows()
    together = Engine(model, three_prompts, EngineConfig(batch_size=2, generation=SHORT)).run(wave)
    assert calls == [2, 2]  # each window encoded exactly once for all three prompts
    separate = []
    for prompt in three_prompts:
        separate += Engine(model, [prompt], EngineConfig(batch_size=2, generation=SHORT)).run(wave)
    key = lambda a: (a.item, a.prompt.prompt_id)  # noqa: E731
    assert sorted((key(a), a.text) for a in together) == sorted((key(a), a.text) for a in separate)
    by_key = {key(a): a.score for a in separate}
    for a in together:
        assert a.score == pytest.approx(by_key[key(a)], rel=1e-4, abs=1e-6)


def test_cascade_classifies_only_windows_passing_the_threshold(model):
    wave = _windows()
    plain = Engine(model, config=EngineConfig(generation=SHORT)).run(wave, ["detect"])
    p_yes = sorted(a.score for a in plain)
    threshold = (p_yes[1] + p_yes[2]) / 2  # two windows below, two above
    passing = {a.item for a in plain if a.score >= threshold}
    assert len(passing) == 2
    cascade = Engine(model, config=EngineConfig(generation=SHORT, cascade_threshold=threshold))
    answers = cascade.run(wave, ["detect", "classify"])
    assert {a.item for a in answers if a.prompt.task == "classify"} == passing
    assert {a.item for a in answers if a.prompt.task == "detect"} == set(range(4))
    # Classify alone still applies the cascade, without emitting detection rows.
    only = cascade.run(wave, ["classify"])
    assert {a.item for a in only} == passing and all(a.prompt.task == "classify" for a in only)


def test_constrained_classification_answers_with_a_candidate(model):
    engine = Engine(model, config=EngineConfig(generation=SHORT, candidates=TINY_SPECIES))
    answers = engine.run(_windows(), ["classify"])
    assert len(answers) == 4
    assert all(a.text in TINY_SPECIES and 1 / len(TINY_SPECIES) <= a.score <= 1.0 for a in answers)


def test_scoring_in_row_chunks_equals_one_pass(model, embeds, monkeypatch):
    import naturelm_core.audio_llm.model as naturelm_module

    queries = [P.CLASSIFY_PROMPT.text, LONG_QUERY, "Caption the audio", P.DETECT_PROMPT.text]
    answers = [(), tuple(model.tokenizer("Common Raven", add_special_tokens=False)["input_ids"]), (5, 6), (7,)]
    stopped = [True, True, False, True]
    first, totals = model.continuation_log_probs(embeds, queries, answers, stopped)
    monkeypatch.setattr(naturelm_module, "SCORING_LOGITS_BYTES", 1)  # one row per chunk
    first_chunked, totals_chunked = model.continuation_log_probs(embeds, queries, answers, stopped)
    torch.testing.assert_close(first_chunked, first, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(totals_chunked, totals, rtol=1e-5, atol=1e-5)
