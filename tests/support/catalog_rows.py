"""Typed catalog rows for catalog tests: a recording and units of windows with predictions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connectors.tables import PredictionRow, RecordingRow, WindowRow

FINGERPRINT = "fp-test"
MODEL_ID = "test-model@0"
SPECIES = ("Turdus merula", "Erithacus rubecula", "Parus major")


def recording(recording_id: str, deployment_id: str, start_utc: datetime, duration_s: float,
              run_id: str = "run-0") -> RecordingRow:
    return RecordingRow(
        recording_id=recording_id, deployment_id=deployment_id,
        uri=f"/audio/{deployment_id}/{recording_id}.wav", object_key=f"{deployment_id}/{recording_id}.wav",
        size_bytes=1, etag=None, mtime=None, duration_s=duration_s, frames=int(duration_s * 48_000),
        sample_rate_hz=48_000, channels=1, format="WAV", subtype="PCM_16", start_utc=start_utc,
        tz_name="UTC", time_source="filename", tz_source="filename", status="ok", error=None,
        run_id=run_id, discovered_at=start_utc,
    )


def unit(rec: RecordingRow, first: int, count: int, *, window_s: float = 3.0, run_id: str = "run-0"
         ) -> tuple[list[WindowRow], list[PredictionRow]]:
    """`count` windows from window `first`, each with a detect and three classify answers."""
    windows, predictions = [], []
    for index in range(first, first + count):
        offset_s = index * window_s
        start = rec.start_utc + timedelta(seconds=offset_s)
        common = dict(run_id=run_id, config_fingerprint=FINGERPRINT, recording_id=rec.recording_id,
                      deployment_id=rec.deployment_id, channel=0, window_index=index,
                      offset_s=offset_s, start_utc=start, start_local=start.replace(tzinfo=None),
                      date=start.date())
        windows.append(WindowRow(**common, window_s=window_s, duration_s=window_s, status="ok",
                                 padded=False, error=None))
        predictions.append(PredictionRow(**common, model_id=MODEL_ID, task="detect",
                                         prompt_id="detect", rank=1, answer_text="animal",
                                         label="animal", scientific_name=None,
                                         score=(index % 10) / 10))
        for rank, name in enumerate(SPECIES, start=1):
            predictions.append(PredictionRow(**common, model_id=MODEL_ID, task="classify",
                                             prompt_id="species", rank=rank, answer_text=name,
                                             label=name, scientific_name=name,
                                             score=((index + rank) % 10) / 10))
    return windows, predictions


DAY = datetime(2024, 6, 1, 22, 0, tzinfo=timezone.utc)
