"""SALMONN's audio path, prompts and decoding against a one-clip reference written here from the
facts sheet (reference/salmonn.md §1, §2, §3 and its traps), on the tiny random release set.

The reference path below is deliberately plain: transformers' own WhisperFeatureExtractor (the
reference's front end) on the clip, the modules called one by one, `F.unfold` windows as the
reference cuts them, the prompt halves tokenized by hand, and decoding by full forward passes
without a cache, with transformers 4.28's beam-search bookkeeping (hidden BOS, 2 x beams
candidates, length normalisation, the `done` heuristic, open beams finalised at max length).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.support.salmonn import noise, salmonn_model, tiny_salmonn  # noqa: F401  (fixtures)
from transformers import WhisperFeatureExtractor

from naturelm_core.audio_llm import decoding as D
from naturelm_core.audio_llm.engine import Engine, EngineConfig
from naturelm_core.salmonn import prompts as P
from naturelm_core.salmonn.model import GenerationOptions, prepare_clip
from naturelm_core.salmonn.whisper import log_mel

NEG = -1e9


@pytest.fixture(scope="module")
def extractor(tiny_salmonn):
    return WhisperFeatureExtractor.from_pretrained(str(tiny_salmonn["whisper"]))


# ------------------------------------------------------------------------------ reference path


def reference_speech_embeds(model, extractor, clip: np.ndarray) -> torch.Tensor:
    """One clip (float, 16 kHz, already >= 1 s) -> (88, D), step by step as the reference does."""
    mel = extractor(clip.astype(np.float64), sampling_rate=16000, return_tensors="pt")["input_features"]
    with torch.no_grad():
        speech = model.ln_speech(model.speech_encoder(mel.float()).last_hidden_state)  # (1, 1500, W)
        audio = model.ln_audio(model.beats(torch.from_numpy(clip.astype(np.float64))[None]))  # (1, T, E)
        audio = F.pad(audio, (0, 0, 0, 1500 - audio.shape[1]))
        fused = torch.cat([speech, audio], dim=-1)  # (1, 1500, W + E)
        kernel = round(1500 * 0.333333 / 30.0)  # 17
        windows = F.unfold(fused.transpose(1, 2).unsqueeze(2), kernel_size=(1, kernel), stride=(1, kernel))
        b, _, n = windows.shape  # (1, C * 17, 88)
        windows = windows.view(b, -1, kernel, n).permute(0, 3, 2, 1).reshape(-1, kernel, fused.shape[-1])
        query = model.speech_query_tokens.expand(windows.shape[0], -1, -1)
        out = model.speech_Qformer(query, windows)
        return model.speech_llama_proj(out).reshape(-1, model.speech_llama_proj.out_features)


def reference_prompt_embeds(model, speech: torch.Tensor, query: str) -> torch.Tensor:
    tok = model.tokenizer
    text = "USER: {}\nASSISTANT:".format("<Speech><SpeechHere></Speech> " + query.strip())
    before, after = text.split("<SpeechHere>")
    ids_before = tok(before, add_special_tokens=False)["input_ids"]
    ids_after = tok(after, add_special_tokens=False)["input_ids"]
    embed = model.llama_model.get_input_embeddings()
    with torch.no_grad():
        return torch.cat([embed(torch.tensor([1])), embed(torch.tensor(ids_before)), speech,
                          embed(torch.tensor(ids_after))])


def next_log_probs(model, prefix: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """log-softmax of the next token after prefix + tokens ([PAD] then suppressed), no cache."""
    embed = model.llama_model.get_input_embeddings()
    with torch.no_grad():
        rows = torch.cat([prefix, embed(torch.tensor(tokens, dtype=torch.long))]) if tokens else prefix
        logits = model.llama_model(inputs_embeds=rows[None]).logits[0, -1].float()
    lp = torch.log_softmax(logits, dim=-1)
    lp[model.pad_id] = float("-inf")
    return lp


def reference_greedy(model, prefix, max_new: int) -> list[int]:
    out: list[int] = []
    for _ in range(max_new):
        token = int(next_log_probs(model, prefix, out).argmax())
        if token == 2:
            break
        out.append(token)
    return out


def reference_beam_428(model, prefix, beams: int, max_new: int) -> list[int]:
    """transformers 4.28 beam search with a hidden BOS in input_ids (length_penalty 1)."""
    seqs = [[] for _ in range(beams)]
    scores = [0.0] + [NEG] * (beams - 1)
    hyps: list[tuple[float, list[int]]] = []
    done = False

    def add(tokens, total):
        score = total / (1 + len(tokens))  # the hypothesis includes the hidden BOS
        hyps.append((score, tokens))
        hyps.sort(key=lambda h: h[0], reverse=True)
        del hyps[beams:]

    for step in range(max_new):
        cur_len = 1 + step
        cands = []
        for b in range(beams):
            lp = next_log_probs(model, prefix, seqs[b])
            top = torch.topk(lp + scores[b], 2 * beams)
            cands += [(float(v), b, int(i)) for v, i in zip(top.values, top.indices)]
        cands.sort(key=lambda c: c[0], reverse=True)
        cands = cands[: 2 * beams]
        nxt = []
        for rank, (score, b, token) in enumerate(cands):
            if token == 2:
                if rank < beams:
                    add(seqs[b], score)
                continue
            nxt.append((score, b, token))
            if len(nxt) == beams:
                break
        if len(hyps) >= beams and min(h[0] for h in hyps) >= cands[0][0] / cur_len:
            done = True
        seqs = [seqs[b] + [t] for _, b, t in nxt]
        scores = [s for s, _, _ in nxt]
        if done:
            break
    if not done:
        for seq, score in zip(seqs, scores):
            add(seq, score)
    return hyps[0][1]


# ------------------------------------------------------------------------------ front end, fusion


@pytest.mark.parametrize("seconds", [1.0, 3.3, 10.0, 30.0, 31.5])
def test_whisper_front_end_equals_transformers_extractor(extractor, seconds):
    clip = noise(seconds, seed=int(seconds * 10))
    expected = extractor(clip, sampling_rate=16000, return_tensors="np")["input_features"][0]
    ours = log_mel(torch.from_numpy(clip)[None], torch.from_numpy(extractor.mel_filters))[0].numpy()
    assert ours.shape == (80, 3000)
    np.testing.assert_allclose(ours, expected, atol=2e-4, rtol=0)


def test_whisper_front_end_clamps_each_clip_by_its_own_maximum(extractor):
    loud, quiet = noise(4.0, 1, level=0.5) * 2, noise(4.0, 2, level=0.01) * 0.5
    both = log_mel(torch.from_numpy(np.stack([loud, quiet])), torch.from_numpy(extractor.mel_filters))
    alone = log_mel(torch.from_numpy(quiet)[None], torch.from_numpy(extractor.mel_filters))
    torch.testing.assert_close(both[1:], alone, atol=1e-6, rtol=0)
    # The zero padding sits at (peak - 8 + 4) / 4 with the clip's own log10 peak, not at the log
    # floor: the output's maximum is (peak + 4) / 4, so the padding is that maximum minus 2.
    pad = both[1, :, -10:]
    assert float(both[1].max()) - 2.0 > (-10 + 4) / 4  # the clip's peak is above -2: the clamp applies
    torch.testing.assert_close(pad, torch.full_like(pad, float(both[1].max()) - 2.0), atol=1e-5, rtol=0)
    assert float(both[0, 0, -1]) > float(pad[0, 0]) + 0.1  # the loud clip's padding sits higher


@pytest.mark.parametrize("seconds", [0.4, 1.0, 10.0, 30.0])
def test_fusion_rows_and_88_speech_embeddings_for_any_length(salmonn_model, seconds):
    model = salmonn_model
    clip = noise(seconds, seed=3)
    wave = torch.from_numpy(clip)[None]
    fused = model.fuse(wave)
    width = model.config.whisper_width
    assert fused.shape == (1, 1500, width + model.config.beats_cfg.encoder_embed_dim)
    samples = max(clip.shape[0], 16000)  # padded to 1 s
    frames = 1 + (samples - 400) // 160
    tokens = 8 * (frames // 16)  # BEATs: 48 for 1 s, 496 for 10 s, 1496 for 30 s
    beats_part = fused[0, :, width:]
    assert torch.count_nonzero(beats_part[tokens:]) == 0  # zero rows after ln_audio
    assert bool((beats_part[:tokens].abs().sum(-1) > 0).all())
    padded = np.pad(clip, (0, samples - clip.shape[0])).astype(np.float64)
    with torch.no_grad():
        beats = model.ln_audio(model.beats(torch.from_numpy(padded)[None]))
    torch.testing.assert_close(beats_part[:tokens], beats[0], atol=1e-5, rtol=0)  # unpadded, float64 fbank
    embeds = model.encode_audio(wave)
    assert embeds.shape == (1, 88, model.llama_model.config.hidden_size)
    assert model.embeds_per_clip(clip.shape[0]) == 88


def test_windows_are_17_rows_and_the_last_4_rows_are_dropped(salmonn_model):
    model = salmonn_model
    fused = model.fuse(torch.from_numpy(noise(10.0, seed=4))[None])
    base = model.speech_embeds(fused)
    tail = fused.clone()
    tail[:, 1496:] += 5.0  # rows 1496..1499: in no window
    torch.testing.assert_close(model.speech_embeds(tail), base, atol=0, rtol=0)
    last = fused.clone()
    last[:, 1479] += 5.0  # row 1479 = window 87's first row (87 * 17)
    changed = (model.speech_embeds(last) - base).abs().sum(-1)[0]
    assert changed[87] > 0 and torch.count_nonzero(changed[:87]) == 0


def test_speech_embeds_equal_the_one_clip_reference(salmonn_model, extractor):
    for seconds in (2.5, 10.0):
        clip = noise(seconds, seed=5)
        ours = salmonn_model.encode_audio(torch.from_numpy(clip)[None])[0]
        ref = reference_speech_embeds(salmonn_model, extractor, clip)
        torch.testing.assert_close(ours, ref, atol=2e-4, rtol=1e-4)


def test_clip_longer_than_30_s_is_refused(salmonn_model):
    with pytest.raises(ValueError, match="at most 30 s"):
        salmonn_model.encode_audio(torch.zeros(1, 30 * 16000 + 1))


def test_prepare_clip_is_the_reference_preparation():
    stereo = np.stack([np.ones(8000), -np.ones(8000)], axis=1)
    prepared = prepare_clip(stereo, 16000)
    assert prepared.dtype == np.float64 and prepared.shape == (16000,)
    assert prepared[:8000].min() == 1.0 and not prepared[8000:].any()  # first channel, padded to 1 s
    assert prepare_clip(np.zeros(40 * 16000), 16000).shape == (30 * 16000,)  # first 30 s
    with pytest.raises(ValueError, match="16000 Hz"):
        prepare_clip(np.zeros(48000), 48000)


# ------------------------------------------------------------------------------ prompts


def test_prompt_token_ids(salmonn_model):
    tok = salmonn_model.tokenizer
    query = "  Please describe the audio.  "
    pieces = salmonn_model.prompt_tokens(query)
    assert pieces.before_audio == (1, *tok("USER: <Speech>", add_special_tokens=False)["input_ids"])
    after = tok("</Speech> Please describe the audio.\nASSISTANT:", add_special_tokens=False)["input_ids"]
    assert pieces.after_audio == tuple(after)
    names = tok.convert_ids_to_tokens(list(pieces.after_audio))
    assert names[0].startswith("\u2581")  # the dummy prefix of a separately tokenized half
    assert 13 in pieces.after_audio and names[pieces.after_audio.index(13)] == "<0x0A>"  # "\n"
    assert names[-1].endswith(":")  # nothing after "ASSISTANT:"
    assert 2 not in pieces.after_audio and pieces.before_audio.count(1) == 1  # no EOS, one BOS
    # One tokenization of the whole text would not give the half after the audio its prefix piece.
    whole = tok("USER: <Speech></Speech> Please describe the audio.\nASSISTANT:", add_special_tokens=False)["input_ids"]
    assert tuple(whole) != pieces.before_audio[1:] + pieces.after_audio
    assert salmonn_model.prompt_tokens("Please describe the audio.") == pieces  # stripped


def test_yes_no_ids_are_single_sentencepiece_words(salmonn_model):
    yes, no = P.yes_no_token_ids(salmonn_model.tokenizer)
    names = salmonn_model.tokenizer.convert_ids_to_tokens(list(yes + no))
    assert "\u2581Yes" in names and "\u2581No" in names


# ------------------------------------------------------------------------------ decoding


@pytest.fixture(scope="module")
def clips():
    return [noise(10.0, seed=s) for s in (6, 7, 8)]


def _engine(model, beams: int, max_new: int, path: str = "shared", batch: int = 4) -> Engine:
    generation = GenerationOptions(max_new_tokens=max_new, num_beams=beams, min_new_tokens=0)
    return Engine(model, [P.CAPTION_PROMPT], EngineConfig(batch_size=batch, generation=generation, path=path))


@pytest.mark.parametrize("beams", [1, 4])
def test_decoded_ids_equal_the_one_clip_reference(salmonn_model, extractor, clips, beams):
    model, max_new = salmonn_model, 6
    engine = _engine(model, beams, max_new)
    embeds = engine.encode(np.stack(clips))
    rows, _ = engine.lm.extend(None, [torch.cat([engine.lm.embed(model.prompt_tokens(P.CAPTION_PROMPT.text).before_audio),
                                                 embeds[i],
                                                 engine.lm.embed(model.prompt_tokens(P.CAPTION_PROMPT.text).after_audio)])
                                      for i in range(len(clips))])
    decoded = D.decode(engine.lm, rows, engine.config.generation)
    for clip, got in zip(clips, decoded):
        prefix = reference_prompt_embeds(model, reference_speech_embeds(model, extractor, clip), P.CAPTION_PROMPT.text)
        expected = reference_greedy(model, prefix, max_new) if beams == 1 else reference_beam_428(model, prefix, 4, max_new)
        assert list(got.token_ids) == expected
    texts = [a.text for a in engine.run(np.stack(clips))]
    assert texts == [model.tokenizer.decode(d.token_ids, skip_special_tokens=True).strip() for d in decoded]
    assert all("<s>" not in t and "</s>" not in t for t in texts)  # trap 13


def test_answers_do_not_depend_on_the_batch(salmonn_model, clips):
    prompts = [P.DETECT_PROMPT, P.CAPTION_PROMPT]
    config = EngineConfig(batch_size=4, generation=GenerationOptions(max_new_tokens=4, num_beams=4,
                                                                               min_new_tokens=0))
    engine = Engine(salmonn_model, prompts, config)
    short = np.zeros(160000, dtype=np.float32)
    short[:40000] = noise(2.5, seed=9)  # a short window, zero-padded to 10 s
    alone = engine.run(short[None])
    mixed = engine.run(np.stack([clips[0], short, clips[1]]))
    got = [(a.prompt.task, a.text) for a in mixed if a.item == 1]
    assert got == [(a.prompt.task, a.text) for a in alone]
    np.testing.assert_allclose([a.score for a in mixed if a.item == 1], [a.score for a in alone], atol=1e-5)
    embeds_alone = salmonn_model.encode_audio(torch.from_numpy(short)[None])
    embeds_mixed = salmonn_model.encode_audio(torch.from_numpy(np.stack([clips[0], short])))
    torch.testing.assert_close(embeds_mixed[1:], embeds_alone, atol=1e-5, rtol=1e-5)


def test_pad_logit_never_wins(salmonn_model, clips):
    model = salmonn_model
    head = model.llama_model.get_output_embeddings().weight
    saved = head[model.pad_id].clone()
    try:
        with torch.no_grad():
            head[model.pad_id] = 50.0 * head[5]  # a [PAD] row that would win every step
        engine = _engine(model, 4, 4)
        answers = engine.run(clips[0][None])
        embeds = engine.encode(clips[0][None])
        generated = model.generate(embeds, [P.CAPTION_PROMPT.text], GenerationOptions(
            max_new_tokens=4, num_beams=1, min_new_tokens=0))
    finally:
        with torch.no_grad():
            head[model.pad_id] = saved
    assert "[PAD]" not in answers[0].text and model.pad_id not in generated[0].token_ids
    assert 0.0 <= answers[0].score <= 1.0


def test_beam_lengths_count_the_hidden_bos(salmonn_model, extractor, clips):
    """With `</s>` competitive, a finished short answer competes with beams still open at the limit;
    transformers 4.28 divides an open beam's score by 1 + max_new_tokens (its hidden BOS), a
    finished one by 1 + its tokens. On these clips that picks the open beams (without the hidden
    BOS the one-token answer would win)."""
    model, max_new = salmonn_model, 3
    head = model.llama_model.get_output_embeddings().weight
    saved = head[2].clone()
    try:
        with torch.no_grad():
            head[2] = saved * 2.5
        engine = _engine(model, 4, max_new)
        tok = model.prompt_tokens(P.CAPTION_PROMPT.text)
        embeds = engine.encode(np.stack(clips[:2]))
        rows, _ = engine.lm.extend(None, [torch.cat([engine.lm.embed(tok.before_audio), embeds[i],
                                                     engine.lm.embed(tok.after_audio)]) for i in range(2)])
        decoded = D.decode(engine.lm, rows, engine.config.generation)
        for clip, got in zip(clips[:2], decoded):
            prefix = reference_prompt_embeds(model, reference_speech_embeds(model, extractor, clip), P.CAPTION_PROMPT.text)
            expected = reference_beam_428(model, prefix, 4, max_new)
            assert list(got.token_ids) == expected
            assert len(expected) == max_new and not got.stopped  # the open beam won
    finally:
        with torch.no_grad():
            head[2] = saved
