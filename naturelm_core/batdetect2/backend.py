"""BatDetect2 (UK model, 17 species) as a `ModelBackend`: bat calls located in time and frequency.

Windows arrive at 256 kHz. Each window's valid samples are cut into chunks exactly as
BatDetect2's ``api.process_file`` cuts a file (`chunk_starts`: 3 s each from the window's start,
no overlap, the last one shorter; each chunk padded and analysed on its own, nothing stitched or
de-duplicated across chunk edges). A run whose windows are 3 s (the native window) or a multiple
of 3 s with hop = window therefore gets BatDetect2's answers for the whole file, call for call.

- `classify`: one answer per call whose detection probability exceeds ``detection_threshold``
  (default 0.01, BatDetect2's API default): its best species, ``score`` = that class's
  probability, ``detection_score`` = the call's detection probability, ``start_s``/``end_s``
  from the window's start and ``low_freq_hz``/``high_freq_hz``. Ranked by class probability
  (ties: time order); ``answer_text`` is BatDetect2's class name with the call's start and low
  frequency, so each answer of a window is distinct.
- `detect`: one answer per window with audio, label "bat": the window's best heatmap peak
  (its highest detection probability, threshold or not), located like a call.

BatDetect2 also drops calls whose top frequency lies above the *recording's* Nyquist frequency,
which a window at 256 kHz no longer knows: the pipeline, which knows the rate, applies that rule
to every located call (`naturelm_core.backend.held_by_recording`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from naturelm_core.backend import BackendError, ModelBackend, Prediction, check_batch, check_tasks
from naturelm_core.batdetect2 import checkpoint as weights
from naturelm_core.batdetect2.config import API_CHUNK_S, UK_SPECIES, BatDetect2Config, species_of
from naturelm_core.batdetect2.frontend import network_input
from naturelm_core.batdetect2.postprocess import Calls, find_calls

logger = logging.getLogger(__name__)

SUPPORTED_TASKS = ("detect", "classify")
#: The published weights' licence (the batdetect2 wheel's LICENSE.md): non-commercial use only.
LICENCE = "CC-BY-NC-4.0"
#: Names the chunking rule in `settings()`: a new rule is a new fingerprint.
CHUNK_LAYOUT = "batdetect2-api: from the window start, no overlap, last chunk short"
#: Names how calls become answers in `settings()`.
ANSWER_LAYOUT = "classify: one per call above the threshold (best class); detect: heatmap max"
#: Digest of the species names we attach to the UK classes (changes them -> new fingerprint).
SPECIES_DIGEST = hashlib.sha256(json.dumps(UK_SPECIES, sort_keys=True).encode()).hexdigest()[:12]


def chunk_starts(n_samples: int, chunk_samples: int) -> list[int]:
    """Start samples of the chunks that cover `n_samples` (BatDetect2's ``iterate_over_chunks``)."""
    return list(range(0, n_samples, chunk_samples))


class BatDetect2Backend(ModelBackend):
    """BatDetect2's UK model (or another BatDetect2 checkpoint) on CPU or GPU.

    Options (keyword):
      checkpoint: a BatDetect2 ``.pth.tar``; None (default): the UK model shipped in the installed
        ``batdetect2`` package (found without importing it).
      detection_threshold: calls whose detection probability exceeds this are classify answers.
        Default 0.01, BatDetect2's API default (``api.get_config()``, from the checkpoint's
        params); its command line takes it as a required argument (README example 0.3).
      chunk_s: BatDetect2's chunk length: 3.0 (default) as its API, 2.0 as its command line.
        It is also the native window.
      batch_size: chunks per network call (peak memory grows ~0.3 GB per 3-s chunk on CPU).
      device: torch device for the network ("cpu" default, "cuda", "cuda:1").
      licence: the weights' licence, recorded with each run (`runtime()`), never in the
        fingerprint; the shipped UK model's is CC-BY-NC-4.0. Name your own checkpoint's here.
      min_recording_rate_hz: recordings below this rate fail with the reason instead of being
        analysed; default twice the band's top (240 kHz for the UK model), so every recording
        analysed holds the whole band. Lower it (e.g. 192000) to analyse slower recordings as
        BatDetect2 does: each window records the band it held (its top at the recording's
        Nyquist) and calls above that Nyquist are not kept (docs/bats.md).
    """

    name = "batdetect2"
    sample_rate_hz = 256_000
    native_window_s = API_CHUNK_S
    #: Twice the band's top (120 kHz): slower recordings cannot hold what the model looks at.
    min_recording_rate_hz = 240_000
    #: BatDetect2 resamples with librosa's "polyphase" (scipy's resample_poly); so does the
    #: pipeline for this model, and the same audio gives the same calls.
    resampler = "polyphase"

    def __init__(
        self,
        *,
        checkpoint: str | None = None,
        detection_threshold: float = 0.01,
        chunk_s: float = API_CHUNK_S,
        batch_size: int = 2,
        device: str = "cpu",
        licence: str = LICENCE,
        min_recording_rate_hz: int | None = None,
    ):
        if not (isinstance(detection_threshold, (int, float)) and 0.0 <= detection_threshold < 1.0):
            raise BackendError(f"detection_threshold must be in [0, 1), got {detection_threshold!r}")
        if not (isinstance(chunk_s, (int, float)) and math.isfinite(chunk_s) and chunk_s > 0):
            raise BackendError(f"chunk_s must be a number of seconds > 0, got {chunk_s!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BackendError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise BackendError(f"device {device!r}: {err}") from None
        path = Path(checkpoint) if checkpoint is not None else weights.shipped_checkpoint()
        self.network, self.config = weights.load(path)
        self.sample_rate_hz = self.config.sample_rate_hz
        try:
            self.network.to(self.device)
        except (RuntimeError, AssertionError) as err:
            raise BackendError(f"device {device!r}: {err}") from None
        self.checkpoint_path = path
        self.detection_threshold = float(detection_threshold)
        self.chunk_s = float(chunk_s)
        self.chunk_samples = int(self.config.sample_rate_hz * self.chunk_s)  # as BatDetect2 rounds
        if self.chunk_samples < self.config.n_fft:
            raise BackendError(f"chunk_s={chunk_s!r} is shorter than one STFT window ({self.config.n_fft} samples)")
        self.native_window_s = self.chunk_s
        self.batch_size = batch_size
        self.licence = str(licence)
        whole_band = int(math.ceil(2 * self.config.max_freq_hz))
        if min_recording_rate_hz is None:
            self.min_recording_rate_hz = whole_band
        elif (isinstance(min_recording_rate_hz, bool) or not isinstance(min_recording_rate_hz, int)
              or not 2 * self.config.min_freq_hz < min_recording_rate_hz <= whole_band):
            raise BackendError(f"min_recording_rate_hz must be a whole number of Hz above twice the "
                               f"band's bottom ({2 * self.config.min_freq_hz:g}) and at most "
                               f"{whole_band}, got {min_recording_rate_hz!r}")
        else:
            self.min_recording_rate_hz = min_recording_rate_hz
        self._digest = weights.file_sha256(path)[:12]
        self._species = [species_of(name) for name in self.config.class_names]
        logger.info("loaded %s from %s (%d classes, threshold %g, %g-s chunks, %s)", self.model_id,
                    path, len(self.config.class_names), self.detection_threshold, self.chunk_s, self.device)

    @property
    def model_id(self) -> str:
        return f"batdetect2-{self.config.model_name.lower()}@sha256:{self._digest}"

    @property
    def band_hz(self) -> tuple[float, float]:
        return self.config.band_hz

    def settings(self) -> dict[str, Any]:
        return {
            "detection_threshold": self.detection_threshold,
            "chunk_s": self.chunk_s,
            "chunk_layout": CHUNK_LAYOUT,
            "answers": ANSWER_LAYOUT,
            "species_names_sha256": SPECIES_DIGEST,
        }

    def runtime(self) -> dict[str, Any]:
        """Provenance, never the fingerprint: where it ran and the weights' licence."""
        return {"device": str(self.device), "licence": self.licence}

    def chunk_calls(self, chunks: Sequence[np.ndarray]) -> list[Calls]:
        """BatDetect2's calls in each chunk (float32 audio at the model's rate), times from the
        chunk's start. Equal-length chunks share network calls, `batch_size` at a time."""
        found: list[Calls | None] = [None] * len(chunks)
        by_length: dict[int, list[int]] = {}
        for index, chunk in enumerate(chunks):
            by_length.setdefault(int(chunk.shape[0]), []).append(index)
        for indices in by_length.values():
            for first in range(0, len(indices), self.batch_size):
                group = indices[first : first + self.batch_size]
                specs = torch.cat([network_input(chunks[i], self.config) for i in group])  # (b, 1, H, W)
                with torch.no_grad():
                    output = self.network(specs.to(self.device))
                output = type(output)(*(t.cpu() for t in output))
                for i, calls in zip(group, find_calls(output, self.config, self.detection_threshold)):
                    found[i] = calls
        return found  # type: ignore[return-value]

    def predict(
        self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]
    ) -> list[Prediction]:
        wanted = check_tasks("BatDetect2", tasks, SUPPORTED_TASKS)
        check_batch(audio, valid_samples)
        if not wanted:
            return []
        jobs = [(item, start) for item in range(audio.shape[0])
                for start in chunk_starts(int(valid_samples[item]), self.chunk_samples)]
        chunks = [audio[item, start : min(start + self.chunk_samples, int(valid_samples[item]))]
                  for item, start in jobs]
        per_item: dict[int, list[tuple[float, Calls]]] = {}
        for (item, start), calls in zip(jobs, self.chunk_calls(chunks)):
            per_item.setdefault(item, []).append((start / self.config.sample_rate_hz, calls))
        predictions: list[Prediction] = []
        for item, chunk_calls in per_item.items():
            for task in wanted:
                if task == "detect":
                    predictions.append(self._detect_answer(item, chunk_calls))
                else:
                    predictions.extend(self._classify_answers(item, chunk_calls))
        return predictions

    def _located(self, item: int, task: str, offset_s: float, calls: Calls, row: int, rank: int,
                 score: float, label: str, scientific: str | None, text: str) -> Prediction:
        return Prediction(
            item=item, task=task, prompt_id=f"batdetect2:{'detection' if task == 'detect' else 'species'}",
            answer_text=text, label=label, scientific_name=scientific, score=score, rank=rank,
            start_s=offset_s + float(calls.start_s[row]), end_s=offset_s + float(calls.end_s[row]),
            low_freq_hz=float(calls.low_freq_hz[row]), high_freq_hz=float(calls.high_freq_hz[row]),
            detection_score=float(calls.detection_prob[row]),
        )

    def _detect_answer(self, item: int, chunk_calls: list[tuple[float, Calls]]) -> Prediction:
        offset_s, best = max(chunk_calls, key=lambda pair: pair[1].best_detection_prob)  # first of ties
        peak = best.best
        assert peak is not None
        class_name = self.config.class_names[int(np.argmax(peak.class_probs[0]))]
        return self._located(item, "detect", offset_s, peak, 0, 1, float(peak.detection_prob[0]),
                             "bat", None, class_name)

    def _classify_answers(self, item: int, chunk_calls: list[tuple[float, Calls]]) -> list[Prediction]:
        rows = []  # (class probability, time order, offset, calls, row, class index)
        for offset_s, calls in chunk_calls:
            for row in range(len(calls)):
                cls = int(np.argmax(calls.class_probs[row]))
                rows.append((float(calls.class_probs[row, cls]), len(rows), offset_s, calls, row, cls))
        rows.sort(key=lambda r: (-r[0], r[1]))
        answers = []
        for rank, (prob, _, offset_s, calls, row, cls) in enumerate(rows, start=1):
            species = self._species[cls]
            start_s = offset_s + float(calls.start_s[row])
            text = (f"{self.config.class_names[cls]} at {start_s:.4f} s, "
                    f"{float(calls.low_freq_hz[row]) / 1000:.1f} kHz")
            answers.append(self._located(item, "classify", offset_s, calls, row, rank, prob,
                                         species.common_name, species.scientific_name, text))
        return answers

