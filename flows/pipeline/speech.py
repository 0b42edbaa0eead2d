"""The privacy gate's marks (`docs/privacy.md`): which analysed windows hold human speech.

Every model actor runs the speech detector (`naturelm_core.speech.SileroVad`) on the windows it
answers, on the samples already decoded for the model (resampled to 16 kHz in the actor), and
reads the model's own human-voice score where it has one (BirdNET's `Human vocal` class,
`ModelBackend.speech_scores`). A window is marked when either says speech; the mark is committed
with the window, in the same transaction (`speech_marks`). Marks are made whatever the gate
setting: the setting (`RunSettings.speech_gate`, kept in the catalog's `speech_gate` setting)
decides only what is served, so it is no part of the config fingerprint.
"""

from __future__ import annotations

import functools
import logging
import math
from datetime import timedelta
from typing import Any, Iterable

import numpy as np

from connectors.tables import SpeechMarkRow
from flows.outputs.privacy import GATE_SETTING
from naturelm_core.speech import MIN_SPEECH_S, SPEECH_PROB, SileroVad, detector_id

log = logging.getLogger(__name__)

#: A window is marked when the model's own human-voice score reaches this. BirdNET's Human vocal
#: class scored at most 0.011 on the LibriSpeech reading and 0.509 on a jazz window of the real
#: clips (docs/privacy.md), so 0.5 would mark music; 0.7 keeps every non-speech clip unmarked.
MODEL_SPEECH_SCORE = 0.7
#: The columns a `Predictor` batch gains (NaN: not checked).
COLUMNS = ("speech_s", "speech_max_prob", "speech_model_score")


class SpeechMarker:
    """The detector of one model actor, and the rule that turns its numbers into a mark."""

    def __init__(self) -> None:
        self.vad = SileroVad()

    def columns(self, n: int, todo: np.ndarray, audio: np.ndarray | None, valid: np.ndarray | None,
                sample_rate_hz: int, model_scores: np.ndarray | None) -> dict[str, np.ndarray]:
        """The speech columns of a batch of `n` rows; rows `todo` (whose `audio` is given) checked."""
        out = {name: np.full(n, np.nan) for name in COLUMNS}
        if audio is None or not len(todo):
            return out
        for row, result in zip(todo, self.vad.detect(audio, valid, sample_rate_hz)):
            out["speech_s"][row] = result.speech_s
            out["speech_max_prob"][row] = result.max_prob
        if model_scores is not None and len(model_scores) == len(todo):
            out["speech_model_score"][todo] = np.asarray(model_scores, np.float64)
        return out


@functools.lru_cache(maxsize=1)
def describe_detector() -> str:
    """The detector and the rule, as each mark records them."""
    return (f"{detector_id()}: >= {MIN_SPEECH_S} s of frames at p >= {SPEECH_PROB}; or the "
            f"model's human-voice score >= {MODEL_SPEECH_SCORE}")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def unit_speech_marks(unit: Any, rows: Iterable[dict[str, Any]], run_id: str, fingerprint: str,
                      window_s: float) -> list[SpeechMarkRow]:
    """The marks of one finished unit: one per window still ok that the detector checked."""
    offsets = {w.index: w.offset_s for w in unit.windows}
    detector = describe_detector()
    out = []
    for r in sorted(rows, key=lambda r: (int(r["window_index"]), int(r["channel"]))):
        speech_s = _number(r.get("speech_s"))
        if r["status"] != "ok" or speech_s is None:
            continue
        index = int(r["window_index"])
        model_score = _number(r.get("speech_model_score"))
        start = unit.start_utc + timedelta(seconds=offsets[index]) if unit.start_utc else None
        out.append(SpeechMarkRow(
            run_id=run_id, config_fingerprint=fingerprint, recording_id=unit.recording_id,
            deployment_id=unit.deployment_id, channel=int(r["channel"]), window_index=index,
            offset_s=offsets[index], window_s=window_s, date=start.date() if start else None,
            speech=speech_s >= MIN_SPEECH_S - 1e-9
            or (model_score is not None and model_score >= MODEL_SPEECH_SCORE),
            speech_s=speech_s, detector_max_prob=_number(r.get("speech_max_prob")) or 0.0,
            model_speech_score=model_score, detector=detector,
        ))
    return out


def record_gate(catalog: Any, on: bool, run_id: str) -> None:
    """Keep the run's gate setting in the catalog (what the review page, exports, reports and
    `similar` read), recorded as a setting change when it changes."""
    value = "on" if on else "off"
    if catalog.setting(GATE_SETTING) != value:
        catalog.change_settings({GATE_SETTING: value}, changed_by=run_id)
        log.log(logging.WARNING if not on else logging.INFO,
                "privacy gate %s: audio of windows marked as human speech is %s", value,
                "served like any other" if not on else "withheld from review, clips, Camtrap DP "
                "media and similar")
