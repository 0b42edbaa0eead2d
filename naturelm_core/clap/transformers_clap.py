"""CLAP checkpoints in transformers' `ClapModel` format (BioLingual, LAION CLAP), deterministically.

A folder saved by `ClapModel.save_pretrained` + `ClapProcessor.save_pretrained` (or the older v4
layout: config.json, pytorch_model.bin, preprocessor_config.json, vocab.json + merges.txt) is
loaded through transformers' own classes with ``local_files_only=True``; the model's and the
processor's settings are read from that folder. Facts: `reference/clap-and-embeddings.md` §1-§3.

Determinism by construction. The feature extractor crops clips longer than `max_length_s` at a
random offset (numpy's global RNG), and in ``fusion`` mode flags one clip of a batch as longer at
random when none is. Here clips longer than the model's native length are refused (the pipeline
cuts windows of that length), so no crop ever happens; and `is_longer` is computed from the clip
lengths and passed to the model, replacing the extractor's random flag. Same audio, same answer,
whatever else shares the batch.

Embeddings are `get_audio_features` / `get_text_features` pooler outputs: projected and
L2-normalised (512-d for the published checkpoints). Scores: exp(logit_scale_a) x cosine, the
`logits_per_audio` of `ClapModel.forward`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from naturelm_core.clap.checkpoint import ClapCheckpointError, file_digest, folder_digest

logger = logging.getLogger(__name__)

#: Weight files a ClapModel folder may hold, in the order transformers prefers them.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TEXT_MAX_TOKENS = 77  # LAION CLAP's training length; longer prompts are refused


def _key_text(entry: Any) -> str:
    """A loading-info entry as text: a key, or (key, file shape, model shape) for a mismatch."""
    if isinstance(entry, tuple) and len(entry) == 3:
        key, file_shape, model_shape = entry
        return f"{key}: file {tuple(file_shape)} vs model {tuple(model_shape)}"
    return str(entry)


def is_clap_folder(path: Path) -> bool:
    """True when `path` is a folder whose config.json says model_type "clap"."""
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "clap"
    except (OSError, json.JSONDecodeError):
        return False


def weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ClapCheckpointError(f"CLAP folder {folder}: no weights file (expected one of {list(WEIGHT_FILES)})")


def read_feature_settings(folder: Path) -> dict[str, Any]:
    """The feature extractor's settings from the folder (preprocessor or processor config)."""
    from transformers import ClapFeatureExtractor

    try:
        extractor = ClapFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ClapCheckpointError(f"CLAP folder {folder}: cannot read the feature extractor config: {exc}") from None
    return feature_settings(extractor)


def feature_settings(extractor: Any) -> dict[str, Any]:
    """Everything of a ClapFeatureExtractor that changes the features, JSON-ready."""
    return {
        "sampling_rate": int(extractor.sampling_rate),
        "max_samples": int(extractor.nb_max_samples),
        "feature_size": int(extractor.feature_size),
        "fft_window_size": int(extractor.fft_window_size),
        "hop_length": int(extractor.hop_length),
        "frequency_min": float(extractor.frequency_min),
        "frequency_max": float(extractor.frequency_max),
        "truncation": str(extractor.truncation),
        "padding": str(extractor.padding),
        "top_db": extractor.top_db,
    }


def processor_digest(folder: Path) -> str:
    """Digest of the folder's small files (configs, tokenizer), without the weights."""
    return folder_digest(folder, exclude_suffixes=(".safetensors", ".bin", ".partial"))


class TransformersClap:
    """A loaded ClapModel + ClapProcessor with deterministic audio and text embedding calls."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        from transformers import ClapModel, ClapProcessor
        from transformers.utils import logging as hf_logging

        if not is_clap_folder(folder):
            raise ClapCheckpointError(f"CLAP folder {folder}: no config.json with model_type 'clap'")
        self.folder = folder
        self.weights_path = weights_file(folder)
        hf_logging.disable_progress_bar()
        try:
            # Mismatched shapes are collected (and refused below, by name) instead of raising
            # transformers' own error, whose details go to the log only.
            model, info = ClapModel.from_pretrained(
                str(folder), local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True
            )
            processor = ClapProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, TypeError) as exc:
            raise ClapCheckpointError(f"CLAP folder {folder}: cannot load: {exc}") from None
        problems = [f"{kind}: {sorted(map(_key_text, keys))}" for kind, keys in info.items()
                    if kind in ("missing_keys", "unexpected_keys", "mismatched_keys") and keys]
        if problems:
            raise ClapCheckpointError(f"{self.weights_path}: does not match {folder / 'config.json'}: " + "; ".join(problems))
        self.model = model.to(device).eval()
        self.extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.fused = bool(model.config.audio_config.enable_fusion)
        if self.extractor.truncation == "fusion" and not self.fused:
            raise ClapCheckpointError(
                f"CLAP folder {folder}: the feature extractor uses 'fusion' features but the model has enable_fusion false"
            )
        self.sample_rate_hz = int(self.extractor.sampling_rate)
        self.native_samples = int(self.extractor.nb_max_samples)
        self.embedding_dim = int(model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale_a.device

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale_a.detach().exp())

    @torch.inference_mode()
    def audio_embeddings(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """Mono clips (each 1..native_samples samples) -> (B, D) normalised audio embeddings."""
        for clip in clips:
            if clip.ndim != 1 or not 0 < clip.shape[0] <= self.native_samples:
                raise ValueError(
                    f"clip of shape {clip.shape}: expected 1 to {self.native_samples} mono samples "
                    f"({self.native_samples / self.sample_rate_hz:g} s at {self.sample_rate_hz} Hz)"
                )
        features = self.extractor(
            [np.asarray(c, dtype=np.float64) for c in clips], sampling_rate=self.sample_rate_hz, return_tensors="pt"
        )
        # The extractor's is_longer may be a random draw (fusion mode); the truth is known here.
        is_longer = torch.tensor([[c.shape[0] > self.native_samples] for c in clips], dtype=torch.bool)
        out = self.model.get_audio_features(
            input_features=features["input_features"].to(self.device, torch.float32),
            is_longer=is_longer.to(self.device),
        )
        return out.pooler_output.float()

    @torch.inference_mode()
    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> (T, D) normalised text embeddings; a prompt over 77 tokens is refused."""
        enc = self.tokenizer(list(prompts), padding=True, return_tensors="pt")
        lengths = enc["attention_mask"].sum(-1).tolist()
        too_long = [p for p, n in zip(prompts, lengths) if n > TEXT_MAX_TOKENS]
        if too_long:
            raise ValueError(f"prompt(s) longer than {TEXT_MAX_TOKENS} tokens: {too_long}")
        out = self.model.get_text_features(
            input_ids=enc["input_ids"].to(self.device), attention_mask=enc["attention_mask"].to(self.device)
        )
        return out.pooler_output.float()

    def weights_digest(self) -> str:
        return file_digest(self.weights_path)
