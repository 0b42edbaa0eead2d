"""SALMONN's release layout and strict loading, on a tiny random checkpoint set (release layout).

Facts: reference/salmonn.md §4 (273 / 233 keys, the "model" entry beside optimiser state, inv_freq
buffers and BEATs alias keys that survive the trainer's filter) and traps 7, 9, 10, 11.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from peft.tuners.lora import LoraLayer
from tests.support.salmonn import salmonn_model, tiny_salmonn  # noqa: F401  (fixtures)

from naturelm_core.salmonn.checkpoint import (
    CheckpointError, load_salmonn, read_release, release_key_names, stop_ids,
)
from naturelm_core.salmonn.tiny import TinyDims

LORA_A0 = "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
INV_FREQ0 = "llama_model.base_model.model.model.layers.0.self_attn.rotary_emb.inv_freq"


def _scalings(model) -> set[float]:
    return {m.scaling["default"] for m in model.llama_model.modules() if isinstance(m, LoraLayer)}


def _load(paths, release=None, **kw):
    return load_salmonn(str(release or paths["release"]), str(paths["whisper"]), str(paths["beats"]),
                        str(paths["vicuna"]), **kw)


def _rewrite(paths, tmp_path, edit):
    ckpt = torch.load(paths["release"], weights_only=True)
    edit(ckpt["model"])
    out = tmp_path / "edited.pth"
    torch.save(ckpt, out)
    return out


def test_release_key_counts_are_the_published_ones():
    # 7 top-level + 3 embeddings + 2 x 26 Q-Former + 5 per LLaMA layer + 11 BEATs aliases.
    assert len(release_key_names(llama_layers=40, beats_layers=12)) == 273  # salmonn_v1.pth (13B)
    assert len(release_key_names(llama_layers=32, beats_layers=12)) == 233  # salmonn_7b_v0.pth (7B)


def test_tiny_release_has_the_release_layout(tiny_salmonn):
    ckpt = torch.load(tiny_salmonn["release"], weights_only=True)
    assert {"model", "optimizer", "config", "scaler", "epoch"} <= set(ckpt)
    dims = TinyDims()
    assert sorted(ckpt["model"]) == sorted(release_key_names(dims.llama_layers, dims.beats_layers))
    assert ckpt["model"]["speech_Qformer.bert.embeddings.position_ids"].dtype == torch.int64
    assert ckpt["model"][INV_FREQ0].dtype == torch.float32
    # LoRA on q and v only (peft's llama default), nothing on k/o.
    assert not any(".k_proj." in k or ".o_proj." in k for k in ckpt["model"])


def test_loaded_weights_equal_the_release_and_lora_scaling(tiny_salmonn, salmonn_model):
    state = read_release(tiny_salmonn["release"])
    ours = salmonn_model.state_dict()
    for key in ("ln_speech.weight", "speech_query_tokens", "speech_llama_proj.bias", LORA_A0,
                "speech_Qformer.bert.encoder.layer.1.crossattention.self.key.weight"):
        assert torch.equal(ours[key], state[key]), key
    lora_modules = [n for n, m in salmonn_model.llama_model.named_modules() if isinstance(m, LoraLayer)]
    assert lora_modules and all(n.endswith(("q_proj", "v_proj")) for n in lora_modules)
    assert _scalings(salmonn_model) == {4.0}  # alpha 32 / r 8


def test_lora_alpha_is_a_load_time_choice(tiny_salmonn):
    model = _load(tiny_salmonn, lora_alpha=24).model  # the 7B demo's value
    assert _scalings(model) == {3.0}


@pytest.mark.parametrize(
    "edit, named",
    [
        (lambda s: s.pop("ln_speech.bias"), "ln_speech.bias"),
        (lambda s: s.pop(LORA_A0), LORA_A0),
        (lambda s: s.__setitem__("speech_Qformer.bert.encoder.layer.0.output.dense.weight", torch.zeros(3)),
         "speech_Qformer.bert.encoder.layer.0.output.dense.weight"),  # an unexpected (text FFN) key
        (lambda s: s.__setitem__(LORA_A0.replace(".default", ""), s.pop(LORA_A0)),
         LORA_A0.replace(".default", "")),  # peft < 0.3 naming: the reference would skip it silently
        (lambda s: s.__setitem__("speech_llama_proj.weight", torch.zeros(5, 5)), "speech_llama_proj.weight"),
        (lambda s: s.__setitem__(INV_FREQ0, s[INV_FREQ0] * 2), INV_FREQ0),
        (lambda s: s.__setitem__("beats.encoder.layers.1.self_attn.relative_attention_bias.weight",
                                 s["beats.encoder.layers.1.self_attn.relative_attention_bias.weight"] + 1),
         "beats.encoder.layers.1.self_attn.relative_attention_bias.weight"),
    ],
    ids=["missing", "missing-lora", "unexpected", "old-lora-name", "mis-shaped", "inv-freq", "beats-alias"],
)
def test_strict_loading_names_the_key(tiny_salmonn, tmp_path, edit, named):
    edited = _rewrite(tiny_salmonn, tmp_path, edit)
    with pytest.raises(CheckpointError) as info:
        _load(tiny_salmonn, release=edited)
    message = str(info.value)
    assert str(edited) in message and "SALMONN release layout" in message
    assert any(line.strip().split(":")[0].split(" ")[0] == named for line in message.splitlines()), message


def test_not_a_checkpoint_is_one_clear_error(tiny_salmonn, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match=r"bad\.pth: not a SALMONN checkpoint.*'model'"):
        _load(tiny_salmonn, release=bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match=r"garbage\.pth: cannot read"):
        _load(tiny_salmonn, release=garbage)


def test_half_precision_release_is_read_as_float32(tiny_salmonn, tmp_path):
    def to_half(state):
        for k, v in state.items():
            if v.is_floating_point():
                state[k] = v.half()

    state = read_release(_rewrite(tiny_salmonn, tmp_path, to_half))
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_beats_file_is_loaded_strictly(tiny_salmonn, tmp_path):
    ckpt = torch.load(tiny_salmonn["beats"], weights_only=True)
    ckpt["model"].pop("encoder.layer_norm.weight")
    bad = tmp_path / "beats.pt"
    torch.save(ckpt, bad)
    paths = dict(tiny_salmonn, beats=bad)
    with pytest.raises(CheckpointError, match=r"encoder\.layer_norm\.weight"):
        _load(paths)


def test_stop_id_follows_the_tokenizer_and_a_contradicting_generation_config_is_refused(salmonn_model, tiny_salmonn,
                                                                                        tmp_path):
    assert salmonn_model.stop_ids == (2,) and salmonn_model.bos_id == 1
    folder = tmp_path / "vicuna"
    shutil.copytree(tiny_salmonn["vicuna"], folder)
    # An early vicuna-13b-v1.1 config says eos 1 (trap 9).
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 0, "eos_token_id": 1}))
    with pytest.raises(CheckpointError, match="eos_token_id 1"):
        stop_ids(folder, salmonn_model.tokenizer)


def test_pad_token_is_added_and_never_part_of_the_model(salmonn_model):
    tok = salmonn_model.tokenizer
    assert tok.convert_tokens_to_ids("[PAD]") == salmonn_model.pad_id == len(tok) - 1
    head = salmonn_model.llama_model.get_output_embeddings().weight
    assert torch.count_nonzero(head[salmonn_model.pad_id]) == 0


def test_missing_component_is_a_clear_error(tiny_salmonn, tmp_path):
    with pytest.raises(CheckpointError, match="Whisper folder .*nowhere"):
        load_salmonn(str(tiny_salmonn["release"]), str(tmp_path / "nowhere"), str(tiny_salmonn["beats"]),
                     str(tiny_salmonn["vicuna"]))
