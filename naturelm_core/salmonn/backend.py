"""The `salmonn` model backend: SALMONN behind the same interface as NatureLM-audio and BirdNET.

SALMONN hears a clip of 1 to 30 s: Whisper always sees it zero-padded to 30 s (1500 rows) and BEATs
sees the clip itself, and every clip becomes 88 speech embeddings. The pipeline's windows are
10 s at 16 kHz: each window is one clip, so a 10-s window is Whisper's 30 s with 20 s of silence
after it (Whisper costs as much as for 30 s of audio) and BEATs' 496 tokens padded with zero rows
to 1500. A shorter window (the end of a file) is zero-padded to 10 s, as for NatureLM-audio, so
every row of a batch has the same length and a clip's answers never depend on its batch (the
reference's ragged batches would; trap 12). Windows of more than 10 s are refused.

Answers, scores, candidate lists for cascades and embeddings are NatureLM-audio's
(`naturelm_core.naturelm.backend`): the same engine (`audio_llm.engine`) runs SALMONN's prompts
(`salmonn.prompts`, prompt set "salmonn-default-v1": detect, classify, caption, speech).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from naturelm_core.audio_llm.engine import Engine, EngineConfig
from naturelm_core.audio_llm.loading import folder_digest, parse_device
from naturelm_core.backend import BackendError, BackendInfo
from naturelm_core.labels import SpeciesIndex
from naturelm_core.naturelm.backend import WINDOW_SAMPLES, NatureLMBackend, _llm_width
from naturelm_core.salmonn import prompts as P
from naturelm_core.salmonn.checkpoint import (
    CheckpointError, file_digest, llm_dtype_for, load_salmonn, model_id, resolve_file, resolve_folder,
)
from naturelm_core.salmonn.model import SALMONN_GENERATION

logger = logging.getLogger(__name__)

#: Version of the score definitions (shared with NatureLM-audio's engine).
SCORING_VERSION = "first-token+sequence-with-stop/v2"
AUTO_DTYPE = "auto: torch.float16 on cuda, torch.float32 on cpu"
REQUIRED = ("release", "whisper", "beats", "vicuna")


class SalmonnBackend(NatureLMBackend):
    """SALMONN from its four downloads (local paths or fsspec URIs).

    Options (keyword):
      release: the release checkpoint, salmonn_v1.pth (13B) or salmonn_7b_v0.pth (7B).
      whisper: the whisper-large-v2 folder (Hugging Face format, with preprocessor_config.json).
      beats: the BEATs file BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt.
      vicuna: the Vicuna folder (vicuna-13b-v1.1 for salmonn_v1.pth, vicuna-7b-v1.5 for the 7B).
      lora_alpha: LoRA scale numerator (32 as trained; the 7B demo uses 24); the delta is alpha / 8.
      device, batch_size, prompt_set, attn_implementation, cascade_threshold, candidates,
      labels_path, cache_dir: as for `naturelm`.
      num_beams, max_new_tokens: decoding (defaults: the reference's 4 beams, 200 tokens).
    """

    name = "salmonn"
    #: The pipeline's window (s): each becomes one SALMONN clip (Whisper pads it to 30 s).
    native_window_s = 10.0

    def __init__(self, *, release: str | None = None, whisper: str | None = None, beats: str | None = None,
                 vicuna: str | None = None, device: str = "auto", batch_size: int | str = "auto",
                 prompt_set: str = P.DEFAULT_PROMPT_SET, lora_alpha: float = 32.0,
                 cascade_threshold: float | None = None, num_beams: int = SALMONN_GENERATION.num_beams,
                 max_new_tokens: int = SALMONN_GENERATION.max_new_tokens, candidates: list[str] | None = None,
                 labels_path: str | None = None, cache_dir: str | None = None, attn_implementation: str = "auto"):
        paths = _require(release=release, whisper=whisper, beats=beats, vicuna=vicuna)
        config = _engine_config(batch_size, cascade_threshold, num_beams, max_new_tokens, candidates)
        self.prompts = _prompt_set(prompt_set)
        alpha = _lora_alpha(lora_alpha)
        try:
            self.species = SpeciesIndex.from_birdnet(labels_path)
        except (FileNotFoundError, ValueError) as exc:
            raise BackendError(f"salmonn: cannot read the species list: {exc}") from None
        loaded = load_salmonn(*paths, device=device, lora_alpha=alpha, cache_dir=Path(cache_dir) if cache_dir else None,
                              attn_implementation=attn_implementation)
        self.model = loaded.model
        try:
            self.engine = Engine(self.model, list(self.prompts), config)
        except ValueError as exc:
            raise BackendError(f"salmonn options: {exc}") from None
        self._engines: dict[tuple[str, ...], Engine] = {}
        self.embedding_dim = int(self.model.speech_llama_proj.out_features)
        self._model_id = model_id(loaded.release_file)
        dtype = AUTO_DTYPE if device == "auto" else str(self.model.llm_dtype)
        self._settings = _settings(self.prompts, prompt_set, config, alpha, dtype,
                                   _component_digests(loaded.whisper_dir, loaded.beats_file, loaded.vicuna_dir))
        logger.info("loaded %s on %s (batch_size %d)", self.model_id, self.model.device, self.engine.batch_size)

    @classmethod
    def describe(cls, **options: Any) -> BackendInfo:
        """Identity and settings from the files' digests; the model is not built."""
        release, whisper, beats, vicuna = _require(**{k: options.get(k) for k in REQUIRED})
        config = _engine_config(options.get("batch_size", "auto"), options.get("cascade_threshold"),
                                options.get("num_beams", SALMONN_GENERATION.num_beams),
                                options.get("max_new_tokens", SALMONN_GENERATION.max_new_tokens),
                                options.get("candidates"))
        prompt_set = options.get("prompt_set", P.DEFAULT_PROMPT_SET)
        prompts = _prompt_set(prompt_set)
        alpha = _lora_alpha(options.get("lora_alpha", 32.0))
        cache_dir = Path(options["cache_dir"]) if options.get("cache_dir") else None
        release_file = resolve_file(release, cache_dir, "SALMONN checkpoint")
        beats_file = resolve_file(beats, cache_dir, "BEATs file")
        whisper_dir = resolve_folder(whisper, ["config.json", "preprocessor_config.json"], cache_dir, "Whisper folder")
        vicuna_dir = resolve_folder(vicuna, ["config.json"], cache_dir, "Vicuna folder")
        device = options.get("device", "auto")
        dtype = AUTO_DTYPE if device == "auto" else str(llm_dtype_for(parse_device(device)))
        settings = _settings(prompts, prompt_set, config, alpha, dtype,
                             _component_digests(whisper_dir, beats_file, vicuna_dir))
        embedding = _embedding_settings(_llm_width(vicuna_dir))
        return BackendInfo(model_id(release_file), settings, 16000, cls.native_window_s, embedding)

    def embedding_settings(self) -> dict[str, Any]:
        return _embedding_settings(self.embedding_dim)


def _require(**paths: str | None) -> tuple[str, str, str, str]:
    missing = [k for k in REQUIRED if not paths.get(k)]
    if missing:
        raise BackendError(f"the salmonn model needs --model-option {'=... --model-option '.join(missing)}=... "
                           "(release checkpoint, Whisper folder, BEATs file, Vicuna folder)")
    return tuple(str(paths[k]) for k in REQUIRED)  # type: ignore[return-value]


def _lora_alpha(value: Any) -> float:
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        alpha = float("nan")
    if not np.isfinite(alpha) or alpha <= 0:
        raise BackendError(f"salmonn options: lora_alpha must be a finite number > 0, got {value!r}")
    return alpha


def _prompt_set(name_or_path: str) -> tuple[P.Prompt, ...]:
    try:
        return P.load_prompt_set(str(name_or_path))
    except ValueError as exc:
        raise BackendError(f"salmonn options: {exc}") from None


def _engine_config(batch_size: Any, cascade_threshold: Any, num_beams: Any, max_new_tokens: Any,
                   candidates: Any) -> EngineConfig:
    if batch_size != "auto" and not (isinstance(batch_size, int) or str(batch_size).isdigit()):
        raise BackendError(f"salmonn options: batch_size must be a positive integer or 'auto', got {batch_size!r}")
    try:
        generation = dataclasses.replace(SALMONN_GENERATION, num_beams=int(num_beams), max_new_tokens=int(max_new_tokens))
        return EngineConfig(batch_size=batch_size if batch_size == "auto" else int(batch_size),
                            cascade_threshold=cascade_threshold, generation=generation,
                            candidates=tuple(candidates) if candidates is not None else None)
    except (TypeError, ValueError) as exc:
        raise BackendError(f"salmonn options: {exc}") from None


def _component_digests(whisper_dir: Path, beats_file: Path, vicuna_dir: Path) -> dict[str, str]:
    try:
        return {"whisper_sha256": folder_digest(whisper_dir)[:12], "beats_sha256": file_digest(beats_file)[:12],
                "vicuna_sha256": folder_digest(vicuna_dir)[:12]}
    except OSError as exc:
        raise CheckpointError(f"salmonn: cannot read a component to fingerprint it: {exc}") from None


def _embedding_settings(dim: int) -> dict[str, Any]:
    return {"dim": int(dim), "layer": "speech_llama_proj",
            "pooling": "mean of the window's 88 projected speech tokens (10-s window, Whisper padded to 30 s)"}


def _settings(prompts: tuple[P.Prompt, ...], prompt_set: str, config: EngineConfig, lora_alpha: float,
              llm_dtype: str, digests: dict[str, str]) -> dict[str, Any]:
    """Everything besides the release weights that changes answers (enters the fingerprint)."""
    return {
        "prompt_set": str(prompt_set),
        "prompts": P.prompt_set_dict(prompts),
        "prompt_template": P.PROMPT_TEMPLATE,
        "generation": dataclasses.asdict(config.generation),
        "lora_alpha": lora_alpha,
        "cascade_threshold": config.cascade_threshold,
        "candidates": list(config.candidates) if config.candidates is not None else None,
        "window_samples": WINDOW_SAMPLES,
        "scoring": SCORING_VERSION,
        "llm_dtype": llm_dtype,
        **digests,
    }


__all__ = ["SalmonnBackend"]
