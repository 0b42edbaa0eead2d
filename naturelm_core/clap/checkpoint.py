"""Loading MS-CLAP 2023 strictly: the release `.pth` plus a local GPT-2 config + tokenizer folder.

The release (`CLAP_weights_2023.pth`, Zenodo 8378278 / hub microsoft/msclap) is a torch pickle
whose ``["model"]`` entry is a flat state dict with exactly our module's keys: 357 tensors for
the published model (`reference/ms-clap-2023.md` §6). msclap loads it with ``strict=False``;
here every missing, unexpected or mis-shaped key is reported by name in one `ClapCheckpointError`.
The only keys skipped on purpose are GPT-2's old causal-mask buffers
(``caption_encoder.base.h.{i}.attn.bias`` / ``.masked_bias``), which older transformers saved and
current `GPT2Model` no longer has.

The text folder holds GPT-2's `config.json` and tokenizer files (vocab.json + merges.txt or
tokenizer.json) -- no weights: every GPT-2 tensor comes from the release. Nothing is fetched from
a hub (``local_files_only=True``). The model sizes are the published ones unless a JSON file of
`MSClapConfig` fields is given (tiny test checkpoints use one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Mapping

import torch

from naturelm_core import checkpoint_keys as keys
from naturelm_core.backend import BackendError
from naturelm_core.checkpoint_keys import KeyReport
from naturelm_core.clap.msclap import MSClap, MSClapConfig
from naturelm_core.digest import file_sha256 as file_digest

logger = logging.getLogger(__name__)

RELEASE_FILE = "CLAP_weights_2023.pth"
STATE_DICT_ENTRY = "model"  # msclap reads only this entry of the pickle
#: Buffers older transformers stored for GPT-2 attention (causal mask, masked bias): skipped.
LEGACY_GPT2_BUFFER = re.compile(r"^caption_encoder\.base\.h\.\d+\.attn\.(?:bias|masked_bias)$")


class ClapCheckpointError(BackendError):
    """Weights, configs or a tokenizer that do not match the model, or cannot be read."""


def compare_state_dicts(found: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> KeyReport:
    """Match a release state dict against the model's, by key, shape and float-or-integer kind."""
    return keys.compare(keys.signatures(found), expected, "the MS-CLAP 2023 layout",
                        skip=lambda name: name not in expected and bool(LEGACY_GPT2_BUFFER.match(name)))


def read_release(path: Path) -> dict[str, torch.Tensor]:
    """The release's state dict (``torch.load(..., weights_only=True)["model"]``)."""
    if not path.is_file():
        raise ClapCheckpointError(f"MS-CLAP weights {path}: not a file")
    try:
        try:  # memory-mapped: the tensors are copied into the model without a second full copy
            blob = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            blob = torch.load(str(path), map_location="cpu", weights_only=True)  # pre-zip format
    except Exception as exc:  # torch raises pickle, zip and runtime errors for damaged files
        raise ClapCheckpointError(f"{path}: cannot read as a torch checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(blob, dict) or not isinstance(blob.get(STATE_DICT_ENTRY), dict):
        keys = sorted(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise ClapCheckpointError(f"{path}: expected a dict with a {STATE_DICT_ENTRY!r} state dict, found {keys}")
    return blob[STATE_DICT_ENTRY]


def read_model_config(path: Path | None) -> MSClapConfig:
    """Model sizes from a JSON file of `MSClapConfig` fields; None = the published model."""
    if path is None:
        return MSClapConfig()
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ClapCheckpointError(f"MS-CLAP model config {path}: cannot read: {exc}") from None
    try:
        return MSClapConfig.from_dict(values, source=str(path))
    except ValueError as exc:
        raise ClapCheckpointError(str(exc)) from None


def load_text_side(text_dir: Path):
    """(GPT2Model with random weights, tokenizer) from the local text folder."""
    from transformers import AutoTokenizer, GPT2Config, GPT2Model
    from transformers.utils import logging as hf_logging

    if not (text_dir / "config.json").is_file():
        raise ClapCheckpointError(f"GPT-2 text folder {text_dir}: missing config.json")
    hf_logging.disable_progress_bar()
    try:
        gpt2_config = GPT2Config.from_pretrained(str(text_dir), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(text_dir), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ClapCheckpointError(f"GPT-2 text folder {text_dir}: cannot load: {exc}") from None
    if gpt2_config.model_type != "gpt2":
        raise ClapCheckpointError(f"GPT-2 text folder {text_dir}: config model_type is {gpt2_config.model_type!r}, not 'gpt2'")
    if len(tokenizer) > gpt2_config.vocab_size:
        raise ClapCheckpointError(
            f"GPT-2 text folder {text_dir}: tokenizer has {len(tokenizer)} tokens, config vocab_size {gpt2_config.vocab_size}"
        )
    gpt2 = GPT2Model(gpt2_config)
    return gpt2, tokenizer


def build_msclap(text_dir: Path, config: MSClapConfig = MSClapConfig()) -> MSClap:
    """The model with random weights (no release yet), in eval mode."""
    gpt2, tokenizer = load_text_side(text_dir)
    try:
        model = MSClap(config, gpt2, tokenizer)
    except ValueError as exc:
        raise ClapCheckpointError(f"GPT-2 text folder {text_dir}: {exc}") from None
    return model.eval()


def load_release_weights(model: MSClap, path: Path) -> KeyReport:
    """Copy the release's tensors into `model`; ClapCheckpointError listing every problem."""
    found = read_release(path)
    expected = model.state_dict()
    report = compare_state_dicts(found, expected)
    if not report.ok:
        raise ClapCheckpointError(report.message(str(path)))
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(found[key].to(target.dtype))
    logger.info("loaded %d MS-CLAP tensors from %s (%d legacy buffers skipped)", len(expected), path, len(report.skipped))
    return report


def load_msclap(weights: Path, text_dir: Path, config: MSClapConfig = MSClapConfig(), device: str = "cpu") -> MSClap:
    """Build from the text folder, load the release strictly, move to `device`, eval mode."""
    model = build_msclap(text_dir, config)
    load_release_weights(model, weights)
    return model.to(device).eval()


def release_state_dict(model: MSClap, legacy_gpt2_buffers: bool = True) -> dict[str, torch.Tensor]:
    """The model's tensors as the release stores them (optionally with GPT-2's old buffers)."""
    out = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    if legacy_gpt2_buffers:
        config = model.caption_encoder.base.config
        n_pos = config.n_positions
        causal = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.bool)).view(1, 1, n_pos, n_pos)
        for i in range(config.n_layer):
            out[f"caption_encoder.base.h.{i}.attn.bias"] = causal
            out[f"caption_encoder.base.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return out


def save_release(model: MSClap, path: Path, legacy_gpt2_buffers: bool = True) -> Path:
    """Write `path` as msclap's release file: ``{"model": state dict}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({STATE_DICT_ENTRY: release_state_dict(model, legacy_gpt2_buffers)}, str(path))
    return path


def folder_digest(folder: Path, exclude_suffixes: tuple[str, ...] = ()) -> str:
    """sha256 over a folder's file names and bytes (sorted), skipping `exclude_suffixes`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(exclude_suffixes)):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(file_digest(path).encode())
    return digest.hexdigest()
