"""Strict loading of NatureLM-audio releases: layout of the tiny build, errors naming keys, URIs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import fsspec
import pytest
import torch
from safetensors.torch import load_file, save_file

from naturelm_core.backend import BackendError
from naturelm_core.audio_llm.beats import BEATsConfig
from naturelm_core.naturelm.checkpoint import (
    EMBED_KEY,
    EMBED_MODULE_KEY,
    CheckpointError,
    load_naturelm,
    weights_digest,
)
from naturelm_core.naturelm.model import NatureLMConfig
from naturelm_core.audio_llm.qformer import QFormerConfig
from naturelm_core.naturelm.tiny import TinyDims, build_tiny_checkpoint

LORA_KEY = re.compile(
    r"^llama_model\.base_model\.model\.model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_([AB])\.default\.weight$"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def release_copy(tiny, tmp_path) -> Path:
    """A private copy of the release folder that a test may corrupt."""
    return Path(shutil.copytree(tiny[0], tmp_path / "naturelm"))


def _rewrite(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


# ------------------------------------------------------------------ the tiny build's layout


def test_tiny_release_has_the_published_key_layout(tiny):
    naturelm_dir, _ = tiny
    tensors = load_file(str(naturelm_dir / "model.safetensors"))
    dims = TinyDims()
    groups: dict[str, list[str]] = {}
    for key in tensors:
        groups.setdefault(key.split(".")[0], []).append(key)
    # Published counts scale with layers: BEATs 10 + 19 per layer + rel-bias + predictor (2);
    # Q-Former 2 + 26 per layer + position_ids; LoRA 8 per Llama layer (report §11: 241/55/256).
    assert len(groups["beats"]) == 10 + 19 * dims.beats_layers + 1 + 2
    assert len(groups["audio_Qformer"]) == 2 + 26 * 2 + 1
    assert sorted(groups["ln_audio"]) == ["ln_audio.bias", "ln_audio.weight"]
    assert groups["audio_query_tokens"] == ["audio_query_tokens"]
    assert sorted(groups["audio_llama_proj"]) == ["audio_llama_proj.bias", "audio_llama_proj.weight"]
    assert groups["llama_embed_tokens"] == [EMBED_KEY]
    lora = groups["llama_model"]
    assert len(lora) == 8 * dims.llama_layers and all(LORA_KEY.match(k) for k in lora)
    assert not any("base_layer" in k or "lm_head" in k for k in tensors)
    # Shared relative-position table stored once, under layer 0; old-style weight norm names.
    assert [k for k in tensors if "relative_attention_bias" in k] == [
        "beats.encoder.layers.0.self_attn.relative_attention_bias.weight"
    ]
    assert "beats.encoder.pos_conv.0.weight_g" in tensors and "beats.encoder.pos_conv.0.weight_v" in tensors
    assert "beats.predictor.weight" in tensors


def test_tiny_release_shapes_and_dtypes_follow_the_published_rules(tiny):
    naturelm_dir, llama_dir = tiny
    tensors = load_file(str(naturelm_dir / "model.safetensors"))
    dims = TinyDims()
    llama_vocab = json.loads((llama_dir / "config.json").read_text())["vocab_size"]
    kv_width = dims.llama_hidden // dims.llama_heads * dims.llama_kv_heads
    for key, tensor in tensors.items():
        m = LORA_KEY.match(key)
        if m:
            assert tensor.dtype == torch.bfloat16, key
            proj, ab = m.group(2), m.group(3)
            out_dim = dims.llama_hidden if proj in "qo" else kv_width
            expected = (dims.lora_rank, dims.llama_hidden) if ab == "A" else (out_dim, dims.lora_rank)
            assert tuple(tensor.shape) == expected, key
        elif key == EMBED_KEY:
            assert tensor.dtype == torch.bfloat16
            assert tuple(tensor.shape) == (llama_vocab + 1, dims.llama_hidden)  # + [PAD]
        elif key.endswith("position_ids"):
            assert tensor.dtype == torch.int64 and tensor.shape == (1, 512)
        else:
            assert tensor.dtype == torch.float32, key
    assert tensors["audio_llama_proj.weight"].shape == (dims.llama_hidden, dims.qformer_width)
    assert tensors["audio_query_tokens"].shape == (1, 1, dims.qformer_width)
    # peft's zero init of B would make LoRA a no-op: the tiny build must exercise it.
    assert all(tensors[k].abs().sum() > 0 for k in tensors if ".lora_B." in k)


def test_tiny_config_json_uses_the_published_field_names(tiny):
    values = json.loads((tiny[0] / "config.json").read_text())
    for key in ("llama_path", "beats_cfg", "lora_rank", "lora_alpha", "lora_dropout", "num_audio_query_token",
                "second_per_window", "second_stride", "window_level_Qformer", "use_audio_Qformer", "prompt_template"):
        assert key in values, key
    assert values["beats_cfg"]["encoder_layers"] == TinyDims().beats_layers


def test_config_defaults_reproduce_the_published_config():
    # The published inference.yml / config.json values (report §1.1, §1.2), written out here.
    published = {
        "llama_path": "meta-llama/Meta-Llama-3.1-8B-Instruct", "beats_path": None, "freeze_beats": True,
        "use_audio_Qformer": True, "max_pooling": False, "downsample_factor": 8, "freeze_audio_QFormer": False,
        "window_level_Qformer": True, "num_audio_query_token": 1, "second_per_window": 0.333333,
        "second_stride": 0.333333, "audio_llama_proj_model": None, "freeze_audio_llama_proj": False,
        "lora": True, "lora_rank": 32, "lora_alpha": 32, "lora_dropout": 0.1, "flash_attn": "eager",
        "prompt_template": "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_txt_len": 160, "end_sym": "<|end_of_text|>",
        "beats_cfg": {
            "input_patch_size": 16, "embed_dim": 512, "conv_bias": False, "encoder_layers": 12,
            "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
            "activation_fn": "gelu", "layer_wise_gradient_decay_ratio": 0.6, "layer_norm_first": False,
            "deep_norm": True, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
            "encoder_layerdrop": 0.05, "dropout_input": 0.0, "conv_pos": 128, "conv_pos_groups": 16,
            "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800,
            "gru_rel_pos": True, "finetuned_model": True, "predictor_dropout": 0.0, "predictor_class": 527,
        },
    }  # fmt: skip
    config = NatureLMConfig.from_dict(published)
    assert config == NatureLMConfig()
    assert config.beats_cfg == BEATsConfig() and config.qformer_cfg == QFormerConfig()
    assert config.lora_scaling == 1.0


def test_config_with_an_unreleased_branch_is_refused(tiny, release_copy):
    path = release_copy / "config.json"
    values = json.loads(path.read_text())
    values["window_level_Qformer"] = False
    path.write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="window_level_Qformer"):
        load_naturelm(str(release_copy), str(tiny[1]))


# ------------------------------------------------------------------ strict loading


def test_strict_load_copies_every_release_tensor(tiny):
    naturelm_dir, llama_dir = tiny
    loaded = load_naturelm(str(naturelm_dir), str(llama_dir))
    model = loaded.model
    tensors = load_file(str(naturelm_dir / "model.safetensors"))
    state = model.state_dict()
    for key, tensor in tensors.items():
        if key == EMBED_KEY:
            ours = model.llama_model.get_input_embeddings().weight
        elif key.endswith("position_ids"):
            continue
        else:
            ours = state[key]
        assert ours.dtype == torch.float32  # CPU: float32 everywhere
        assert torch.equal(ours, tensor.float()), key
    assert loaded.weights_file == naturelm_dir / "model.safetensors"


@pytest.mark.parametrize(
    "key",
    [
        "beats.encoder.layers.1.fc1.weight",
        "audio_Qformer.bert.encoder.layer.0.crossattention.self.key.weight",
        "llama_model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight",
        EMBED_KEY,
    ],
)
def test_renamed_key_is_reported_by_both_names(tiny, release_copy, key):
    renamed = key.replace("weight", "wieght")
    _rewrite(release_copy, lambda t: t.__setitem__(renamed, t.pop(key)))
    with pytest.raises(CheckpointError) as err:
        load_naturelm(str(release_copy), str(tiny[1]))
    message = str(err.value)
    assert "missing" in message and key in message
    assert "unexpected" in message and renamed in message


@pytest.mark.parametrize("key", ["ln_audio.weight", "audio_llama_proj.weight", EMBED_KEY])
def test_mis_shaped_key_is_reported_by_name(tiny, release_copy, key):
    _rewrite(release_copy, lambda t: t.__setitem__(key, torch.cat([t[key], t[key][:1]])))
    with pytest.raises(CheckpointError, match=re.escape(key)) as err:
        load_naturelm(str(release_copy), str(tiny[1]))
    assert "mis-shaped" in str(err.value)
    assert "missing" not in str(err.value)  # a wrong shape is not also reported missing


def test_dropped_key_is_reported_missing(tiny, release_copy):
    key = "beats.encoder.pos_conv.0.weight_g"
    _rewrite(release_copy, lambda t: t.pop(key))
    with pytest.raises(CheckpointError, match=re.escape(key)):
        load_naturelm(str(release_copy), str(tiny[1]))


def test_every_problem_is_listed_in_one_error(tiny, release_copy):
    def edit(t):
        t.pop("ln_audio.bias")
        t["extra.tensor"] = torch.zeros(3)
        t["audio_query_tokens"] = torch.zeros(1, 2, 5)

    _rewrite(release_copy, edit)
    with pytest.raises(CheckpointError) as err:
        load_naturelm(str(release_copy), str(tiny[1]))
    assert isinstance(err.value, BackendError)
    for name in ("ln_audio.bias", "extra.tensor", "audio_query_tokens"):
        assert name in str(err.value)


def test_aliases_and_optional_keys_are_accepted(tiny, release_copy):
    def edit(t):
        t[EMBED_MODULE_KEY] = t.pop(EMBED_KEY)  # the embedding under its module path
        t.pop("audio_Qformer.bert.embeddings.position_ids")  # optional buffer
        rel = "beats.encoder.layers.0.self_attn.relative_attention_bias.weight"
        t[rel.replace("layers.0", "layers.1")] = t[rel].clone()  # non-deduplicated shared table

    _rewrite(release_copy, edit)
    model = load_naturelm(str(release_copy), str(tiny[1])).model
    original = load_file(str(tiny[0] / "model.safetensors"))[EMBED_KEY]
    assert torch.equal(model.llama_model.get_input_embeddings().weight, original.float())


def test_missing_release_file_is_named(tiny, release_copy):
    (release_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_naturelm(str(release_copy), str(tiny[1]))


# ------------------------------------------------------------------ URIs and digests


def _upload(fs, local: Path, remote: str) -> None:
    for path in local.rglob("*"):
        if path.is_file():
            fs.pipe_file(f"{remote}/{path.relative_to(local)}", path.read_bytes())


def test_load_through_memory_uri(tiny, tmp_path):
    fs = fsspec.filesystem("memory")
    _upload(fs, tiny[0], "/dc-test/naturelm")
    _upload(fs, tiny[1], "/dc-test/llama")
    try:
        loaded = load_naturelm("memory://dc-test/naturelm", "memory://dc-test/llama", cache_dir=tmp_path / "cache")
        assert loaded.weights_file.is_relative_to(tmp_path / "cache")
        local = load_naturelm(str(tiny[0]), str(tiny[1])).model
        for (name, a), (_, b) in zip(loaded.model.state_dict().items(), local.state_dict().items()):
            assert torch.equal(a, b), name
    finally:
        fs.rm("/dc-test", recursive=True)


def test_load_through_file_uri(tiny):
    loaded = load_naturelm(tiny[0].as_uri(), tiny[1].as_uri())
    assert loaded.weights_file == tiny[0] / "model.safetensors"


def test_weights_digest_is_the_file_sha256(tiny):
    path = tiny[0] / "model.safetensors"
    assert weights_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ attention implementations


def test_sdpa_attention_equals_the_eager_reference(tiny):
    eager = load_naturelm(str(tiny[0]), str(tiny[1]), attn_implementation="eager").model
    sdpa = load_naturelm(str(tiny[0]), str(tiny[1]), attn_implementation="sdpa").model
    assert eager.llama_model.config._attn_implementation == "eager"
    assert sdpa.llama_model.config._attn_implementation == "sdpa"
    t = torch.arange(160000) / 16000
    wave = torch.stack([0.3 * torch.sin(2 * torch.pi * 2000 * t), 0.2 * torch.sin(2 * torch.pi * 500 * t)])
    embeds = eager.encode_audio(wave)
    queries = ["Caption the audio", "Describe every sound you can hear in this recording, please."]
    e, mask, positions, _ = eager.assemble(embeds, queries)  # left padding: row 0 has masked slots
    assert not mask.all()
    with torch.inference_mode():
        expected = eager.llama_model(inputs_embeds=e, attention_mask=mask, position_ids=positions).logits
        got = sdpa.llama_model(inputs_embeds=e, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-4, atol=1e-4)


def test_auto_attention_is_eager_on_cpu_and_bad_names_are_refused(tiny):
    model = load_naturelm(str(tiny[0]), str(tiny[1]), device="cpu").model
    assert model.llama_model.config._attn_implementation == "eager"
    with pytest.raises(CheckpointError, match="'fastest'"):
        load_naturelm(str(tiny[0]), str(tiny[1]), attn_implementation="fastest")
    with pytest.raises(CheckpointError, match="flash_attention_2"):
        load_naturelm(str(tiny[0]), str(tiny[1]), device="cpu", attn_implementation="flash_attention_2")


def test_lora_stays_in_the_llama_dtype(tiny):
    model = load_naturelm(str(tiny[0]), str(tiny[1])).model
    lora = {p.dtype for n, p in model.llama_model.named_parameters() if ".lora_" in n}
    assert lora == {model.llm_dtype}


# ------------------------------------------------------------------ the real release (opt-in)


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.environ.get("DAWNCHORUS_NATURELM_WEIGHTS") and os.environ.get("DAWNCHORUS_LLAMA_PATH")),
    reason="set DAWNCHORUS_NATURELM_WEIGHTS (release folder) and DAWNCHORUS_LLAMA_PATH (Llama folder)",
)
def test_real_release_loads_strictly():
    weights = os.environ["DAWNCHORUS_NATURELM_WEIGHTS"]
    llama = os.environ["DAWNCHORUS_LLAMA_PATH"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_naturelm(weights, llama, device=device)
    assert len(loaded.model.tokenizer) == 128257
    t = torch.arange(160000) / 16000
    embeds = loaded.model.encode_audio((0.3 * torch.sin(2 * torch.pi * 2000 * t))[None])
    assert embeds.shape == (1, 29, 4096)
