"""The `clap` model backend: zero-shot detect / classify and audio embeddings with a CLAP model.

Two families behind one backend, chosen by what `weights` points at:

- ``msclap-2023``: a `.pth` file (Microsoft's CLAP_weights_2023.pth) + `text_model`, a local
  folder with GPT-2's config.json and tokenizer; 7-s clips at 44.1 kHz, 1024-d embeddings;
- ``transformers``: a folder saved by transformers' ClapModel + ClapProcessor (BioLingual, LAION
  CLAP); clip length and rate from its feature-extractor config (10 s at 48 kHz as published).

Windows must be at most the family's native length (`native_window_s`); the valid part of each
window is repeat-padded the way the model was trained (MS-CLAP tiles it; transformers' extractor
applies the folder's padding mode), so no model-side random crop or random flag ever fires.

- classify: softmax over the label set's prompts of exp(logit_scale) x cosine; the top_k labels.
- detect: softmax over animal + background prompts; score = the animal prompts' total mass.
- classify_candidates: classify over a per-window candidate list (a location filter's species,
  another model's top-k proposals) instead of the fixed label set.
- embed: one audio embedding per window (the family's published form; compare with cosine).

Text embeddings of the fixed prompts are computed once per instance; candidate prompts once per
distinct text. Template, label set, its digest and the detect prompts are part of `settings()`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from naturelm_core.backend import BackendError, BackendInfo, ModelBackend, Prediction, check_batch, check_tasks
from naturelm_core.clap import frontend, zeroshot
from naturelm_core.clap.checkpoint import (
    ClapCheckpointError,
    file_digest,
    folder_digest,
    load_msclap,
    read_model_config,
)
from naturelm_core.clap.msclap import MSClap
from naturelm_core.clap.transformers_clap import (
    TransformersClap,
    is_clap_folder,
    processor_digest,
    read_feature_settings,
    weights_file,
)
from naturelm_core.labels import SpeciesIndex

logger = logging.getLogger(__name__)

SUPPORTED_TASKS = ("detect", "classify")
SCORING = "softmax(exp(logit_scale)*cosine)/v1"
MSCLAP = "msclap-2023"
TRANSFORMERS = "transformers"


@dataclass(frozen=True)
class _Resolved:
    """Validated options: everything `describe` needs, without building the model."""

    family: str
    weights: Path
    text_dir: Path | None
    model_config_path: Path | None
    prompts: zeroshot.PromptSet
    top_k: int
    batch_size: int
    device: str
    species_labels: str | None
    sample_rate_hz: int
    native_samples: int
    model_id: str
    settings: dict[str, Any]

    @property
    def native_window_s(self) -> float:
        return self.native_samples / self.sample_rate_hz

    @property
    def embedding(self) -> dict[str, Any]:
        """How `embed` makes its vectors: the family's audio embedding, one clip per window."""
        if self.family == MSCLAP:
            dim = int(self.settings["model_config"].get("d_proj", 1024))
        else:
            config = json.loads((self.weights / "config.json").read_text(encoding="utf-8"))
            dim = int(config.get("projection_dim", 512))
        return {"dim": dim, "form": self.settings["embedding"], "clip_rule": self.settings["clip_rule"]}


def _check_device(device: str) -> None:
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise BackendError(f"clap: device {device!r} is not a torch device") from None
    if parsed.type not in ("cpu", "cuda"):
        raise BackendError(f"clap: device {device!r}: only 'cpu' and 'cuda[:N]' are supported")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"clap: device {device!r} requested but CUDA is not available")


def _species_index(path: str | None) -> SpeciesIndex | None:
    try:
        return SpeciesIndex.from_birdnet(path)
    except (FileNotFoundError, ValueError) as exc:
        if path is not None:
            raise BackendError(f"clap: cannot read species_labels {path}: {exc}") from None
        logger.warning("clap: no BirdNET label list (%s); labels get no scientific names", exc)
        return None


def _resolve(
    weights: str | None = None,
    text_model: str | None = None,
    model_config: str | None = None,
    labels: Sequence[str] | None = None,
    labels_file: str | None = None,
    template: str | None = None,
    detect_prompts: Sequence[str] | None = None,
    background_prompts: Sequence[str] | None = None,
    top_k: int = 3,
    batch_size: int = 8,
    device: str = "cpu",
    species_labels: str | None = None,
) -> _Resolved:
    if not weights:
        raise BackendError("clap: weights is required (an MS-CLAP .pth file or a transformers ClapModel folder)")
    path = Path(weights)
    if path.is_file():
        family = MSCLAP
        if not text_model:
            raise BackendError(f"clap: {path} is an MS-CLAP checkpoint; text_model (GPT-2 config + tokenizer folder) is required")
        text_dir = Path(text_model)
        if not (text_dir / "config.json").is_file():
            raise BackendError(f"clap: text_model {text_dir}: not a folder with a GPT-2 config.json")
    elif is_clap_folder(path):
        family, text_dir = TRANSFORMERS, None
        if text_model or model_config:
            raise BackendError("clap: text_model and model_config apply to MS-CLAP .pth weights only")
    else:
        raise BackendError(f"clap: weights {path}: neither a file (MS-CLAP .pth) nor a folder with a CLAP config.json")
    _check_device(device)
    if int(top_k) < 1 or int(batch_size) < 1:
        raise BackendError(f"clap: top_k and batch_size must be >= 1, got {top_k}, {batch_size}")
    if labels is not None and labels_file is not None:
        raise BackendError("clap: give labels or labels_file, not both")
    if isinstance(labels, str):
        raise BackendError("clap: labels must be a list of names (use labels_file for a file)")

    try:
        names = zeroshot.read_labels_file(labels_file) if labels_file is not None else labels
        species = _species_index(species_labels) if names is not None else None
        label_set = zeroshot.build_label_set(names, species) if names is not None else None
        default_animal, default_background = zeroshot.default_detect_prompts(family)
        prompts = zeroshot.PromptSet(
            template=template or zeroshot.DEFAULT_TEMPLATES[family],
            labels=label_set,
            detect_prompts=tuple(detect_prompts) if detect_prompts is not None else default_animal,
            background_prompts=tuple(background_prompts) if background_prompts is not None else default_background,
        )
    except ValueError as exc:
        raise BackendError(f"clap options: {exc}") from None

    settings: dict[str, Any] = {"family": family, "prompts": prompts.settings(), "top_k": int(top_k), "scoring": SCORING}
    config_path = Path(model_config) if model_config else None
    if family == MSCLAP:
        config = read_model_config(config_path)
        sample_rate_hz, native_samples = frontend.SAMPLE_RATE_HZ, frontend.CLIP_SAMPLES
        model_id = f"clap-msclap-2023@sha256:{file_digest(path)[:12]}"
        settings.update(
            clip_rule="tile-to-7s",
            model_config=config.to_dict(),
            text_model_sha256=folder_digest(text_dir)[:12],
            embedding="projected-1024d-unnormalised",
        )
    else:
        features = read_feature_settings(path)
        sample_rate_hz, native_samples = features["sampling_rate"], features["max_samples"]
        model_id = f"clap-transformers@sha256:{file_digest(weights_file(path))[:12]}"
        settings.update(
            clip_rule=f"extractor-{features['padding']}",
            features=features,
            processor_sha256=processor_digest(path)[:12],
            embedding="projected-l2-normalised",
        )
    settings["sample_rate_hz"], settings["clip_samples"] = sample_rate_hz, native_samples
    return _Resolved(
        family, path, text_dir, config_path, prompts, int(top_k), int(batch_size), device, species_labels,
        sample_rate_hz, native_samples, model_id, settings,
    )  # fmt: skip


def _resolve_options(options: dict[str, Any]) -> _Resolved:
    try:
        return _resolve(**options)
    except TypeError as exc:  # an option name that does not exist
        raise BackendError(f"clap options: {exc}") from None


class _MSClapRunner:
    """MS-CLAP 2023 behind the family interface (clips -> embeddings, prompts -> embeddings)."""

    def __init__(self, model: MSClap) -> None:
        self.model = model
        self.embedding_dim = model.config.d_proj
        self.logit_scale = float(model.logit_scale.detach().exp())

    def audio_embeddings(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        wave = torch.from_numpy(np.stack([frontend.fit_clip(c) for c in clips]))  # (B, 308700)
        return self.model.audio_embeddings(wave).float()

    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.model.text_embeddings(prompts).float()


def _softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).numpy()


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


class ClapBackend(ModelBackend):
    """Zero-shot CLAP (MS-CLAP 2023 or a transformers ClapModel folder); see the module docstring.

    Options (keyword):
      weights: MS-CLAP 2023 .pth file, or a transformers ClapModel folder (local paths).
      text_model: MS-CLAP only: folder with GPT-2's config.json + tokenizer (no weights needed).
      model_config: MS-CLAP only: JSON of MSClapConfig fields (default: the published sizes).
      labels / labels_file: the classify label set (names, scientific names or BirdNET labels;
        a file has one per line).
      template: prompt per label, with {common_name} and/or {scientific_name}.
      detect_prompts, background_prompts: full sentences for detect (defaults per family).
      top_k: classify answers per window. batch_size: windows per forward pass.
      device: "cpu" or "cuda[:N]". species_labels: BirdNET label file for scientific names.
    """

    name = "clap"

    def __init__(self, **options: Any) -> None:
        resolved = _resolve_options(options)
        self._resolved = resolved
        self.sample_rate_hz = resolved.sample_rate_hz
        self.native_window_s = resolved.native_window_s
        self.prompts = resolved.prompts
        try:
            if resolved.family == MSCLAP:
                model = load_msclap(resolved.weights, resolved.text_dir, read_model_config(resolved.model_config_path), resolved.device)
                self._runner: Any = _MSClapRunner(model)
            else:
                self._runner = TransformersClap(resolved.weights, resolved.device)
        except (RuntimeError, ValueError) as exc:
            if isinstance(exc, BackendError):
                raise
            raise ClapCheckpointError(f"clap: cannot build the model: {exc}") from None
        self.embedding_dim = int(self._runner.embedding_dim)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._species: SpeciesIndex | None = None  # built on the first candidate list
        self._species_loaded = False
        try:
            self._label_text = self._texts(self.prompts.label_prompts()) if self.prompts.labels else None
            self._detect_text = self._texts([*self.prompts.detect_prompts, *self.prompts.background_prompts])
        except ValueError as exc:
            raise BackendError(f"clap options: {exc}") from None
        logger.info("loaded %s (%s, %d-d)", self.model_id, resolved.family, self.embedding_dim)

    @classmethod
    def describe(cls, **options: Any) -> BackendInfo:
        """Identity and settings from digests and configs; the model is not built."""
        resolved = _resolve_options(options)
        return BackendInfo(resolved.model_id, resolved.settings, resolved.sample_rate_hz, resolved.native_window_s,
                           resolved.embedding)

    @property
    def model_id(self) -> str:
        return self._resolved.model_id

    @property
    def family(self) -> str:
        return self._resolved.family

    def settings(self) -> dict[str, Any]:
        return self._resolved.settings

    def embedding_settings(self) -> dict[str, Any]:
        return self._resolved.embedding

    # ---------------------------------------------------------------- embeddings

    def _texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """(T, D) normalised text embeddings, each distinct prompt computed once."""
        todo = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        for start in range(0, len(todo), 32):
            chunk = todo[start : start + 32]
            for prompt, vector in zip(chunk, _normalise(self._runner.text_embeddings(chunk)).cpu()):
                self._text_cache[prompt] = vector
        return torch.stack([self._text_cache[p] for p in prompts])

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(T, embedding_dim) float32 unit-length text embeddings, in the space of `embed`'s
        audio embeddings (`dawnchorus similar --text`: cosine against stored audio vectors)."""
        if not texts or any(not str(t).strip() for t in texts):
            raise ValueError("clap embed_text: expected non-empty texts")
        return self._texts([str(t) for t in texts]).numpy().astype(np.float32)

    def _clips(self, audio: np.ndarray, valid_samples: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        check_batch(audio, valid_samples)
        native = self._resolved.native_samples
        if audio.shape[1] > native:
            raise ValueError(
                f"clap ({self.family}) takes windows of at most {self.native_window_s:g} s "
                f"({native} samples at {self.sample_rate_hz} Hz), got {audio.shape[1]} samples"
            )
        rows = np.flatnonzero(valid_samples > 0)
        clips = [audio[r, : int(valid_samples[r])] for r in rows]
        bad = [int(r) for r, clip in zip(rows, clips) if not np.isfinite(clip).all()]
        if bad:  # NaN or inf would become NaN scores; refuse rather than invent an answer
            raise ValueError(f"clap: rows {bad} hold non-finite samples")
        return rows, clips

    def _audio(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """(B, D) raw audio embeddings, batch_size clips per forward pass."""
        size = self._resolved.batch_size
        parts = [self._runner.audio_embeddings(clips[i : i + size]).cpu() for i in range(0, len(clips), size)]
        return torch.cat(parts) if parts else torch.zeros(0, self.embedding_dim)

    def embed(self, audio: np.ndarray, valid_samples: np.ndarray) -> np.ndarray:
        """(B, embedding_dim) float32 audio embeddings; every row needs valid samples."""
        rows, clips = self._clips(audio, valid_samples)
        if rows.size != audio.shape[0]:
            empty = sorted(set(range(audio.shape[0])) - set(rows.tolist()))
            raise ValueError(f"clap embed: rows {empty} have no valid samples")
        return self._audio(clips).numpy().astype(np.float32)

    # ---------------------------------------------------------------- answers

    def predict(self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]) -> list[Prediction]:
        wanted = check_tasks("clap", tasks, SUPPORTED_TASKS)
        rows, clips = self._clips(audio, valid_samples)
        if "classify" in wanted and self._label_text is None:
            raise ValueError("clap: classify needs a label set (options labels=[...] or labels_file=...)")
        if not wanted or rows.size == 0:
            return []
        embeds = _normalise(self._audio(clips))  # (R, D)
        scale = self._runner.logit_scale
        predictions: list[Prediction] = []
        detect_p = _softmax(scale * embeds @ self._detect_text.T) if "detect" in wanted else None  # (R, A + G)
        classify_p = _softmax(scale * embeds @ self._label_text.T) if "classify" in wanted else None  # (R, L)
        n_animal = len(self.prompts.detect_prompts)
        detect_texts = [*self.prompts.detect_prompts, *self.prompts.background_prompts]
        for n, item in enumerate(rows.tolist()):
            for task in wanted:
                if task == "detect":
                    best = int(np.argmax(detect_p[n]))
                    predictions.append(Prediction(
                        item=item, task="detect", prompt_id=self.prompts.detect_prompt_id,
                        answer_text=detect_texts[best], label="animal", scientific_name=None,
                        score=float(min(1.0, detect_p[n, :n_animal].sum())),
                    ))  # fmt: skip
                else:
                    predictions += self._ranked(item, classify_p[n], self.prompts.labels, self.prompts.classify_prompt_id)
        return predictions

    def _ranked(self, item: int, probs: np.ndarray, labels: Sequence[zeroshot.Label], prompt_id: str) -> list[Prediction]:
        order = np.argsort(-probs, kind="stable")[: self._resolved.top_k]  # ties keep label order
        return [
            Prediction(
                item=item, task="classify", prompt_id=prompt_id, answer_text=labels[c].name,
                label=labels[c].common_name, scientific_name=labels[c].scientific_name,
                score=float(probs[c]), rank=rank,
            )
            for rank, c in enumerate(order.tolist(), start=1)
        ]  # fmt: skip

    def classify_candidates(
        self, audio: np.ndarray, valid_samples: np.ndarray, candidates_per_window: Sequence[Sequence[str]]
    ) -> list[Prediction]:
        """Classify each window over its own candidate names (softmax over that list only).

        candidates_per_window[i] lists names as `labels` does (common, scientific or BirdNET
        labels). A window with no valid samples or an empty list gets no answer. Answers carry
        task "classify" and prompt id `PromptSet.candidates_prompt_id`.
        """
        if len(candidates_per_window) != audio.shape[0]:
            raise ValueError(f"candidates_per_window has {len(candidates_per_window)} lists for {audio.shape[0]} windows")
        rows, clips = self._clips(audio, valid_samples)
        keep = [(r, c) for r, c in zip(rows.tolist(), clips) if len(candidates_per_window[r])]
        if not keep:
            return []
        if not self._species_loaded:
            self._species, self._species_loaded = _species_index(self._resolved.species_labels), True
        embeds = _normalise(self._audio([c for _, c in keep]))  # (R, D)
        predictions: list[Prediction] = []
        for n, (item, _) in enumerate(keep):
            try:
                labels = zeroshot.build_label_set(candidates_per_window[item], self._species)
                text = self._texts(self.prompts.label_prompts(labels))  # (C, D)
            except ValueError as exc:
                raise ValueError(f"clap: candidates of window {item}: {exc}") from None
            probs = _softmax(self._runner.logit_scale * embeds[n : n + 1] @ text.T)[0]
            predictions += self._ranked(item, probs, labels, self.prompts.candidates_prompt_id)
        return predictions
