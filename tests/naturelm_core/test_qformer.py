"""The window-level Q-Former: checkpoint key names, windowing arithmetic, the one-query property,
an independent re-derivation of one layer, batch independence."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from naturelm_core.audio_llm.beats import kaldi_fbank
from naturelm_core.audio_llm.qformer import (
    QFormer,
    QFormerConfig,
    audio_token_count,
    split_windows,
    window_size_tokens,
)

TINY = QFormerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, encoder_width=24)


def expected_key_shapes(layers: int, hidden: int, intermediate: int, encoder_width: int) -> dict[str, tuple]:
    """The checkpoint's `audio_Qformer.*` table (reference §4.2), prefix stripped, without the
    optional `bert.embeddings.position_ids` buffer."""
    shapes = {"bert.embeddings.LayerNorm.weight": (hidden,), "bert.embeddings.LayerNorm.bias": (hidden,)}
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for block, kv_width in (("attention", hidden), ("crossattention", encoder_width)):
            shapes[f"{p}{block}.self.query.weight"] = (hidden, hidden)
            shapes[f"{p}{block}.self.query.bias"] = (hidden,)
            for proj in ("key", "value"):
                shapes[f"{p}{block}.self.{proj}.weight"] = (hidden, kv_width)
                shapes[f"{p}{block}.self.{proj}.bias"] = (hidden,)
            shapes[f"{p}{block}.output.dense.weight"] = (hidden, hidden)
            shapes[f"{p}{block}.output.dense.bias"] = (hidden,)
            shapes[f"{p}{block}.output.LayerNorm.weight"] = (hidden,)
            shapes[f"{p}{block}.output.LayerNorm.bias"] = (hidden,)
        shapes[f"{p}intermediate_query.dense.weight"] = (intermediate, hidden)
        shapes[f"{p}intermediate_query.dense.bias"] = (intermediate,)
        shapes[f"{p}output_query.dense.weight"] = (hidden, intermediate)
        shapes[f"{p}output_query.dense.bias"] = (hidden,)
        shapes[f"{p}output_query.LayerNorm.weight"] = (hidden,)
        shapes[f"{p}output_query.LayerNorm.bias"] = (hidden,)
    return shapes


def randomised(model: QFormer, seed: int = 0) -> QFormer:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def test_published_key_names_and_sizes():
    model = QFormer()
    got = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert got == expected_key_shapes(layers=2, hidden=768, intermediate=3072, encoder_width=768)
    # 55 audio_Qformer tensors in the release = these 54 + the optional position_ids buffer.
    assert len(got) == 54
    position_ids = model.bert.embeddings.position_ids
    assert position_ids.shape == (1, 512) and position_ids.dtype == torch.int64
    assert "bert.embeddings.position_ids" not in model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 18_905_088  # reference §1.7


def test_tiny_key_names_use_encoder_width_for_cross_attention():
    got = {name: tuple(t.shape) for name, t in QFormer(TINY).state_dict().items()}
    assert got == expected_key_shapes(layers=2, hidden=32, intermediate=64, encoder_width=24)


def test_cross_attention_frequency():
    model = QFormer(dataclasses.replace(TINY, cross_attention_freq=2))
    keys = model.state_dict().keys()
    assert any(k.startswith("bert.encoder.layer.0.crossattention.") for k in keys)
    assert not any(k.startswith("bert.encoder.layer.1.crossattention.") for k in keys)


def test_window_size_tokens():
    assert window_size_tokens() == 17  # round(16.66666)
    assert window_size_tokens(1.0) == 50
    with pytest.raises(ValueError):
        window_size_tokens(0.001)


@pytest.mark.parametrize(
    "num_samples, published",
    [(160_000, 29), (80_000, 14), (48_000, 8), (16_000, None), (33_333, None)],
)
def test_audio_token_count_follows_fbank_frames(num_samples, published):
    wave = torch.sin(torch.arange(num_samples, dtype=torch.float32) * 0.05) * 0.3
    frames = kaldi_fbank(wave).shape[0]
    tokens = (frames // 16) * 8  # 16x16 patches, 8 mel bands per time patch
    windows = (tokens - 17) // 17 + 1
    assert audio_token_count(num_samples) == windows
    if published is not None:
        assert windows == published


def test_audio_token_count_rejects_too_short_audio():
    with pytest.raises(ValueError, match="fewer than one 17-token window"):
        audio_token_count(4_000)


def test_split_windows_keeps_order_and_drops_the_tail():
    tokens = torch.arange(2 * 496 * 3, dtype=torch.float32).view(2, 496, 3)  # (B, T, D)
    windows = split_windows(tokens, 17)
    assert windows.shape == (2, 29, 17, 3)
    for b in range(2):
        for i in (0, 1, 28):
            torch.testing.assert_close(windows[b, i], tokens[b, 17 * i : 17 * i + 17])
    # Tokens 493..495 (29 * 17 = 493) are in no window.
    kept = windows.reshape(2, -1, 3)
    torch.testing.assert_close(kept, tokens[:, :493])
    assert split_windows(tokens[:, :17], 17).shape == (2, 1, 17, 3)
    with pytest.raises(ValueError):
        split_windows(tokens[:, :16], 17)


def test_split_windows_matches_unfold_layout():
    tokens = torch.randn(2, 60, 5)
    size = 17
    unfolded = F.unfold(tokens.transpose(1, 2).unsqueeze(2), kernel_size=(1, size), stride=(1, size))  # (B, D*size, L)
    expected = unfolded.view(2, 5, size, -1).permute(0, 3, 2, 1)  # (B, L, size, D)
    torch.testing.assert_close(split_windows(tokens, size), expected)


def test_one_query_makes_self_attention_query_and_key_weights_irrelevant():
    model = randomised(QFormer(TINY), seed=1)
    queries, windows = torch.randn(5, 1, 32), torch.randn(5, 17, 24)
    with torch.no_grad():
        before = model(queries, windows)
        for layer in model.bert.encoder.layer:
            for linear in (layer.attention.self.query, layer.attention.self.key):
                linear.weight.normal_()
                linear.bias.normal_()
        after_qk = model(queries, windows)
        model.bert.encoder.layer[0].attention.self.value.weight.normal_()
        after_v = model(queries, windows)
    torch.testing.assert_close(after_qk, before)
    assert not torch.allclose(after_v, before, atol=1e-3)


def test_one_layer_matches_a_hand_derivation():
    config = dataclasses.replace(TINY, num_hidden_layers=1)
    model = randomised(QFormer(config), seed=2)
    queries, windows = torch.randn(3, 2, 32), torch.randn(3, 17, 24)
    eps = config.layer_norm_eps
    layer = model.bert.encoder.layer[0]

    def ln(x, module):
        return F.layer_norm(x, (32,), module.weight, module.bias, eps)

    def mha(block, x, source):
        heads = 4
        q = block.self.query(x).unflatten(-1, (heads, 8)).transpose(1, 2)
        k = block.self.key(source).unflatten(-1, (heads, 8)).transpose(1, 2)
        v = block.self.value(source).unflatten(-1, (heads, 8)).transpose(1, 2)
        context = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(-2)
        return ln(block.output.dense(context) + x, block.output.LayerNorm)

    with torch.no_grad():
        x = ln(queries, model.bert.embeddings.LayerNorm)
        x = mha(layer.attention, x, x)
        x = mha(layer.crossattention, x, windows)
        hidden = layer.intermediate_query.dense(x)
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))  # exact GELU
        expected = ln(layer.output_query.dense(hidden) + x, layer.output_query.LayerNorm)
        got = model(queries, windows)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_batched_equals_looped():
    model = randomised(QFormer(TINY), seed=3)
    queries, windows = torch.randn(6, 1, 32), torch.randn(6, 17, 24)
    with torch.no_grad():
        batched = model(queries, windows)
        looped = torch.cat([model(queries[i : i + 1], windows[i : i + 1]) for i in range(6)])
    assert batched.shape == (6, 1, 32)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)


def test_rejects_mismatched_shapes():
    model = QFormer(TINY)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model(torch.randn(2, 1, 32), torch.randn(2, 17, 32))
    with pytest.raises(ValueError, match="query_embeds"):
        model(torch.randn(2, 32), torch.randn(2, 17, 24))
