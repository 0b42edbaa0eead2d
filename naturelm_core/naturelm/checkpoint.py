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
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import fsspec
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from naturelm_core.backend import BackendError
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


class CheckpointError(BackendError):
    """Weights or configs that do not match the model, or cannot be read."""


# ------------------------------------------------------------------------------ locations


def default_cache_dir() -> Path:
    """Local copies of remote folders: $DAWNCHORUS_CACHE_DIR or ~/.cache/dawnchorus/models."""
    root = os.environ.get("DAWNCHORUS_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "dawnchorus" / "models"


def resolve_folder(uri: str, required: Iterable[str], cache_dir: Path | None = None, what: str = "folder") -> Path:
    """A local folder holding `uri`'s files: the path itself, or a cached copy of a remote URI.

    Remote folders (s3://, memory://, ...) are copied once into `cache_dir`/<hash of uri>; files
    whose size already matches are not copied again. `required` files must exist.
    """
    uri = str(uri)
    fs, root = fsspec.core.url_to_fs(uri)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        local = Path(root)
        if not local.is_dir():
            raise CheckpointError(f"{what} {uri}: not a directory")
    else:
        if not fs.isdir(root):
            raise CheckpointError(f"{what} {uri}: not a directory")
        local = (cache_dir or default_cache_dir()) / hashlib.sha256(uri.encode()).hexdigest()[:16]
        _mirror(fs, root, local)
    missing = [name for name in required if not (local / name).is_file()]
    if missing:
        raise CheckpointError(f"{what} {uri}: missing file(s) {missing}")
    return local


def _mirror(fs: fsspec.AbstractFileSystem, root: str, local: Path) -> None:
    root = root.rstrip("/")
    for remote, info in fs.find(root, detail=True).items():
        rel = remote[len(root) :].lstrip("/")
        dest = local / rel
        size = info.get("size")
        if dest.is_file() and size is not None and dest.stat().st_size == size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        fs.get_file(remote, str(partial))
        partial.replace(dest)  # never leave a half-copied file under the real name
        logger.info("copied %s -> %s", remote, dest)


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


@dataclass
class KeyReport:
    """What a release file holds against what the model expects."""

    mapping: dict[str, str] = field(default_factory=dict)  # file key -> release key, to copy
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[str] = field(default_factory=list)  # "key: file (a, b) vs model (c, d)"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mis_shaped)

    def message(self, source: str) -> str:
        lines = [f"{source}: does not match the NatureLM-audio layout"]
        for title, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("mis-shaped", self.mis_shaped)):
            if keys:
                lines.append(f"  {len(keys)} {title} key(s):")
                lines.extend(f"    {k}" for k in keys)
        return "\n".join(lines)


def compare_keys(
    found: Mapping[str, tuple[tuple[int, ...], bool]], targets: Mapping[str, torch.Tensor]
) -> KeyReport:
    """Match file keys (key -> (shape, is_float)) against `release_targets`."""
    report = KeyReport()
    seen: set[str] = set()
    for key in sorted(found):
        shape, is_float = found[key]
        name = canonical_key(key)
        shared = _SHARED_REL_BIAS.match(name)
        if name in OPTIONAL_KEYS or (shared and shared.group(1) != "0" and _REL_BIAS_KEY in targets):
            continue
        target = targets.get(name)
        if target is None:
            report.unexpected.append(key)
        elif name in seen:
            report.unexpected.append(f"{key} (a second copy of {name})")
        elif tuple(shape) != tuple(target.shape) or is_float != target.is_floating_point():
            kind = "float" if is_float else "integer"
            report.mis_shaped.append(f"{key}: file {kind} {tuple(shape)} vs model {tuple(target.shape)}")
        else:
            report.mapping[key] = name
        seen.add(name)
    report.missing = sorted(k for k in targets if k not in seen)
    return report


def load_release_weights(model: NatureLM, path: Path) -> None:
    """Copy the release tensors of `path` into `model`; CheckpointError listing every problem."""
    targets = release_targets(model)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            found = {}
            for key in f.keys():
                view = f.get_slice(key)
                found[key] = (tuple(view.get_shape()), view.get_dtype().startswith(("F", "BF")))
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


#: Attention implementations of the Llama, by transformers' names. "eager" is the plain reference
#: (the reference loads it unless flash_attn is set); "sdpa" is torch's fused attention, the CUDA
#: default; "flash_attention_2" needs the flash-attn package.
ATTN_IMPLEMENTATIONS: tuple[str, ...] = ("auto", "eager", "sdpa", "flash_attention_2")


def llm_dtype_for(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def parse_device(device: str) -> torch.device:
    """"cpu", "cuda[:N]" or "auto" (CUDA when torch sees a GPU, e.g. in a Ray actor with num_gpus=1)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise CheckpointError(f"device {device!r} is not a torch device") from None
    if parsed.type not in ("cpu", "cuda"):
        raise CheckpointError(f"device {device!r}: only 'cpu' and 'cuda[:N]' are supported")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but CUDA is not available")
    return parsed


def resolve_attn_implementation(name: str, device: torch.device) -> str:
    """The attention implementation to load: "auto" is eager on CPU (the reference path) and SDPA on
    CUDA; flash_attention_2 only by name, and only when flash-attn imports."""
    if name not in ATTN_IMPLEMENTATIONS:
        raise CheckpointError(f"attn_implementation {name!r}: expected one of {list(ATTN_IMPLEMENTATIONS)}")
    if name == "auto":
        return "sdpa" if device.type == "cuda" else "eager"
    if name == "flash_attention_2":
        if device.type != "cuda":
            raise CheckpointError("attn_implementation 'flash_attention_2' needs a CUDA device")
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            raise CheckpointError("attn_implementation 'flash_attention_2': the flash-attn package is not installed") from None
    return name


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


def folder_digest(folder: Path) -> str:
    """sha256 over a Llama folder's small files (configs, tokenizer) and its weights' headers."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.suffix == ".safetensors":
            with path.open("rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                digest.update(f.read(header_len))
        elif path.stat().st_size < (64 << 20):
            digest.update(path.read_bytes())
    return digest.hexdigest()


__all__ = [
    "CheckpointError", "KeyReport", "LoadedModel", "add_pad_token", "build_model", "compare_keys", "default_cache_dir", "folder_digest",
    "load_naturelm", "load_release_weights", "read_release_config", "release_state_dict", "release_targets",
    "llm_dtype_for", "parse_device", "resolve_attn_implementation", "resolve_folder", "save_release", "weights_digest",
    "ATTN_IMPLEMENTATIONS",
]  # fmt: skip
