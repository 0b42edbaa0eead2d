"""Loading the published NatureLM-audio release strictly; the one place that knows its key names.

A release folder (local path or any fsspec URI) holds the reference's `config.json` (constructor
arguments) and `model.safetensors` (558 tensors for the published model, report §4.2, §11):

- `beats.*`, `ln_audio.*`, `audio_Qformer.bert.*`, `audio_query_tokens`, `audio_llama_proj.*`
  (audio side, float32) -- equal to our module's state-dict keys;
- `llama_model.base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.default.weight`
  (peft LoRA, bfloat16) -- equal to a peft-wrapped LlamaForCausalLM's keys;
- one (vocab + 1, D) embedding, bfloat16, under `llama_embed_tokens.weight` (the reference's alias
  of the Llama input embedding; rows 0..vocab-1 equal Meta's, the last row is [PAD]).

The Llama base (every `base_layer`, norms, MLPs, lm_head) is NOT in the release: it comes from a
separate Hugging Face folder. Loading builds the model from both configs, loads that Llama, then
copies release tensors in against an explicit whitelist plus the aliases below; anything missing,
unexpected or mis-shaped is reported by name in one `CheckpointError`. Nothing is fetched from a
hub (`local_files_only=True` everywhere).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from naturelm_core import checkpoint_keys as keys
from naturelm_core.audio_llm.loading import (  # noqa: F401  (re-exported: NatureLM's loader API)
    ATTN_IMPLEMENTATIONS, CheckpointError, default_cache_dir, folder_digest, parse_device,
    resolve_attn_implementation, resolve_folder,
)
from naturelm_core.checkpoint_keys import KeyReport
from naturelm_core.naturelm.model import NatureLM, NatureLMConfig

logger = logging.getLogger(__name__)

RELEASE_CONFIG_FILE = "config.json"
RELEASE_WEIGHTS_FILE = "model.safetensors"

#: Where the release stores the input embedding, and the module path it may also appear under.
EMBED_KEY = "llama_embed_tokens.weight"
EMBED_MODULE_KEY = "llama_model.base_model.model.model.embed_tokens.weight"
#: Top-level names of the audio side: their keys are our state-dict keys one-to-one.
AUDIO_PREFIXES: tuple[str, ...] = ("beats.", "ln_audio.", "audio_Qformer.", "audio_query_tokens", "audio_llama_proj.")
_LORA_KEY = re.compile(r"^llama_model\.base_model\.model\.model\.layers\.\d+\.self_attn\.[qkvo]_proj\.lora_[AB]\.default\.weight$")
#: Stored by the reference but unused (a buffer of position ids); accepted when present.
OPTIONAL_KEYS = frozenset({"audio_Qformer.bert.embeddings.position_ids"})
#: Other spellings of release keys: file key pattern -> our key (group 1 substituted).
ALIASES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"^" + re.escape(EMBED_MODULE_KEY) + r"$"), EMBED_KEY),
    # New-style torch weight_norm names for the BEATs positional convolution.
    (re.compile(r"^(beats\.encoder\.pos_conv\.0)\.parametrizations\.weight\.original0$"), r"\1.weight_g"),
    (re.compile(r"^(beats\.encoder\.pos_conv\.0)\.parametrizations\.weight\.original1$"), r"\1.weight_v"),
)
#: BEATs shares layer 0's relative-position table with every layer; copies under other layers
#: are duplicates of it (a writer without de-duplication stores them) and are skipped.
_SHARED_REL_BIAS = re.compile(r"^beats\.encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$")
_REL_BIAS_KEY = "beats.encoder.layers.0.self_attn.relative_attention_bias.weight"

#: Files up to this size are hashed whole for the model id; bigger ones by header + size.
FULL_HASH_MAX_BYTES = 4 << 30


def read_release_config(folder: Path) -> NatureLMConfig:
    path = folder / RELEASE_CONFIG_FILE
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read: {exc}") from None
    try:
        return NatureLMConfig.from_dict(values, source=str(path))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


# ------------------------------------------------------------------------------ the key map


def release_targets(model: NatureLM) -> dict[str, torch.Tensor]:
    """Release key -> the model tensor it fills (the whitelist)."""
    targets: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if name.startswith(AUDIO_PREFIXES) or _LORA_KEY.match(name):
            targets[name] = tensor
    targets[EMBED_KEY] = model.llama_model.get_input_embeddings().weight
    return targets


def canonical_key(key: str) -> str:
    for pattern, replacement in ALIASES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


def compare_keys(found: Mapping[str, keys.Signature | str], targets: Mapping[str, torch.Tensor]) -> KeyReport:
    """Match file keys (key -> signature: shape, is_float) against `release_targets`."""

    def skip(name: str) -> bool:  # optional buffers, and copies of BEATs' shared relative table
        shared = _SHARED_REL_BIAS.match(name)
        return name in OPTIONAL_KEYS or bool(shared and shared.group(1) != "0" and _REL_BIAS_KEY in targets)

    return keys.compare(found, targets, "the NatureLM-audio layout", canonical_key, skip)


def load_release_weights(model: NatureLM, path: Path) -> None:
    """Copy the release tensors of `path` into `model`; CheckpointError listing every problem."""
    targets = release_targets(model)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            found = {}
            for key in f.keys():
                view = f.get_slice(key)
                found[key] = keys.Signature(tuple(view.get_shape()), view.get_dtype().startswith(("F", "BF")))
            report = compare_keys(found, targets)
            if not report.ok:
                raise CheckpointError(report.message(str(path)))
            with torch.no_grad():
                for key, name in report.mapping.items():
                    targets[name].copy_(f.get_tensor(key).to(targets[name].dtype))
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: cannot read safetensors: {exc}") from None
    logger.info("loaded %d release tensors from %s", len(report.mapping), path)


def release_state_dict(model: NatureLM) -> dict[str, torch.Tensor]:
    """The model's release tensors with the published keys and dtypes (audio fp32, LLM side bf16)."""
    out = {}
    for name, tensor in release_targets(model).items():
        dtype = torch.float32 if name.startswith(AUDIO_PREFIXES) else torch.bfloat16
        out[name] = tensor.detach().to("cpu", dtype).contiguous().clone()
    # The reference stores the Q-Former's (unused) int64 position-id buffer; so does our export.
    for name, buffer in model.named_buffers():
        if name in OPTIONAL_KEYS:
            out[name] = buffer.detach().to("cpu").contiguous().clone()
    return out


def save_release(model: NatureLM, folder: Path, config_values: Mapping) -> Path:
    """Write `config.json` + `model.safetensors` in the published layout; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RELEASE_CONFIG_FILE).write_text(json.dumps(dict(config_values), indent=2, sort_keys=True), encoding="utf-8")
    save_file(release_state_dict(model), str(folder / RELEASE_WEIGHTS_FILE), metadata={"format": "pt"})
    return folder


# ------------------------------------------------------------------------------ building


def llm_dtype_for(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_llama(llama_dir: Path, device: torch.device, attn_implementation: str = "auto"):
    """(LlamaForCausalLM with the vocabulary resized for [PAD], tokenizer) from a local HF folder."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    attn = resolve_attn_implementation(attn_implementation, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(llama_dir), local_files_only=True)
        llama, info = LlamaForCausalLM.from_pretrained(
            str(llama_dir),
            dtype=llm_dtype_for(device),
            local_files_only=True,
            attn_implementation=attn,
            output_loading_info=True,
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Llama folder {llama_dir}: cannot load: {exc}") from None
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise CheckpointError(f"Llama folder {llama_dir}: weights do not match its config: {problems}")
    return add_pad_token(llama, tokenizer)


def add_pad_token(llama, tokenizer):
    """Add NatureLM's [PAD] to the tokenizer and a zero row for it to the Llama's embeddings and head."""
    from transformers import GenerationConfig

    base_vocab = llama.get_input_embeddings().weight.shape[0]
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    llama.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        # The [PAD] rows are not in the Llama folder: zero them so every load is identical (the
        # input row is then overwritten by the release; the output logit is always masked).
        llama.get_input_embeddings().weight[base_vocab:] = 0
        llama.get_output_embeddings().weight[base_vocab:] = 0
    # Drop the base model's sampling defaults (do_sample, temperature 0.6, top_p 0.9): NatureLM
    # decodes deterministically with its own settings.
    llama.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|begin_of_text|>"), pad_token_id=tokenizer.pad_token_id
    )
    return llama, tokenizer


def build_model(config: NatureLMConfig, llama_dir: Path, device: str = "cpu", attn_implementation: str = "auto") -> NatureLM:
    """The model with the base Llama loaded and random audio side / zero LoRA (no release yet)."""
    parsed = parse_device(device)
    llama, tokenizer = load_llama(llama_dir, parsed, attn_implementation)
    try:
        model = NatureLM(config, llama, tokenizer)
    except ValueError as exc:
        raise CheckpointError(f"Llama folder {llama_dir}: {exc}") from None
    return model.to(parsed).eval()


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model and where its files are on this machine."""

    model: NatureLM
    weights_file: Path  # the release's model.safetensors (a cached copy for remote URIs)
    llama_dir: Path  # the Llama folder (a cached copy for remote URIs)


def load_naturelm(weights: str, llama: str, device: str = "cpu", cache_dir: Path | None = None,
                  attn_implementation: str = "auto") -> LoadedModel:
    """Load a release (folder or URI) on top of a Llama folder (folder or URI), strictly.

    CPU: float32 everywhere. CUDA: bfloat16 Llama and LoRA, float32 audio side (bf16 autocast at
    run time, float64 fbank), as the reference runs it. `device="auto"`: CUDA when available.
    """
    release_dir = resolve_folder(weights, [RELEASE_CONFIG_FILE, RELEASE_WEIGHTS_FILE], cache_dir, "release folder")
    config = read_release_config(release_dir)  # bad configuration fails before the big copy
    llama_dir = resolve_folder(llama, ["config.json"], cache_dir, "Llama folder")
    model = build_model(config, llama_dir, device, attn_implementation)
    load_release_weights(model, release_dir / RELEASE_WEIGHTS_FILE)
    return LoadedModel(model, release_dir / RELEASE_WEIGHTS_FILE, llama_dir)


# ------------------------------------------------------------------------------ digests


def weights_digest(path: Path) -> str:
    """sha256 hex of the file's bytes (streamed); above FULL_HASH_MAX_BYTES, of header + size.

    The safetensors header lists every tensor's name, dtype, shape and byte offsets, so header +
    size identifies a file unless tensor values alone changed -- the price of not reading tens of
    GB. The published release (1.56 GB) is always hashed whole.
    """
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= FULL_HASH_MAX_BYTES:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        else:
            (header_len,) = struct.unpack("<Q", f.read(8))
            digest.update(f.read(header_len))
            digest.update(str(size).encode())
    return digest.hexdigest()


__all__ = [
    "CheckpointError", "KeyReport", "LoadedModel", "add_pad_token", "build_model", "compare_keys", "default_cache_dir", "folder_digest",
    "load_naturelm", "load_release_weights", "read_release_config", "release_state_dict", "release_targets",
    "llm_dtype_for", "parse_device", "resolve_attn_implementation", "resolve_folder", "save_release", "weights_digest",
    "ATTN_IMPLEMENTATIONS",
]  # fmt: skip
