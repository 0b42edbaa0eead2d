"""HTSAT (MS-CLAP 2023's audio encoder): patching shapes, window bookkeeping, an oracle, batching.

The oracle is transformers' `ClapAudioEncoder`, an independent port of the same HTS-AT Swin
encoder (LAION CLAP): given our weights (q/k/v split from our fused qkv), it must produce our
clip embedding from the same log-mel input.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from naturelm_core.clap.htsat import HTSAT, HTSATConfig, relative_position_index, shifted_window_mask

TINY = HTSATConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), num_classes=5)


@pytest.fixture(scope="module")
def tiny_htsat() -> HTSAT:
    torch.manual_seed(0)
    model = HTSAT(TINY).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "extractor" not in name:
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
        model.bn0.running_mean.copy_(-40 + 5 * torch.randn(64, generator=generator))
        model.bn0.running_var.copy_(50 + 100 * torch.rand(64, generator=generator))
    return model


def test_published_stage_grids_widths_and_head_dims():
    config = HTSATConfig()
    assert [config.grid_size(i) for i in range(4)] == [64, 32, 16, 8]  # 256 / 4, then halved
    assert [config.stage_dim(i) for i in range(4)] == [96, 192, 384, 768]
    assert [config.stage_dim(i) // h for i, h in enumerate(config.num_heads)] == [24, 24, 24, 24]
    assert config.num_features == 768 and config.image_frames == 1024


def test_patch_embedding_and_stage_shapes(tiny_htsat):
    wave = torch.zeros(2, 308_700)
    seen = {}
    hooks = [tiny_htsat.patch_embed.register_forward_hook(lambda m, i, o: seen.__setitem__("patches", o.shape))]
    for n, stage in enumerate(tiny_htsat.layers):
        hooks.append(stage.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.shape)))
    try:
        with torch.no_grad():
            image = tiny_htsat.image(tiny_htsat.logmel(wave))
            out = tiny_htsat.tokens(image)
    finally:
        for hook in hooks:
            hook.remove()
    assert image.shape == (2, 1, 256, 256)
    assert seen["patches"] == (2, 64 * 64, 8)  # 4x4 patches of a 256x256 image
    # Each stage but the last merges 2x2 tokens and doubles the width.
    assert [seen[n] for n in range(4)] == [(2, 32 * 32, 16), (2, 16 * 16, 32), (2, 8 * 8, 64), (2, 8 * 8, 64)]
    assert out.shape == (2, 64, 64)


def test_published_attention_masks_exist_only_for_shifted_blocks_of_stages_one_to_three():
    with torch.device("meta"):
        model = HTSAT(HTSATConfig())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.endswith("attn_mask")}
    assert shapes == {
        "layers.0.blocks.1.attn_mask": (64, 64, 64),
        "layers.1.blocks.1.attn_mask": (16, 64, 64),
        "layers.2.blocks.1.attn_mask": (4, 64, 64),
        "layers.2.blocks.3.attn_mask": (4, 64, 64),
        "layers.2.blocks.5.attn_mask": (4, 64, 64),
    }


def test_relative_position_index_by_hand():
    # Window 2: positions (0,0) (0,1) (1,0) (1,1); index = (dy + 1) * 3 + (dx + 1).
    assert relative_position_index(2).tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    index = relative_position_index(8)
    assert index.shape == (64, 64) and index.dtype == torch.int64
    assert torch.all(index.diagonal() == 7 * 15 + 7)  # (dy, dx) = (0, 0) is the table's centre row
    assert index.max() == 224 and index.min() == 0  # (2 * 8 - 1)^2 = 225 rows


def test_shifted_window_mask_by_hand():
    mask = shifted_window_mask(grid=16, window=8, shift=4)  # 2 x 2 windows
    assert mask.shape == (4, 64, 64)
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    blocked = (mask == -100.0).sum(dim=(1, 2)).tolist()
    # top-left: one region; top-right and bottom-left: two halves of 32; bottom-right: 4 quarters.
    assert blocked == [0, 64 * 64 - 2 * 32**2, 64 * 64 - 2 * 32**2, 64 * 64 - 4 * 16**2]


def _oracle_state_dict(model: HTSAT) -> dict[str, torch.Tensor]:
    """Our weights under transformers' ClapAudioEncoder names (q, k, v split from qkv)."""
    renames = {
        "norm1": "layernorm_before", "norm2": "layernorm_after",
        "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
        "attn.proj": "attention.output.dense", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense",
    }  # fmt: skip
    out = {}
    for key, value in model.state_dict().items():
        if re.search(r"extractor|tscam|^head|attn_mask|relative_position_index|num_batches", key):
            continue
        key = key.replace("bn0.", "batch_norm.")
        block = re.match(r"(layers\.\d+\.blocks\.\d+\.)(.*)\.(weight|bias)$|(layers\.\d+\.blocks\.\d+\.)(.*)$", key)
        if block and block.group(1):
            prefix, name, kind = block.group(1), block.group(2), block.group(3)
            if name == "attn.qkv":
                for part, tensor in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{prefix}attention.self.{part}.{kind}"] = tensor
                continue
            key = f"{prefix}{renames[name]}.{kind}"
        elif block:
            key = block.group(4) + renames[block.group(5)]
        out[key] = value
    return out


def test_embedding_equals_transformers_clap_audio_encoder(tiny_htsat):
    from transformers import ClapAudioConfig
    from transformers.models.clap.modeling_clap import ClapAudioEncoder

    config = ClapAudioConfig(
        spec_size=256, num_mel_bins=64, window_size=8, patch_size=4, patch_stride=(4, 4), patch_embeds_hidden_size=8,
        depths=[2, 2, 2, 2], num_attention_heads=[1, 2, 2, 4], hidden_size=64, enable_fusion=False, mlp_ratio=4.0,
    )  # fmt: skip
    oracle = ClapAudioEncoder(config).eval()
    result = oracle.load_state_dict(_oracle_state_dict(tiny_htsat), strict=False)
    assert not result.unexpected_keys
    assert all("relative_position_index" in k for k in result.missing_keys)  # recomputed buffers
    wave = 0.1 * torch.randn(2, 308_700, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logmel = tiny_htsat.logmel(wave)  # (2, 1, 965, 64)
        ours = tiny_htsat(wave)
        theirs = oracle(input_features=logmel).pooler_output
    assert ours.shape == (2, 64)
    assert ours.abs().max() > 0.1  # a real signal, not a vanishing one
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)


def test_batched_equals_one_at_a_time(tiny_htsat):
    wave = 0.1 * torch.randn(3, 308_700, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        batched = tiny_htsat(wave)
        single = torch.cat([tiny_htsat(wave[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched.numpy(), single.numpy(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batched[0], batched[1])  # different audio, different embedding


def test_config_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="not a multiple of"):
        HTSATConfig(embed_dim=10, num_heads=(3, 8, 16, 32))
    with pytest.raises(ValueError, match="differ in length"):
        HTSATConfig(depths=(2, 2), num_heads=(4, 8, 16))
    with pytest.raises(ValueError, match="unknown HTSAT config key"):
        HTSATConfig.from_dict({"embed_dims": 96})
