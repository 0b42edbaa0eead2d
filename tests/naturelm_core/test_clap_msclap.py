"""MS-CLAP 2023: the release's key layout, strict loading, the GPT-2 text side and its pooling.

Published numbers (key count, parameter counts, shapes) are the ones measured from msclap's own
model in reference/ms-clap-2023.md §6; the tiny checkpoint has the same key names.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from naturelm_core.clap import checkpoint
from naturelm_core.clap.checkpoint import ClapCheckpointError
from naturelm_core.clap.frontend import CLIP_SAMPLES
from naturelm_core.clap.msclap import MSClap, MSClapConfig, tokenize_prompts
from naturelm_core.clap.tiny import build_tiny_msclap, tiny_msclap_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_msclap(tmp_path_factory.mktemp("tiny-msclap"))


@pytest.fixture(scope="module")
def model(tiny) -> MSClap:
    weights, text_dir, _ = tiny
    return checkpoint.load_msclap(weights, text_dir, tiny_msclap_config())


def _published_on_meta(text_dir) -> MSClap:
    """The published-size model on the meta device (shapes only), with the tiny tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2Model

    tokenizer = AutoTokenizer.from_pretrained(str(text_dir), local_files_only=True)
    with torch.device("meta"):
        return MSClap(MSClapConfig(), GPT2Model(GPT2Config()), tokenizer)


def test_published_layout_has_the_release_key_count_and_parameter_counts(tiny):
    model = _published_on_meta(tiny[1])
    state = model.state_dict()
    params = dict(model.named_parameters())
    assert len(state) == 357 and len(params) == 337  # + 20 buffers
    count = lambda prefix: sum(p.numel() for k, p in params.items() if k.startswith(prefix))  # noqa: E731
    assert count("audio_encoder.base.") == 31_325_143
    assert count("audio_encoder.projection.") == 1_837_056
    assert count("caption_encoder.base.") == 124_439_808
    assert count("caption_encoder.projection.") == 1_837_056
    assert sum(p.numel() for p in params.values()) == 159_439_064
    assert sum(t.dtype == torch.int64 for t in state.values()) == 13  # 12 position indexes + bn0 count
    expected = {
        "logit_scale": (),
        "audio_encoder.base.htsat.spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
        "audio_encoder.base.htsat.logmel_extractor.melW": (513, 64),
        "audio_encoder.base.htsat.bn0.num_batches_tracked": (),
        "audio_encoder.base.htsat.patch_embed.proj.weight": (96, 1, 4, 4),
        "audio_encoder.base.htsat.layers.0.blocks.1.attn_mask": (64, 64, 64),
        "audio_encoder.base.htsat.layers.0.downsample.reduction.weight": (192, 384),
        "audio_encoder.base.htsat.layers.3.blocks.1.attn.relative_position_bias_table": (225, 32),
        "audio_encoder.base.htsat.tscam_conv.weight": (527, 768, 2, 3),
        "audio_encoder.base.htsat.head.weight": (527, 527),
        "audio_encoder.projection.linear1.weight": (1024, 768),
        "caption_encoder.base.wte.weight": (50257, 768),
        "caption_encoder.base.h.11.attn.c_attn.weight": (768, 2304),
        "caption_encoder.projection.layer_norm.bias": (1024,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert not any(k.startswith("audio_encoder.base.htsat.layers.3.") and k.endswith("attn_mask") for k in state)


def test_tiny_release_has_the_same_key_names_as_the_published_model(tiny):
    weights, text_dir, _ = tiny
    file_keys = set(torch.load(str(weights), weights_only=True)["model"])
    published = set(_published_on_meta(text_dir).state_dict())
    legacy = {k for k in file_keys if checkpoint.LEGACY_GPT2_BUFFER.match(k)}
    assert len(legacy) == 2 * 2  # bias + masked_bias per tiny GPT-2 layer
    # The tiny model has 4 HTSAT stages of depth 2 and 2 GPT-2 layers; every key it has exists
    # in the published layout under the same name once block and layer numbers agree.
    pattern = lambda k: re.sub(r"\.(blocks|h)\.\d+\.", r".\1.N.", k)  # noqa: E731
    assert {pattern(k) for k in file_keys - legacy} == {pattern(k) for k in published}


def test_strict_load_names_a_renamed_key_as_missing_and_unexpected(tiny, tmp_path):
    weights, text_dir, _ = tiny
    state = torch.load(str(weights), weights_only=True)["model"]
    state["audio_encoder.projection.linear_1.weight"] = state.pop("audio_encoder.projection.linear1.weight")
    bad = tmp_path / "renamed.pth"
    torch.save({"model": state}, str(bad))
    with pytest.raises(ClapCheckpointError) as err:
        checkpoint.load_msclap(bad, text_dir, tiny_msclap_config())
    message = str(err.value)
    assert str(bad) in message
    assert "1 missing key(s):\n    audio_encoder.projection.linear1.weight" in message
    assert "1 unexpected key(s):\n    audio_encoder.projection.linear_1.weight" in message


def test_strict_load_names_every_mis_shaped_key_with_both_shapes(tiny, tmp_path):
    weights, text_dir, _ = tiny
    state = torch.load(str(weights), weights_only=True)["model"]
    key_a = "audio_encoder.base.htsat.layers.1.blocks.0.attn.qkv.weight"
    key_b = "caption_encoder.base.wpe.weight"
    state[key_a] = state[key_a][:-1]
    state[key_b] = state[key_b].T.contiguous()
    bad = tmp_path / "misshaped.pth"
    torch.save({"model": state}, str(bad))
    with pytest.raises(ClapCheckpointError) as err:
        checkpoint.load_msclap(bad, text_dir, tiny_msclap_config())
    message = str(err.value)
    assert "2 mis-shaped key(s)" in message
    assert f"{key_a}: file float (47, 16) vs model (48, 16)" in message
    assert f"{key_b}: file float (32, 128) vs model (128, 32)" in message
    assert "missing" not in message and "unexpected" not in message


def test_release_without_legacy_gpt2_buffers_loads_too(tiny, tmp_path, model):
    weights, text_dir, _ = tiny
    plain = checkpoint.save_release(model, tmp_path / "plain.pth", legacy_gpt2_buffers=False)
    reloaded = checkpoint.load_msclap(plain, text_dir, tiny_msclap_config())
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


@pytest.mark.parametrize(
    "content, reason",
    [(b"not a torch file", "cannot read as a torch checkpoint"), (None, "expected a dict with a 'model' state dict")],
    ids=["corrupt", "no-model-entry"],
)
def test_unreadable_release_is_one_error_naming_the_file(tiny, tmp_path, content, reason):
    bad = tmp_path / "bad.pth"
    if content is None:
        torch.save({"state_dict": {}}, str(bad))
    else:
        bad.write_bytes(content)
    with pytest.raises(ClapCheckpointError, match=re.escape(str(bad)) + ".*" + re.escape(reason)):
        checkpoint.load_msclap(bad, tiny[1], tiny_msclap_config())


def test_text_folder_without_gpt2_config_is_refused(tiny, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "roberta"}')
    with pytest.raises(ClapCheckpointError, match="GPT-2 text folder"):
        checkpoint.load_msclap(tiny[0], tmp_path, tiny_msclap_config())


def test_loaded_release_equals_the_file_and_keeps_the_published_fixed_kernels(tiny, model):
    from naturelm_core.clap.frontend import dft_kernels, slaney_mel_filterbank

    state = torch.load(str(tiny[0]), weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    htsat = model.audio_encoder.base.htsat
    np.testing.assert_array_equal(htsat.spectrogram_extractor.stft.conv_real.weight.numpy(), dft_kernels()[0])
    np.testing.assert_array_equal(htsat.logmel_extractor.melW.numpy(), slaney_mel_filterbank())


# ------------------------------------------------------------------------------------ text side


def test_prompt_gets_space_and_end_of_text_then_pad_id_zero_to_77(model):
    tok = model.tokenizer
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    enc = tokenize_prompts(tok, ["this is the sound of rain"])
    ids, mask = enc["input_ids"][0].tolist(), enc["attention_mask"][0].tolist()
    n = sum(mask)
    assert len(ids) == 77 and tok.pad_token_id == 0 == tok.convert_tokens_to_ids("!")
    assert ids[n - 2 : n] == [tok.convert_tokens_to_ids("Ġ"), eot]  # the space stays its own token
    assert ids[n:] == [0] * (77 - n) and mask == [1] * n + [0] * (77 - n)
    assert tok.decode(ids[: n - 2]) == "this is the sound of rain"


def test_exclamation_mark_is_split_out_and_moves_the_pooled_token_left(model):
    tok = model.tokenizer
    enc = tokenize_prompts(tok, ["a frog!!", "a frog!"])
    n_real = enc["attention_mask"].sum(-1).tolist()
    double, single = enc["input_ids"]
    assert double[n_real[0] - 4 : n_real[0] - 2].tolist() == [0, 0]  # "!!": two id-0 tokens, never merged
    # msclap pools at (count of ids != 0) - 1: for "a frog!" ... "!" "Ġ" <|endoftext|> that is the
    # "Ġ" before <|endoftext|>, one place left of where a prompt without "!" is pooled.
    assert int((single != 0).sum()) - 1 == n_real[1] - 2
    ids = torch.tensor([tok("a frog! <|endoftext|>")["input_ids"]])
    with torch.no_grad():
        hidden = model.caption_encoder.base(input_ids=ids).last_hidden_state[0, -2]
        expected = model.caption_encoder.projection(hidden)
    np.testing.assert_allclose(model.text_embeddings(["a frog!"])[0].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_pooled_text_token_is_the_end_of_text_hidden_state_of_the_unpadded_prompt(model):
    prompt = "this is the sound of Tawny Owl"
    enc = model.tokenizer(prompt + " <|endoftext|>")
    ids = torch.tensor([enc["input_ids"]])
    with torch.no_grad():
        hidden = model.caption_encoder.base(input_ids=ids).last_hidden_state[0, -1]  # no padding at all
        expected = model.caption_encoder.projection(hidden)
    np.testing.assert_allclose(model.text_embeddings([prompt])[0].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_trimming_the_padding_columns_equals_msclaps_full_77_token_batch(model):
    prompts = ["this is the sound of rain", "this is the sound of Common Chiffchaff calling", "a frog!"]
    enc = tokenize_prompts(model.tokenizer, prompts)  # (3, 77), as msclap feeds GPT-2
    with torch.no_grad():
        full = model.caption_encoder(enc["input_ids"], enc["attention_mask"], model.tokenizer.pad_token_id)
    np.testing.assert_allclose(model.text_embeddings(prompts).numpy(), full.numpy(), rtol=1e-5, atol=1e-6)


def test_text_batched_equals_one_at_a_time_and_too_long_prompts_are_refused(model):
    prompts = ["this is the sound of rain", "this is the sound of Eurasian Wren", "a"]
    batched = model.text_embeddings(prompts)
    single = torch.cat([model.text_embeddings([p]) for p in prompts])
    np.testing.assert_allclose(batched.numpy(), single.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="the limit is 77"):
        model.text_embeddings(["wren " * 80])


def test_audio_batched_equals_one_at_a_time_and_similarity_is_scaled_cosine(model):
    wave = 0.1 * torch.randn(3, CLIP_SAMPLES, generator=torch.Generator().manual_seed(5))
    batched = model.audio_embeddings(wave)
    single = torch.cat([model.audio_embeddings(wave[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 16)
    np.testing.assert_allclose(batched.numpy(), single.numpy(), rtol=1e-5, atol=1e-6)
    text = model.text_embeddings(["this is the sound of rain", "this is the sound of wind"])
    logits = model.logits(batched, text)
    cosine = torch.nn.functional.cosine_similarity(batched[:, None], text[None], dim=-1)
    np.testing.assert_allclose(logits.detach().numpy(), (np.exp(np.log(1 / 0.07)) * cosine).numpy(), rtol=1e-5)
