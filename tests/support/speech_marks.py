"""Speech marks for the privacy gate's tests: committed through the catalog's own writer, as a run
commits them beside its windows (`flows.pipeline.speech`)."""

from __future__ import annotations

from typing import Sequence

from connectors.catalog import Catalog
from connectors.tables import SpeechMarkRow, WindowRow


def mark(window: WindowRow, speech: bool = True) -> SpeechMarkRow:
    return SpeechMarkRow(
        run_id=window.run_id, config_fingerprint=window.config_fingerprint,
        recording_id=window.recording_id, deployment_id=window.deployment_id,
        channel=window.channel, window_index=window.window_index, offset_s=window.offset_s,
        window_s=window.window_s, date=window.date, speech=speech,
        speech_s=2.5 if speech else 0.0, detector_max_prob=0.99 if speech else 0.1,
        model_speech_score=None, detector="test")


def commit_marks(results, windows: Sequence[WindowRow], speech: bool = True) -> None:
    with Catalog(results) as catalog:
        catalog.commit_units([([], [], [], [mark(w, speech) for w in windows])])


def set_gate(results, on: bool) -> None:
    with Catalog(results) as catalog:
        catalog.change_settings({"speech_gate": "on" if on else "off"}, changed_by="test")
