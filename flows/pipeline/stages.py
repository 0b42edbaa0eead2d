"""The three stages of processing, as plain functions free of any engine: decode, infer, commit.

- `decode_unit` (a CPU task): seek into one recording, cut and resample the unit's windows. A
  file rewritten since discovery, one that fails to decode, or one sampled below the model's
  `min_recording_rate_hz` (never resampled up), fails the unit's windows with the reason; the
  run goes on. A storage failure (`connectors.errors.transient_reason`) marks them
  `unavailable` instead: no row is committed for them, and the next run plans them again.
- `Predictor` (a model actor): the backend loads once and answers a batch of windows. A batch the
  model fails on, or a window it scores with anything but a finite probability, fails with the
  reason; nothing non-finite reaches the catalog. `DecodingPredictor` is both stages in one
  model actor (for models on CPU: no decode tasks, no audio through the object store).
- `unit_rows` (the driver): one finished unit's decoded and answered rows become the typed
  `windows` and `predictions` rows the catalog commits in one transaction (a located call's times
  move from the window's frame to the recording's; each window records the band its model
  analysed, cut to the recording's Nyquist: docs/bat-analyses.md); `unit_embeddings`
  its `embeddings` rows when the run asks for them (committed in the same transaction).

`flows.pipeline.ray_engine` wires them with Ray Data; tests call them directly on one batch.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable

import numpy as np

from connectors.audio import check_recording_rate, iter_windows, read_header
from connectors.audio_qc import QUALITY_COLUMNS, quality_columns, quality_fields
from connectors.errors import InputError, transient_reason
from connectors.storage import describe_service, object_version, open_root
from connectors.tables import EmbeddingRow, PredictionRow, WindowRow
from connectors.timeparse import zone_from_name
from flows.pipeline.plan import Unit, UnitItem
from flows.pipeline.speech import SpeechMarker
from naturelm_core.backend import ModelBackend, held_by_recording, load_backend

log = logging.getLogger(__name__)


#: Status of a decoded row whose audio the storage failed to give (not the file's fault): it
#: passes the model by, and the driver commits no row for it, so the next run plans it again.
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class DecodeOptions:
    source: str
    storage_options: dict[str, Any]
    window_s: float
    sample_rate_hz: int
    channel_policy: str
    #: The model's lowest recording rate (`ModelBackend.min_recording_rate_hz`): a recording
    #: below it fails its windows with the reason instead of being resampled up. None: any.
    min_recording_rate_hz: int | None = None
    #: How windows are resampled to the model's rate (`BackendInfo.resampler`).
    resampler: str = "soxr"


# ------------------------------------------------------------------------------------ decode


def decode_unit(item: dict[str, Any], options: DecodeOptions) -> list[dict[str, Any]]:
    """Every (window, channel) row of one unit; a file error fails the rows it left, not the run.

    Rows: unit_id, window_index, channel, audio (float32 at the model's rate), valid_samples,
    duration_s (real audio), padded, status (ok / empty / failed), error, and the window's
    quality (`connectors.audio_qc.QUALITY_COLUMNS`, None where nothing was analysed).
    """
    unit = UnitItem.from_item(item)
    n_samples = round(options.window_s * options.sample_rate_hz)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    error = None
    status = "failed"
    fs = None
    try:
        fs, _ = open_root(options.source, options.storage_options)
        _check_unchanged(fs, unit)
        header = read_header(fs, unit.path, uri=unit.uri)
        check_recording_rate(unit.uri, header.sample_rate_hz, options.min_recording_rate_hz)
        for w in iter_windows(fs, unit.path, header, unit.windows, options.window_s,
                              options.sample_rate_hz, options.channel_policy, uri=unit.uri,
                              resampler=options.resampler):
            rows[(w.index, w.channel)] = {
                "audio": w.samples, "valid_samples": w.valid_samples, "duration_s": w.duration_s,
                "padded": w.padded, "status": w.status, "error": w.error,
                **quality_columns(w.quality),
            }
    except Exception as exc:  # the file's problem is recorded on its windows; the run goes on
        transient = transient_reason(exc)
        if transient is not None:  # the storage failed, not the file: the next run tries again
            status = UNAVAILABLE
            service = describe_service(fs) if fs is not None else options.source
            error = f"{service}: {transient} (reading {unit.uri})"
        elif isinstance(exc, InputError):
            error = str(exc)
        else:  # anything else a decoder throws is the file's problem too
            error = f"{unit.uri}: {type(exc).__name__}: {exc}"
    if error:
        log.log(logging.DEBUG if status == UNAVAILABLE else logging.WARNING,
                "unit %s %s: %s", unit.unit_id, status, error)
    out = []
    candidates = item.get("candidates")  # a cascade stage's per-window candidate names
    for position, spec in enumerate(unit.windows):
        for channel in unit.channels:
            row = rows.get((spec.index, channel)) or {
                "audio": np.zeros(n_samples, np.float32), "valid_samples": 0,
                "duration_s": 0.0, "padded": spec.padded,
                "status": status, "error": error or "window not decoded",
                **quality_columns(None),
            }
            out.append({"unit_id": unit.unit_id, "window_index": spec.index, "channel": channel, **row})
            if candidates is not None:
                out[-1]["candidates"] = json.dumps(list(candidates[position]))
    return out


def _check_unchanged(fs: Any, unit: UnitItem) -> None:
    size, tag = object_version(fs, unit.path)
    if (size, tag) != (unit.size_bytes, unit.version_tag):
        raise InputError(
            unit.uri,
            f"file changed since discovery (size {unit.size_bytes} -> {size} bytes, version "
            f"{unit.version_tag or '?'} -> {tag or '?'}); the next run analyses the new version",
        )


# ------------------------------------------------------------------------------------ infer


def _is_probability(score: Any) -> bool:
    return isinstance(score, (float, int)) and math.isfinite(score) and 0.0 <= score <= 1.0


#: A located call's fields on a `Prediction` (seconds from the window's start, Hz, probability).
EVENT_FIELDS = ("start_s", "end_s", "low_freq_hz", "high_freq_hz", "detection_score")


def _event_fields(p: Any) -> dict[str, float]:
    """The call's box of an event model's answer, as the predictions JSON carries it (absent
    for a window-level answer)."""
    return {k: float(getattr(p, k)) for k in EVENT_FIELDS if getattr(p, k, None) is not None}


def _answer_problem(p: Any) -> str | None:
    """Why an answer cannot be stored (the window fails with it), or None: a score that is not a
    finite probability, or a call box that is partial, not finite, reversed or improbable."""
    if not _is_probability(p.score):
        return f"model returned score {p.score!r} for {p.task}: not a probability"
    given = {k: getattr(p, k, None) for k in EVENT_FIELDS}
    if all(v is None for v in given.values()):
        return None
    box = {k: v for k, v in given.items() if k != "detection_score"}
    if any(v is None for v in box.values()):
        missing = ", ".join(k for k, v in box.items() if v is None)
        return f"model returned a call for {p.task} without {missing}"
    if not all(isinstance(v, (float, int)) and math.isfinite(v) for v in box.values()):
        return f"model returned a call box that is not finite for {p.task}: {box}"
    if not (0 <= box["start_s"] <= box["end_s"] and 0 <= box["low_freq_hz"] <= box["high_freq_hz"]):
        return f"model returned a reversed or negative call box for {p.task}: {box}"
    if given["detection_score"] is not None and not _is_probability(given["detection_score"]):
        return (f"model returned detection_score {given['detection_score']!r} for {p.task}: "
                "not a probability")
    return None


class Predictor:
    """The model stage: the backend loads once per actor and answers batches of windows."""

    def __init__(self, model: str, model_options: dict[str, Any], tasks: tuple[str, ...],
                 embeddings: bool = False, candidates: bool = False):
        self.backend = load_backend(model, **model_options)
        self.tasks = tasks
        # A cascade stage classifies each window over its own candidates (the batch's
        # `candidates` column, JSON lists), through the backend's classify_candidates.
        self.candidates = candidates and "classify" in tasks
        # A model without embeddings answers as usual; the driver said so before the run started.
        self.embeddings = embeddings and self.backend.embedding_dim is not None
        self._one_pass = type(self.backend).predict_and_embed is not ModelBackend.predict_and_embed
        self._vectors: dict[int, np.ndarray] | None = None
        self.speech = SpeechMarker()  # the privacy gate's detector, with every model (docs/privacy.md)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["unit_id"])
        answers: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        status = np.array(batch["status"], dtype=object)
        error = np.array(batch["error"], dtype=object)
        todo = np.flatnonzero(status == "ok")
        audio = valid = None
        self.backend.speech_scores = None
        if len(todo):
            audio = np.stack([np.asarray(batch["audio"][i], np.float32) for i in todo])
            valid = np.asarray(batch["valid_samples"], np.int64)[todo]
            try:
                predictions = self._answer(batch, todo, audio, valid)
            except Exception as exc:  # a model failure fails these windows, recorded, not the run
                log.exception("model failed on a batch")
                status[todo] = "failed"
                error[todo] = f"model error: {type(exc).__name__}: {exc}"
                predictions = []
            for p in predictions:
                row = todo[p.item]
                if status[row] != "ok":
                    continue
                problem = _answer_problem(p)
                if problem is not None:
                    status[row] = "failed"
                    error[row] = problem
                    answers[row] = []
                    continue
                answers[row].append({
                    "task": p.task, "prompt_id": p.prompt_id, "rank": p.rank,
                    "answer_text": p.answer_text, "label": p.label,
                    "scientific_name": p.scientific_name, "score": float(p.score),
                    **_event_fields(p),
                })
        vectors = np.full(n, b"", dtype=object)
        if self.embeddings:
            self._embed(batch, status, error, vectors, answers)
        speech = self.speech.columns(n, todo, audio, valid, self.backend.sample_rate_hz,
                                     self.backend.speech_scores)
        return {
            "unit_id": batch["unit_id"],
            "window_index": batch["window_index"],
            "channel": batch["channel"],
            "duration_s": batch["duration_s"],
            "padded": batch["padded"],
            "status": status,
            "error": error,
            "predictions": np.array([json.dumps(a) for a in answers], dtype=object),
            "embedding": vectors,
            **{name: batch[name] for name in QUALITY_COLUMNS if name in batch},
            **speech,
        }

    def _answer(self, batch: dict[str, np.ndarray], todo: np.ndarray, audio: np.ndarray,
                valid: np.ndarray) -> list[Any]:
        self._vectors = None
        if self.embeddings and not self.candidates and self._one_pass:
            # Answers and embeddings from one forward pass (BirdNET); `_embed` takes the vectors.
            predictions, vectors = self.backend.predict_and_embed(audio, valid, self.tasks)
            self._vectors = dict(zip(todo.tolist(), np.asarray(vectors, np.float32)))
            return predictions
        if not self.candidates:
            return self.backend.predict(audio, valid, self.tasks)
        others = tuple(t for t in self.tasks if t != "classify")
        predictions = list(self.backend.predict(audio, valid, others)) if others else []
        lists = [json.loads(batch["candidates"][i]) for i in todo]
        return predictions + list(self.backend.classify_candidates(audio, valid, lists))

    def _embed(self, batch: dict[str, np.ndarray], status: np.ndarray, error: np.ndarray,
               vectors: np.ndarray, answers: list[list[dict[str, Any]]]) -> None:
        """One float32 vector (as bytes) per window still ok; a window whose embedding the model
        cannot make, or makes non-finite, fails with the reason (it is asked again on retry)."""
        todo = np.flatnonzero(status == "ok")
        if not len(todo):
            return
        try:
            if self._vectors is not None:  # made in the same pass as the answers
                out = np.stack([self._vectors[row] for row in todo.tolist()])  # (B, D)
            else:
                audio = np.stack([np.asarray(batch["audio"][i], np.float32) for i in todo])
                valid = np.asarray(batch["valid_samples"], np.int64)[todo]
                out = np.asarray(self.backend.embed(audio, valid), dtype=np.float32)  # (B, D)
            if out.shape != (len(todo), self.backend.embedding_dim):
                raise ValueError(f"expected shape {(len(todo), self.backend.embedding_dim)}, "
                                 f"got {out.shape}")
        except Exception as exc:
            log.exception("model failed to embed a batch")
            status[todo] = "failed"
            error[todo] = f"embedding error: {type(exc).__name__}: {exc}"
            for row in todo:
                answers[row] = []
            return
        for row, vector in zip(todo, out):
            if not np.all(np.isfinite(vector)):
                status[row] = "failed"
                error[row] = "model returned a non-finite embedding"
                answers[row] = []
            else:
                vectors[row] = vector.tobytes()


class DecodingPredictor:
    """Decode and infer in one model actor (decode placement "actor"): no decode tasks, and no
    window audio through Ray's object store.

    Each call takes a batch of unit items (pyarrow) and yields the `Predictor`'s output for each
    `batch_size` windows as they are answered, while a thread decodes the next unit (LiteRT and
    the decoders release the GIL, so decoding overlaps inference). Decoding and its failures are
    `decode_unit`'s, row for row, as in a decode task.
    """

    def __init__(self, decode: DecodeOptions, batch_size: int, model: str,
                 model_options: dict[str, Any], tasks: tuple[str, ...], embeddings: bool = False,
                 candidates: bool = False):

        self.decode, self.batch_size = decode, batch_size
        self.predictor = Predictor(model, model_options, tasks, embeddings, candidates)
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="dawnchorus-decode")

    def __call__(self, units: Any) -> Iterable[dict[str, np.ndarray]]:
        items = units.to_pylist()
        ahead = self.reader.submit(decode_unit, items[0], self.decode)
        for i in range(len(items)):
            rows = ahead.result()
            if i + 1 < len(items):
                ahead = self.reader.submit(decode_unit, items[i + 1], self.decode)
            for first in range(0, len(rows), self.batch_size):
                yield self.predictor(_columns(rows[first : first + self.batch_size]))


def _columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Decoded rows as the column batch a `Predictor` takes: numbers as typed arrays, text (and
    None) as object arrays, audio as a list of arrays (stacked once, by the Predictor)."""
    batch: dict[str, Any] = {"audio": [r["audio"] for r in rows]}
    for key in rows[0]:
        if key != "audio":
            values = [r[key] for r in rows]
            numeric = all(isinstance(v, (bool, int, float, np.number, np.bool_)) for v in values)
            batch[key] = np.asarray(values) if numeric else np.array(values, dtype=object)
    return batch


# ------------------------------------------------------------------------------------ commit


@dataclass(frozen=True)
class CommitContext:
    run_id: str
    fingerprint: str
    model_id: str
    window_s: float
    embedding_dim: int | None = None  # width of the embeddings the run writes; None: none
    #: The band (low, high) in Hz the model analyses (`ModelBackend.band_hz`); each window
    #: records it, its top cut to the recording's Nyquist. None: not recorded (NULL).
    band_hz: tuple[float, float] | None = None


def window_band(band_hz: tuple[float, float] | None, recording_rate_hz: int | None
                ) -> tuple[float | None, float | None]:
    """The band a window's effort covered: the model's, its top at most the recording's own
    Nyquist frequency (a 48 kHz file holds nothing above 24 kHz, whatever the model's rate)."""
    if band_hz is None:
        return None, None
    low, high = float(band_hz[0]), float(band_hz[1])
    if recording_rate_hz:
        high = min(high, recording_rate_hz / 2)
    return low, max(low, high)


def unit_rows(unit: Unit, rows: Iterable[dict[str, Any]], ctx: CommitContext
              ) -> tuple[list[WindowRow], list[PredictionRow]]:
    """The windows and predictions rows of one finished unit, in window and channel order."""
    tz = zone_from_name(unit.tz_name or "UTC")
    offsets = {w.index: w.offset_s for w in unit.windows}
    band_low_hz, band_high_hz = window_band(ctx.band_hz, unit.sample_rate_hz)
    windows, predictions = [], []
    for r in sorted(rows, key=lambda r: (int(r["window_index"]), int(r["channel"]))):
        index, channel = int(r["window_index"]), int(r["channel"])
        offset_s = offsets[index]
        # Ray turns an all-None column into NaNs on its way through numpy batches.
        error = r["error"] if isinstance(r["error"], str) and r["error"] else None
        start = unit.start_utc + timedelta(seconds=offset_s) if unit.start_utc else None
        local = start.astimezone(tz).replace(tzinfo=None) if start else None
        day = start.date() if start else None
        windows.append(WindowRow(
            run_id=ctx.run_id, config_fingerprint=ctx.fingerprint,
            recording_id=unit.recording_id, deployment_id=unit.deployment_id,
            channel=channel, window_index=index, offset_s=offset_s, window_s=ctx.window_s,
            duration_s=float(r["duration_s"]), start_utc=start, start_local=local, date=day,
            status=r["status"], padded=bool(r["padded"]), error=error, **quality_fields(r),
            band_low_hz=band_low_hz, band_high_hz=band_high_hz,
        ))
        for p in json.loads(r["predictions"]):
            if not held_by_recording(p.get("high_freq_hz"), unit.sample_rate_hz):
                continue
            predictions.append(PredictionRow(
                run_id=ctx.run_id, model_id=ctx.model_id, config_fingerprint=ctx.fingerprint,
                recording_id=unit.recording_id, deployment_id=unit.deployment_id,
                channel=channel, window_index=index, offset_s=offset_s,
                start_utc=start, start_local=local, date=day,
                task=p["task"], prompt_id=p["prompt_id"], rank=int(p["rank"]),
                answer_text=p["answer_text"], label=p["label"],
                scientific_name=p["scientific_name"], score=float(p["score"]),
                # A call's times move from the window's frame to the recording's.
                call_start_s=offset_s + p["start_s"] if "start_s" in p else None,
                call_end_s=offset_s + p["end_s"] if "end_s" in p else None,
                low_freq_hz=p.get("low_freq_hz"), high_freq_hz=p.get("high_freq_hz"),
                detection_score=p.get("detection_score"),
            ))
    return windows, predictions


def unit_embeddings(unit: Unit, rows: Iterable[dict[str, Any]], ctx: CommitContext
                    ) -> list[EmbeddingRow]:
    """The embeddings rows of one finished unit: one per analysed window and channel.

    A window that failed (also after the model answered it) has none; a vector of the wrong width
    is a bug, refused here before it reaches the catalog.
    """
    if ctx.embedding_dim is None:
        return []
    offsets = {w.index: w.offset_s for w in unit.windows}
    out = []
    for r in sorted(rows, key=lambda r: (int(r["window_index"]), int(r["channel"]))):
        data = r.get("embedding") or b""
        if r["status"] != "ok" or not data:
            continue
        vector = np.frombuffer(data, dtype=np.float32)
        index = int(r["window_index"])
        if vector.size != ctx.embedding_dim:
            raise ValueError(f"{unit.uri} window {index}: embedding of {vector.size} values, "
                             f"expected {ctx.embedding_dim}")
        start = unit.start_utc + timedelta(seconds=offsets[index]) if unit.start_utc else None
        out.append(EmbeddingRow(
            run_id=ctx.run_id, model_id=ctx.model_id, config_fingerprint=ctx.fingerprint,
            recording_id=unit.recording_id, deployment_id=unit.deployment_id,
            channel=int(r["channel"]), window_index=index, offset_s=offsets[index],
            start_utc=start, date=start.date() if start else None, vector=vector,
        ))
    return out
