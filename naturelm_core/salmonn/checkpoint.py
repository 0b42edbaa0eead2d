"""Loading a SALMONN release strictly; the one place that knows its key names.

A SALMONN model is assembled from four downloads (facts: `reference/salmonn.md` §1.1, §4):

- the release checkpoint, `salmonn_v1.pth` (13B, Vicuna-13B v1.1) or `salmonn_7b_v0.pth` (7B,
  Vicuna-7B v1.5): a `torch.save` pickle whose `"model"` entry holds only what was trained, beside
  `optimizer` / `config` / `scaler` / `epoch` entries that are ignored. Its keys:
  `ln_speech.*`, `ln_audio.*`, `speech_query_tokens`, `speech_llama_proj.*`,
  `speech_Qformer.bert.embeddings.{LayerNorm.*,position_ids}` and 26 tensors per Q-Former layer,
  `llama_model.base_model.model.model.layers.{i}.self_attn.{q,v}_proj.lora_{A,B}.default.weight`,
  plus two kinds of keys that survived the trainer's filter without being trained: every LLaMA
  layer's `rotary_emb.inv_freq` buffer and BEATs' relative-position table under layers 1..N-1
  (aliases of layer 0's shared table). 273 keys for 13B, 233 for 7B (`release_key_names`).
- the Whisper-large-v2 folder (Hugging Face format; encoder weights + preprocessor_config.json);
- the BEATs file `BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt` (`{'cfg', 'model', 'label_dict'}`);
- the Vicuna folder (Hugging Face format, sentencepiece tokenizer).

The reference loads the release with `strict=False`, hiding every mismatch; here every trained
key must be present with the model's shape, nothing unknown may be present (the shared key report
names each problem), the buffers and aliases are checked against their recomputed / BEATs-file
values, and every tensor is read as float32. Nothing is fetched from a hub.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from naturelm_core import checkpoint_keys as keys
from naturelm_core.audio_llm.beats import BEATs, BEATsConfig
from naturelm_core.audio_llm.loading import (
    CheckpointError, file_digest, folder_digest, parse_device, resolve_attn_implementation, resolve_file,
    resolve_folder,
)
from naturelm_core.audio_llm.qformer import QFormerConfig
from naturelm_core.salmonn import prompts as P
from naturelm_core.salmonn.model import SALMONN, SALMONNConfig
from naturelm_core.salmonn.whisper import load_feature_extractor, load_whisper_encoder

logger = logging.getLogger(__name__)

#: Top-level names of what SALMONN trained: their keys are our state-dict keys one-to-one.
TRAINED_PREFIXES: tuple[str, ...] = ("ln_speech.", "ln_audio.", "speech_Qformer.", "speech_query_tokens",
                                     "speech_llama_proj.")
_LORA_KEY = re.compile(r"^llama_model\.base_model\.model\.model\.layers\.\d+\.self_attn\.[qv]_proj\.lora_[AB]\.default\.weight$")
_INV_FREQ_KEY = re.compile(r"^llama_model\.base_model\.model\.model\.layers\.(\d+)\.self_attn\.rotary_emb\.inv_freq$")
_BEATS_ALIAS_KEY = re.compile(r"^beats\.encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$")
POSITION_IDS_KEY = "speech_Qformer.bert.embeddings.position_ids"
#: Entries of the pickle beside "model" (training state), never read.
IGNORED_ENTRIES = ("optimizer", "config", "scaler", "epoch")
#: BEATs keys in new-style torch weight_norm spelling -> the BEATs file's spelling.
_BEATS_ALIASES = (
    (re.compile(r"^(encoder\.pos_conv\.0)\.parametrizations\.weight\.original0$"), r"\1.weight_g"),
    (re.compile(r"^(encoder\.pos_conv\.0)\.parametrizations\.weight\.original1$"), r"\1.weight_v"),
)
_BEATS_LAYER_BIAS = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$")
ROPE_BASE = 10000.0


# ------------------------------------------------------------------------------ the key lists


def release_key_names(llama_layers: int, beats_layers: int, qformer_layers: int = 2) -> list[str]:
    """Every key of the release's "model" dict for these depths (273 for 13B: 40 LLaMA layers,
    12 BEATs layers, 2 Q-Former layers; 233 for 7B: 32 LLaMA layers)."""
    names = ["ln_speech.weight", "ln_speech.bias", "ln_audio.weight", "ln_audio.bias", "speech_query_tokens",
             "speech_llama_proj.weight", "speech_llama_proj.bias",
             "speech_Qformer.bert.embeddings.LayerNorm.weight", "speech_Qformer.bert.embeddings.LayerNorm.bias",
             POSITION_IDS_KEY]
    for i in range(qformer_layers):
        base = f"speech_Qformer.bert.encoder.layer.{i}."
        for block in ("attention", "crossattention"):
            for part in ("self.query", "self.key", "self.value", "output.dense", "output.LayerNorm"):
                names += [f"{base}{block}.{part}.weight", f"{base}{block}.{part}.bias"]
        for part in ("intermediate_query.dense", "output_query.dense", "output_query.LayerNorm"):
            names += [f"{base}{part}.weight", f"{base}{part}.bias"]
    for i in range(llama_layers):
        base = f"llama_model.base_model.model.model.layers.{i}.self_attn."
        names += [f"{base}{p}_proj.lora_{ab}.default.weight" for p in ("q", "v") for ab in ("A", "B")]
        names.append(f"{base}rotary_emb.inv_freq")
    names += [f"beats.encoder.layers.{i}.self_attn.relative_attention_bias.weight" for i in range(1, beats_layers)]
    return names


def release_targets(model: SALMONN) -> dict[str, torch.Tensor]:
    """Release key -> the model tensor it fills (the trained tensors and the Q-Former's position ids)."""
    targets = {name: t for name, t in model.state_dict(keep_vars=True).items()
               if name.startswith(TRAINED_PREFIXES) or _LORA_KEY.match(name)}
    targets[POSITION_IDS_KEY] = model.speech_Qformer.bert.embeddings.position_ids
    return targets


def check_only_targets(model: SALMONN) -> dict[str, torch.Tensor]:
    """Keys the release holds that are not trained: their expected values, compared, never copied."""
    cfg = model.llama_model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    out = {f"llama_model.base_model.model.model.layers.{i}.self_attn.rotary_emb.inv_freq": inv_freq
           for i in range(cfg.num_hidden_layers)}
    table = model.beats.encoder.layers[0].self_attn.relative_attention_bias.weight.detach().cpu()
    for i in range(1, model.config.beats_cfg.encoder_layers):
        out[f"beats.encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = table
    return out


# ------------------------------------------------------------------------------ the release file


def read_release(path: Path) -> dict[str, torch.Tensor]:
    """The "model" dict of a release pickle, float tensors as float32; CheckpointError naming the file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle and zip errors come in many types
        raise CheckpointError(f"{path}: cannot read the SALMONN checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        found = sorted(ckpt) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a SALMONN checkpoint (expected a dict with a 'model' entry, got {found})")
    ignored = sorted(set(ckpt) - {"model"})
    if ignored:
        logger.info("%s: ignoring entries %s (training state)", path, ignored)
    return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in ckpt["model"].items()}


def load_release_weights(model: SALMONN, path: Path, state: Mapping[str, Any] | None = None) -> keys.KeyReport:
    """Check every key of the release against the model and copy the trained tensors in."""
    state = read_release(path) if state is None else state
    targets = release_targets(model)
    checks = check_only_targets(model)
    report = keys.compare(keys.signatures(state), {**targets, **checks}, "the SALMONN release layout")
    wrong = []
    for key, name in report.mapping.items():
        if name in checks and not torch.allclose(state[key].float(), checks[name].to(state[key].device), rtol=1e-5, atol=1e-6):
            source = "the BEATs file's shared table" if _BEATS_ALIAS_KEY.match(name) else "the recomputed RoPE frequencies"
            wrong.append(f"{key}: values differ from {source}")
    # inv_freq and the BEATs aliases may be absent (they are recomputable / duplicates).
    report.missing = [k for k in report.missing if k not in checks]
    report.mis_shaped += wrong
    if not report.ok:
        raise CheckpointError(report.message(str(path)))
    with torch.no_grad():
        for key, name in report.mapping.items():
            if name in targets:
                targets[name].copy_(state[key].to(targets[name].dtype))
    logger.info("loaded %d trained tensors from %s", sum(n in targets for n in report.mapping.values()), path)
    return report


def release_state_dict(model: SALMONN) -> dict[str, torch.Tensor]:
    """The release's "model" dict for this model: trained tensors, position ids, inv_freq, aliases."""
    out = {name: t.detach().to("cpu").contiguous().clone() for name, t in release_targets(model).items()}
    out.update({name: t.clone() for name, t in check_only_targets(model).items()})
    return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}


# ------------------------------------------------------------------------------ components


def read_beats_file(path: Path) -> tuple[BEATsConfig, dict[str, torch.Tensor]]:
    """(config, state) of the original BEATs release file; CheckpointError naming the file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the BEATs file: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, Mapping) or "cfg" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a BEATs release file (expected 'cfg' and 'model' entries)")
    try:
        config = BEATsConfig.from_dict(ckpt["cfg"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad BEATs cfg: {exc}") from None
    return config, dict(ckpt["model"])


def load_beats_weights(beats: BEATs, path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """Strict copy of the BEATs file's tensors (its per-layer copies of the shared relative table
    must equal layer 0's)."""
    targets = beats.state_dict(keep_vars=True)

    def canonical(key: str) -> str:
        for pattern, replacement in _BEATS_ALIASES:
            if pattern.match(key):
                return pattern.sub(replacement, key)
        return key

    def shared_copy(name: str) -> bool:
        match = _BEATS_LAYER_BIAS.match(name)
        return bool(match and match.group(1) != "0" and name not in targets)

    report = keys.compare(keys.signatures(state), targets, "the BEATs layout", canonical, shared_copy)
    table = state.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
    for key in report.skipped:
        if table is None or not torch.equal(state[key], table):
            report.mis_shaped.append(f"{key}: differs from layer 0's shared relative-position table")
    if not report.ok:
        raise CheckpointError(report.message(str(path)))
    with torch.no_grad():
        for key, name in report.mapping.items():
            targets[name].copy_(state[key].to(targets[name].dtype))


def llm_dtype_for(device: torch.device) -> torch.dtype:
    """The reference loads Vicuna in float16 (on GPU); CPU runs float32 (a float32 oracle)."""
    return torch.float16 if device.type == "cuda" else torch.float32


def load_vicuna(vicuna_dir: Path, device: torch.device, attn_implementation: str = "auto"):
    """(LlamaForCausalLM with [PAD] added, tokenizer, stop ids) from a local Vicuna folder."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    attn = resolve_attn_implementation(attn_implementation, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(vicuna_dir), local_files_only=True)
        llama, info = LlamaForCausalLM.from_pretrained(str(vicuna_dir), dtype=llm_dtype_for(device),
                                                       local_files_only=True, attn_implementation=attn,
                                                       output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Vicuna folder {vicuna_dir}: cannot load: {exc}") from None
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise CheckpointError(f"Vicuna folder {vicuna_dir}: weights do not match its config: {problems}")
    return (*add_pad_token(llama, tokenizer), stop_ids(vicuna_dir, tokenizer))


def stop_ids(vicuna_dir: Path, tokenizer) -> tuple[int, ...]:
    """(id of `</s>`,): the reference stops on id 2. An early vicuna-13b-v1.1 config says eos 1;
    the folder's generation_config.json must not contradict `</s>` (trap 9)."""
    eos = tokenizer.convert_tokens_to_ids(P.EOS_TOKEN)
    if eos is None or eos == tokenizer.unk_token_id:
        raise CheckpointError(f"Vicuna folder {vicuna_dir}: the tokenizer has no {P.EOS_TOKEN!r}")
    path = vicuna_dir / "generation_config.json"
    if path.is_file():
        try:
            declared = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot read: {exc}") from None
        declared_ids = declared if isinstance(declared, list) else [declared]
        if declared is not None and eos not in declared_ids:
            raise CheckpointError(f"{path}: eos_token_id {declared} is not {P.EOS_TOKEN} ({eos}); use a Vicuna "
                                  "revision whose generation_config says eos 2")
    return (int(eos),)


def add_pad_token(llama, tokenizer):
    """Add the reference's [PAD] (id = old vocabulary size) with zero rows in the embeddings and head.

    The reference's rows are random per load and not in the release: the input row is never
    used (prompts are not padded here) and the output logit is always masked (trap 10).
    """
    from transformers import GenerationConfig

    base_vocab = llama.get_input_embeddings().weight.shape[0]
    if P.PAD_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"pad_token": P.PAD_TOKEN})
    llama.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        llama.get_input_embeddings().weight[base_vocab:] = 0
        llama.get_output_embeddings().weight[base_vocab:] = 0
    llama.generation_config = GenerationConfig(bos_token_id=tokenizer.convert_tokens_to_ids(P.BOS_TOKEN),
                                               pad_token_id=tokenizer.convert_tokens_to_ids(P.PAD_TOKEN))
    return llama, tokenizer


# ------------------------------------------------------------------------------ the whole model


@dataclass(frozen=True)
class LoadedSALMONN:
    model: SALMONN
    release_file: Path
    whisper_dir: Path
    beats_file: Path
    vicuna_dir: Path


def load_salmonn(release: str, whisper: str, beats: str, vicuna: str, device: str = "cpu",
                 lora_alpha: float = 32.0, cache_dir: Path | None = None,
                 attn_implementation: str = "auto") -> LoadedSALMONN:
    """Assemble SALMONN from its four downloads (local paths or fsspec URIs), strictly.

    CPU: float32 everywhere. CUDA: float16 Vicuna (float32 LoRA), float32 encoders run under
    float16 autocast, as the reference. `lora_alpha` scales LoRA by alpha / 8 (32 as trained).
    """
    parsed = parse_device(device)
    release_file = resolve_file(release, cache_dir, "SALMONN checkpoint")
    beats_file = resolve_file(beats, cache_dir, "BEATs file")
    whisper_dir = resolve_folder(whisper, ["config.json", "preprocessor_config.json"], cache_dir, "Whisper folder")
    vicuna_dir = resolve_folder(vicuna, ["config.json"], cache_dir, "Vicuna folder")
    state = read_release(release_file)  # a bad checkpoint fails before the big loads
    beats_cfg, beats_state = read_beats_file(beats_file)
    extractor = load_feature_extractor(whisper_dir)
    encoder = load_whisper_encoder(whisper_dir)
    llama, tokenizer, stops = load_vicuna(vicuna_dir, parsed, attn_implementation)
    width = encoder.config.d_model
    try:
        config = SALMONNConfig(beats_cfg=beats_cfg, whisper_width=width,
                               qformer_cfg=_qformer_config(state, width + beats_cfg.encoder_embed_dim),
                               lora_alpha=float(lora_alpha))
        model = SALMONN(config, encoder, extractor.mel_filters, llama, tokenizer, stops)
    except ValueError as exc:
        raise CheckpointError(f"SALMONN from {release_file}: {exc}") from None
    load_beats_weights(model.beats, beats_file, beats_state)
    load_release_weights(model, release_file, state)
    return LoadedSALMONN(model.to(parsed).eval(), release_file, whisper_dir, beats_file, vicuna_dir)


def _qformer_config(state: Mapping[str, Any], encoder_width: int) -> QFormerConfig:
    """bert-base with 2 layers (the release), or the depth and width the checkpoint shows (tiny ones).

    The Q-Former's shape is not written anywhere in the release: the reference takes bert-base's
    config; reading hidden size, layers and FFN width from the tensors lets tiny checkpoints
    shrink it. Heads stay 12 unless the width needs fewer (a tiny checkpoint writes `config`).
    """
    try:
        hidden = int(state["speech_query_tokens"].shape[-1])
        layers = 1 + max(int(m.group(1)) for k in state
                         if (m := re.match(r"^speech_Qformer\.bert\.encoder\.layer\.(\d+)\.", k)))
        ffn = int(state["speech_Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"].shape[0])
        positions = int(state[POSITION_IDS_KEY].shape[-1]) if POSITION_IDS_KEY in state else 512
    except (KeyError, ValueError, AttributeError):
        return QFormerConfig(encoder_width=encoder_width)  # the key report names what is missing
    heads = 12 if hidden % 12 == 0 and hidden >= 12 * 8 else max(h for h in (4, 2, 1) if hidden % h == 0)
    return QFormerConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=ffn, encoder_width=encoder_width, max_position_embeddings=positions)


def model_id(release_file: Path) -> str:
    return f"salmonn@sha256:{file_digest(release_file)[:12]}"


__all__ = [
    "CheckpointError", "LoadedSALMONN", "add_pad_token", "check_only_targets", "folder_digest", "llm_dtype_for",
    "load_beats_weights", "load_release_weights", "load_salmonn", "load_vicuna", "model_id", "read_beats_file",
    "read_release", "release_key_names", "release_state_dict", "release_targets", "stop_ids",
]  # fmt: skip
