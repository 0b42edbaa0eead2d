"""The model-backend interface every model implements, and the registry that loads them by name.

A backend is a plain class (no Ray, no Prefect): the pipeline hands it a batch of fixed-length
windows at the backend's own sample rate and gets back one or more `Prediction`s per
(window, task). Ray wraps it in an actor; tests call it directly.
"""

from __future__ import annotations

import abc
import importlib
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: Tasks every backend understands. `detect`: is an animal vocalising (one answer, P(yes)).
#: `classify`: which species (ranked answers, each with its probability).
TASKS: tuple[str, ...] = ("detect", "classify")


class BackendError(RuntimeError):
    """A backend cannot be built or run: bad options, missing or mismatched weights."""


@dataclass(frozen=True)
class Prediction:
    """One answer of a backend to one task about one window of a batch."""

    item: int  # row of the batch this answers
    task: str  # one of TASKS (or a custom prompt's task name)
    prompt_id: str  # which prompt / head produced it, stable across runs
    answer_text: str  # the raw answer (model text, or the model's label string)
    label: str | None  # normalised label: common name for a species; "animal" for detect
    scientific_name: str | None  # None when the answer is not a known species
    score: float  # probability in [0, 1]
    rank: int = 1  # 1 = best answer for this (window, task)
    # A call located inside the window, for models that find events (BatDetect2); window-level
    # models leave all five None. Times are seconds from the window's start; `score` is then the
    # class probability and `detection_score` the probability that there is a call at all.
    start_s: float | None = None
    end_s: float | None = None
    low_freq_hz: float | None = None
    high_freq_hz: float | None = None
    detection_score: float | None = None


@dataclass(frozen=True)
class BackendInfo:
    """What the driver needs to know of a backend without running it."""

    model_id: str
    settings: dict[str, Any]
    sample_rate_hz: int
    #: Longest window the model takes as it is (None: any length). The driver cuts windows of at
    #: most this length, so no model-side crop (random in CLAP) ever fires.
    native_window_s: float | None = None
    #: How `embed` makes its vectors (width, layer, pooling); None: no embeddings. It enters a
    #: run's fingerprint only when the run writes embeddings.
    embedding: dict[str, Any] | None = None
    #: How the model runs (engine, versions): the run's provenance, never its fingerprint, for
    #: runtimes whose answers equal the reference's. Its keys are backend options.
    runtime: dict[str, Any] | None = None
    #: The frequency band (low, high) in Hz the model analyses; None: 0 to half its sample rate.
    band_hz: tuple[float, float] | None = None
    #: How windows are resampled to the model's rate (`connectors.audio.RESAMPLERS`).
    resampler: str = "soxr"
    #: `ModelBackend.min_recording_rate_hz` of these options; None: the class's (see
    #: `recording_rate_floor`), which a `describe` that builds no backend leaves to speak.
    min_recording_rate_hz: int | None = None

    def band(self) -> tuple[float, float]:
        """The band (low, high) in Hz, `band_hz` or its default (0 to half the sample rate)."""
        if self.band_hz is None:
            return (0.0, self.sample_rate_hz / 2)
        return (float(self.band_hz[0]), float(self.band_hz[1]))


class ModelBackend(abc.ABC):
    """A model that answers tasks about batches of audio windows.

    Subclasses set `name` and `sample_rate_hz` and load their weights once in `__init__`.
    Backends with a fixed input length set `native_window_s` (BirdNET 3 s, NatureLM-audio 10 s,
    CLAP per family): it is a run's default window, so no model work goes to overlap or padding
    the run did not ask for. Backends with audio embeddings set `embedding_dim` and implement
    `embed`.
    """

    name: str
    sample_rate_hz: int
    native_window_s: float | None = None  # the window taken as is (a run's default); None = any
    embedding_dim: int | None = None  # width of `embed`'s vectors; None = no embeddings
    #: The model's own human-voice score per window of its last predict call (BirdNET's Human
    #: vocal class), for the privacy gate (docs/privacy.md); None: the model has no such class.
    speech_scores: Any = None
    #: Recordings below this sample rate cannot hold the band the model needs (an ultrasonic
    #: model given a 48 kHz file): the pipeline fails them with that reason instead of resampling
    #: them up. None: any sample rate is resampled to the model's.
    min_recording_rate_hz: int | None = None
    #: How the pipeline brings windows to `sample_rate_hz`: "soxr" (default) or "polyphase"
    #: (scipy's resample_poly, for models whose reference resamples so: BatDetect2). Part of the
    #: backend's code, so not of the fingerprint.
    resampler: str = "soxr"

    @property
    def band_hz(self) -> tuple[float, float]:
        """The frequency band (low, high) in Hz the model's answers can rest on: what a window's
        effort covered. Default: 0 to half the sample rate; models that look at less say so."""
        return (0.0, self.sample_rate_hz / 2)

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """Model name plus a digest of its weights, e.g. ``birdnet-v2.4@sha256:0123abcd4567``."""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes answers (prompts, top-k, generation).

        JSON-serialisable; it enters the run's config fingerprint.
        """

    @classmethod
    def describe(cls, **options: Any) -> "BackendInfo":
        """Identity, settings and sample rate for these options, for the run's fingerprint.

        The driver calls this before any worker loads the model. The default builds the backend;
        backends whose weights are expensive to load override it to read only a digest.
        """
        backend = cls(**options)
        return BackendInfo(backend.model_id, backend.settings(), backend.sample_rate_hz,
                           backend.native_window_s, backend.embedding_settings(),
                           backend.runtime(), band_hz=tuple(backend.band_hz),
                           resampler=backend.resampler,
                           min_recording_rate_hz=backend.min_recording_rate_hz)

    @abc.abstractmethod
    def predict(
        self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]
    ) -> list[Prediction]:
        """Answer `tasks` for each window.

        audio: (B, S) float32 in [-1, 1] at `sample_rate_hz`; windows shorter than S were
        zero-padded at the end. valid_samples: (B,) int, samples of real audio per row.
        """

    def runtime(self) -> dict[str, Any] | None:
        """How this backend runs, as backend options (e.g. BirdNET's runtime and CNN engine), for
        the run's provenance; None when there is nothing to say. Never part of the fingerprint."""
        return None

    def predict_and_embed(
        self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]
    ) -> tuple[list[Prediction], np.ndarray]:
        """`predict` and `embed` of one batch. Backends that get both from one forward pass
        (BirdNET) override it; this default runs the two in turn."""
        return self.predict(audio, valid_samples, tasks), self.embed(audio, valid_samples)

    def embedding_settings(self) -> dict[str, Any] | None:
        """How `embed` makes its vectors (JSON): at least `dim`; None when there are none.

        Backends add what changes the vectors (layer, pooling, normalisation).
        """
        return None if self.embedding_dim is None else {"dim": int(self.embedding_dim)}

    def embed(self, audio: np.ndarray, valid_samples: np.ndarray) -> np.ndarray:
        """One embedding per window: (B, embedding_dim) float32; batched equals one at a time.

        Same batch layout as `predict`; every row must hold valid samples (ValueError otherwise).
        Backends without embeddings (`embedding_dim` None) raise BackendError.
        """
        raise BackendError(f"the {self.name} backend has no audio embeddings")


def held_by_recording(high_freq_hz: float | None, recording_rate_hz: int | None) -> bool:
    """Whether a located call can be in the recording: its top (in whole Hz) at most the file's
    Nyquist frequency. A call above it was found in the band resampling filled with nothing
    (a 192 kHz file analysed at 256 kHz holds nothing above 96 kHz); BatDetect2 drops such calls
    as its last step, and so does the pipeline (docs/bat-analyses.md). Window-level answers are always kept."""
    if high_freq_hz is None or not recording_rate_hz:
        return True
    return int(high_freq_hz) <= recording_rate_hz / 2


def check_batch(audio: np.ndarray, valid_samples: np.ndarray) -> None:
    """Validate a batch handed to `ModelBackend.predict`; raise ValueError saying what is wrong."""
    if audio.ndim != 2:
        raise ValueError(f"audio must be (batch, samples), got shape {audio.shape}")
    if audio.dtype != np.float32:
        raise ValueError(f"audio must be float32, got {audio.dtype}")
    if valid_samples.shape != (audio.shape[0],):
        raise ValueError(
            f"valid_samples must have shape ({audio.shape[0]},), got {valid_samples.shape}"
        )
    if np.any(valid_samples < 0) or np.any(valid_samples > audio.shape[1]):
        raise ValueError("valid_samples must lie in [0, samples per window]")


def check_tasks(backend: str, tasks: Sequence[str], supported: Sequence[str]) -> list[str]:
    """The tasks asked, each once in the order asked; an unsupported one is a ValueError."""
    unknown = [task for task in tasks if task not in supported]
    if unknown:
        raise ValueError(
            f"{backend} backend does not support task(s) {unknown}; supported: {list(supported)}"
        )
    return list(dict.fromkeys(tasks))


#: name -> "module:Class"; imported lazily so that a BirdNET run never imports torch.
BACKENDS: dict[str, str] = {
    "birdnet": "naturelm_core.birdnet.backend:BirdNETBackend",
    "clap": "naturelm_core.clap.backend:ClapBackend",
    "naturelm": "naturelm_core.naturelm.backend:NatureLMBackend",
    "salmonn": "naturelm_core.salmonn.backend:SalmonnBackend",
    "batdetect2": "naturelm_core.batdetect2.backend:BatDetect2Backend",
    "placeholder": "naturelm_core.placeholder:PlaceholderBackend",
    "null": "naturelm_core.null:NullBackend",  # no work at all: the pipeline's own cost (bench/)
}


def backend_class(name: str) -> type[ModelBackend]:
    """The class registered as `name`, imported on first use."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise BackendError(
            f"unknown model {name!r}; expected one of {sorted(BACKENDS)}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_backend(name: str, **options: Any) -> ModelBackend:
    """Build the backend registered as `name` with its keyword options."""
    return backend_class(name)(**options)


def describe_backend(name: str, **options: Any) -> BackendInfo:
    """Identity, settings and sample rate of the backend `name` with these options."""
    return backend_class(name).describe(**options)


def recording_rate_floor(name: str, info: BackendInfo) -> int | None:
    """The lowest recording rate the backend `name` takes with the options `info` describes:
    the options' own (`BackendInfo.min_recording_rate_hz`), else its class's; None: any."""
    if info.min_recording_rate_hz is not None:
        return int(info.min_recording_rate_hz)
    floor = getattr(backend_class(name), "min_recording_rate_hz", None)
    return int(floor) if floor is not None else None


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse model options the backend `name` cannot take, before it is built: a name its
    constructor does not have, or a value of the wrong kind for a number it declares (a text,
    a bool, NaN or an infinity where it takes a float; a fraction where it takes an int).

    Raises BackendError naming the option, what was given and what the backend expects. Ranges
    a backend knows (`sensitivity > 0`) stay its own constructor's to check.
    """
    cls = backend_class(name)
    signature = inspect.signature(cls.__init__)
    params = {k: p for k, p in signature.parameters.items() if k != "self"}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {k: p for k, p in params.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: leave the types to the backend
        hints = {}
    for key, value in options.items():
        if key not in named:
            if open_ended:
                continue
            raise BackendError(f"model_options {key}: not an option of the {name} backend "
                               f"(it takes {', '.join(sorted(named)) or 'none'})")
        kinds = _number_kinds(hints.get(key))
        if not kinds or value is None:
            continue
        if float in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise BackendError(f"model_options {key}={value!r}: expected a finite number")
            continue
        if int in kinds and isinstance(value, int) and not isinstance(value, bool):
            continue
        expected = "a finite number" if float in kinds else "a whole number"
        raise BackendError(f"model_options {key}={value!r}: expected {expected}")


def _number_kinds(annotation: Any) -> set[type]:
    """{float} / {int} / {float, int} when the annotation is a number (or Optional of one), else
    empty (paths, texts, anything else: the backend checks them)."""
    if annotation is None:
        return set()
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    args = tuple(a for a in args if a is not type(None))
    if not args or any(a not in (int, float) for a in args):
        return set()
    return set(args)
