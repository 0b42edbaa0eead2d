"""BEATs on tiny configs: shapes, batch independence, checkpoint key names, weight norm,
relative-position buckets, gated attention; the published config is only built, never run."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from naturelm_core.audio_llm.beats import (
    BEATs,
    BEATsConfig,
    MultiheadAttention,
    WeightNormConv1d,
    fbank_batch,
    relative_position_bucket,
)

TINY = BEATsConfig(
    embed_dim=16,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_layers=2,
    encoder_attention_heads=4,
    conv_pos=8,
    conv_pos_groups=4,
    num_buckets=32,
    max_distance=64,
)

# The published `beats_cfg` (reference §1.2), as config.json spells it.
PUBLISHED_BEATS_CFG = {
    "input_patch_size": 16, "embed_dim": 512, "conv_bias": False, "encoder_layers": 12,
    "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "activation_fn": "gelu", "layer_wise_gradient_decay_ratio": 0.6, "layer_norm_first": False,
    "deep_norm": True, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05, "dropout_input": 0.0, "conv_pos": 128, "conv_pos_groups": 16,
    "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800,
    "gru_rel_pos": True, "finetuned_model": True, "predictor_dropout": 0.0, "predictor_class": 527,
}


def expected_key_shapes(layers: int, patch: int, embed: int, dim: int, ffn: int, heads: int,
                        conv_pos: int, groups: int, buckets: int, classes: int) -> dict[str, tuple]:
    """The checkpoint's `beats.*` table (reference §4.2), prefix stripped."""
    shapes = {
        "patch_embedding.weight": (embed, 1, patch, patch),
        "layer_norm.weight": (embed,), "layer_norm.bias": (embed,),
        "post_extract_proj.weight": (dim, embed), "post_extract_proj.bias": (dim,),
        "encoder.pos_conv.0.weight_g": (1, 1, conv_pos),
        "encoder.pos_conv.0.weight_v": (dim, dim // groups, conv_pos),
        "encoder.pos_conv.0.bias": (dim,),
        "encoder.layer_norm.weight": (dim,), "encoder.layer_norm.bias": (dim,),
        "encoder.layers.0.self_attn.relative_attention_bias.weight": (buckets, heads),
        "predictor.weight": (classes, dim), "predictor.bias": (classes,),
    }
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}self_attn.{proj}.weight"] = (dim, dim)
            shapes[f"{p}self_attn.{proj}.bias"] = (dim,)
        shapes[f"{p}self_attn.grep_linear.weight"] = (8, dim // heads)
        shapes[f"{p}self_attn.grep_linear.bias"] = (8,)
        shapes[f"{p}self_attn.grep_a"] = (1, heads, 1, 1)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            shapes[f"{p}{norm}.weight"] = (dim,)
            shapes[f"{p}{norm}.bias"] = (dim,)
        shapes[f"{p}fc1.weight"] = (ffn, dim)
        shapes[f"{p}fc1.bias"] = (ffn,)
        shapes[f"{p}fc2.weight"] = (dim, ffn)
        shapes[f"{p}fc2.bias"] = (dim,)
    return shapes


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Perturb every parameter so gates, biases and norms all matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.add_(noise * (0.3 if "grep" in name or "relative" in name else 0.05))
    return model.eval()


def _waves(batch: int, num_samples: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, num_samples, generator=generator, dtype=torch.float64) * 2 - 1) * 0.5


@pytest.mark.parametrize("num_samples", [16_000, 24_321, 48_000])
def test_output_shape(num_samples):
    model = randomised(BEATs(TINY))
    frames = 1 + (num_samples - 400) // 160
    with torch.no_grad():
        tokens = model(_waves(2, num_samples))
    assert tokens.shape == (2, 8 * (frames // 16), TINY.encoder_embed_dim)
    assert tokens.dtype == torch.float32
    assert torch.isfinite(tokens).all()


def test_batched_equals_one_at_a_time():
    model = randomised(BEATs(TINY), seed=1)
    waves = _waves(3, 20_000, seed=2)
    waves[1] = 0.0  # silence next to loud rows must not change them
    with torch.no_grad():
        batched = model(waves)
        single = torch.cat([model(wave[None]) for wave in waves])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched[0], batched[2], atol=1e-3)


def test_tokens_are_time_major_patches():
    model = randomised(BEATs(TINY), seed=3)
    captured = {}
    model.layer_norm.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0]))
    wave = _waves(1, 16_000 * 2)
    with torch.no_grad():
        model(wave)
        features = fbank_batch(wave).float()  # (1, N, 128)
        # Token t * 8 + f is the 16x16 patch at frames 16t.., mel bins 16f.. (f = 0 lowest band).
        t, f = 5, 2
        patch = features[0, 16 * t : 16 * t + 16, 16 * f : 16 * f + 16]
        expected = (model.patch_embedding.weight[:, 0] * patch).sum(dim=(1, 2))
    torch.testing.assert_close(captured["x"][0, t * 8 + f], expected, rtol=1e-4, atol=1e-4)


def test_state_dict_keys_match_published_layout_for_two_layers():
    model = BEATs(TINY)
    expected = expected_key_shapes(
        layers=2, patch=16, embed=16, dim=32, ffn=64, heads=4, conv_pos=8, groups=4, buckets=32, classes=527
    )
    got = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert got == expected
    # The relative-position table is layer 0's and shared, not a per-layer parameter.
    assert not hasattr(model.encoder.layers[1].self_attn, "relative_attention_bias")
    table = model.encoder.layers[0].self_attn.relative_attention_bias.weight
    assert sum(p is table for p in model.parameters()) == 1


def test_without_predictor_there_is_no_predictor_key():
    model = BEATs(dataclasses.replace(TINY, finetuned_model=False))
    assert not any(key.startswith("predictor.") for key in model.state_dict())


def test_published_config_builds_with_the_published_size():
    config = BEATsConfig.from_dict(PUBLISHED_BEATS_CFG)
    assert config == BEATsConfig()
    model = BEATs(config)
    state = model.state_dict()
    assert len(state) == 241  # beats.* tensors in the release (reference §11)
    expected = expected_key_shapes(
        layers=12, patch=16, embed=512, dim=768, ffn=3072, heads=12, conv_pos=128, groups=16, buckets=320, classes=527
    )
    assert {name: tuple(t.shape) for name, t in state.items()} == expected
    # Reference §1.7: 90,717,055 with one copy of the shared table and the 527-class predictor.
    assert sum(p.numel() for p in model.parameters()) == 90_717_055
    assert math.isclose(model.encoder.layers[0].deep_norm_alpha, 24**0.25)


def test_from_dict_names_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['encoder_layer'\]"):
        BEATsConfig.from_dict({**PUBLISHED_BEATS_CFG, "encoder_layer": 3})


def test_config_rejects_inconsistent_dimensions():
    with pytest.raises(ValueError, match="encoder_attention_heads"):
        dataclasses.replace(TINY, encoder_attention_heads=5)
    with pytest.raises(ValueError, match="conv_pos_groups"):
        dataclasses.replace(TINY, conv_pos_groups=3)


def test_weight_norm_matches_torch_weight_norm():
    conv = WeightNormConv1d(channels=32, kernel_size=8, groups=4)
    with torch.no_grad():
        conv.weight_g.copy_(torch.rand(1, 1, 8) + 0.5)
        conv.bias.normal_()
    reference = nn.Conv1d(32, 32, kernel_size=8, padding=4, groups=4)
    reference = nn.utils.parametrizations.weight_norm(reference, name="weight", dim=2)
    with torch.no_grad():
        reference.parametrizations.weight.original0.copy_(conv.weight_g)
        reference.parametrizations.weight.original1.copy_(conv.weight_v)
        reference.bias.copy_(conv.bias)
    torch.testing.assert_close(conv.effective_weight(), reference.weight)
    x = torch.randn(2, 32, 20)
    torch.testing.assert_close(conv(x), reference(x))


def test_weight_norm_is_per_kernel_position():
    conv = WeightNormConv1d(channels=8, kernel_size=4, groups=2)  # v: (8, 4, 4)
    with torch.no_grad():
        conv.weight_v.fill_(3.0)  # each kernel position: 32 entries of 3 -> norm 3 * sqrt(32)
        conv.weight_g.copy_(torch.tensor([1.0, 2.0, 4.0, 8.0]).view(1, 1, 4))
    weight = conv.effective_weight()
    for k, g in enumerate([1.0, 2.0, 4.0, 8.0]):
        torch.testing.assert_close(weight[:, :, k], torch.full((8, 4), g / math.sqrt(32)))


@pytest.mark.parametrize(
    "distance, bucket",
    [
        (0, 0),  # same position: lower half, exact bucket 0
        (5, 165),  # key 5 after the query: upper half (160 + 5)
        (-5, 5),
        (-79, 79),  # last exact bucket (max_exact = 320 / 4 = 80)
        (-80, 80),  # first log bucket: 80 + floor(log(1) ...) = 80
        (-160, 104),  # 80 + floor(80 * log(2) / log(10)) = 80 + 24
        (-400, 135),  # 80 + floor(80 * log(5) / log(10)) = 80 + 55
        (-800, 159),  # saturates at the half's last bucket
        (10_000, 319),
    ],
)
def test_relative_position_bucket_published(distance, bucket):
    assert relative_position_bucket(torch.tensor([distance]), 320, 800).item() == bucket


def test_relative_position_bucket_tiny_and_directions():
    # 32 buckets, max distance 64: half 16, exact below 8; 20 -> 8 + floor(8 * log(2.5) / log(8)) = 11.
    got = relative_position_bucket(torch.tensor([0, 3, -3, 20, -20, 1000, -1000]), 32, 64)
    assert got.tolist() == [0, 19, 3, 27, 11, 31, 15]
    distances = torch.arange(-2000, 2001)
    buckets = relative_position_bucket(distances, 320, 800)
    assert torch.all(buckets[distances > 0] >= 160) and torch.all(buckets[distances <= 0] < 160)
    # Further away never maps to a nearer bucket within a direction.
    assert torch.all(torch.diff(buckets[distances > 0]) >= 0)
    assert torch.all(torch.diff(buckets[distances <= 0]) <= 0)


def test_gated_attention_equals_standard_attention_plus_gated_bias():
    config = TINY
    attention = randomised(MultiheadAttention(config, owns_relative_bias=False), seed=4)
    heads, head_dim, length = config.encoder_attention_heads, config.head_dim, 7
    x = torch.randn(2, length, config.encoder_embed_dim)
    bias = torch.randn(heads, length, length)
    with torch.no_grad():
        got = attention(x, bias)
        # Plain scaled dot-product attention; the gate uses the raw per-head query.
        q = attention.q_proj(x).view(2, length, heads, head_dim).transpose(1, 2)
        k = attention.k_proj(x).view(2, length, heads, head_dim).transpose(1, 2)
        v = attention.v_proj(x).view(2, length, heads, head_dim).transpose(1, 2)
        gate_in = attention.grep_linear(q).view(2, heads, length, 2, 4).sum(-1).sigmoid()
        gate_a, gate_b = gate_in[..., :1], gate_in[..., 1:]
        gate = gate_a * (gate_b * attention.grep_a - 1) + 2
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + gate * bias
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, length, -1)
        expected = attention.out_proj(out)
        unbiased = attention(x, None)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, unbiased, atol=1e-3)


def test_every_layer_gets_layer_0_table_over_the_flat_token_index():
    model = randomised(BEATs(TINY), seed=5)
    received = []
    for layer in model.encoder.layers:
        layer.register_forward_hook(lambda module, args, output: received.append(args[1]))
    with torch.no_grad():
        tokens = model(_waves(1, 16_000))
    table = model.encoder.layers[0].self_attn.relative_attention_bias.weight  # (32 buckets, 4 heads)
    assert len(received) == 2 and received[0] is received[1]
    bias = received[0]  # (H, T, T), bias[h, query, key]
    assert bias.shape == (4, tokens.shape[1], tokens.shape[1])
    # Tiny buckets: half 16, exact below 8. Key 5 after the query -> 16 + 5; 3 before -> 3.
    torch.testing.assert_close(bias[:, 10, 15], table[21])
    torch.testing.assert_close(bias[:, 10, 7], table[3])
    torch.testing.assert_close(bias[:, 4, 4], table[0])
