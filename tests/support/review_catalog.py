"""Small real catalogs for the review tests: real WAV files on disk, rows written through the
catalog's own typed writer (no Prefect, no Ray: the flow tests cover those paths)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from connectors.catalog import Catalog
from connectors.tables import DeploymentRow, PredictionRow, RecordingRow, WindowRow
from tests.support.synth_audio import noise, place, tone, write_wav

RATE_HZ = 16_000
WINDOW_S = 10.0
START = datetime(2024, 6, 1, 3, 0, 0, tzinfo=timezone.utc)
MODEL = "placeholder-v1@none"


def recording_row(recording_id: str, uri: str, duration_s: float, *, size_bytes: int | None = None,
                  mtime: datetime | None = None, channels: int = 1,
                  deployment_id: str = "dep-a", start_utc: datetime = START) -> RecordingRow:
    return RecordingRow(
        recording_id=recording_id, deployment_id=deployment_id, uri=uri,
        object_key=f"{deployment_id}/{Path(uri).name}", size_bytes=size_bytes, etag=None,
        mtime=mtime, duration_s=duration_s, frames=round(duration_s * RATE_HZ),
        sample_rate_hz=RATE_HZ, channels=channels, format="WAV", subtype="PCM_16",
        start_utc=start_utc, tz_name="Europe/London", time_source="filename",
        tz_source="deployment", status="ok", error=None, run_id="run-1", discovered_at=START)


def window_row(recording: RecordingRow, index: int, fingerprint: str, channel: int = 0) -> WindowRow:
    start = recording.start_utc + timedelta(seconds=WINDOW_S * index)
    return WindowRow(
        run_id="run-1", config_fingerprint=fingerprint, recording_id=recording.recording_id,
        deployment_id=recording.deployment_id, channel=channel, window_index=index,
        offset_s=WINDOW_S * index, window_s=WINDOW_S, duration_s=WINDOW_S, start_utc=start,
        start_local=(start + timedelta(hours=1)).replace(tzinfo=None), date=start.date(),
        status="ok", padded=False, error=None)


def prediction_row(window: WindowRow, label: str, score: float, rank: int = 1,
                   scientific_name: str | None = None) -> PredictionRow:
    return PredictionRow(
        run_id="run-1", model_id=MODEL, config_fingerprint=window.config_fingerprint,
        recording_id=window.recording_id, deployment_id=window.deployment_id,
        channel=window.channel, window_index=window.window_index, offset_s=window.offset_s,
        start_utc=window.start_utc, start_local=window.start_local, date=window.date,
        task="classify", prompt_id="placeholder:fft-peak", rank=rank, answer_text=label,
        label=label, scientific_name=scientific_name, score=score)


def write_recording(path: Path, duration_s: float, tones: Sequence[tuple[float, float]] = (),
                    channels: int = 1) -> Path:
    """A WAV of quiet noise with (offset_s, freq_hz) 3-s tones; stereo: the tones on the right."""
    mono = noise(duration_s, RATE_HZ, level_dbfs=-50, seed=3)
    loud = mono.copy()
    for offset_s, freq_hz in tones:
        loud = place(loud, tone(freq_hz, 3.0, RATE_HZ), offset_s, RATE_HZ)
    samples = loud if channels == 1 else np.stack([mono, loud], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, samples, RATE_HZ)
    return path


def local_recording_row(recording_id: str, path: Path, duration_s: float, **kw) -> RecordingRow:
    st = path.stat()
    return recording_row(recording_id, str(path.resolve()), duration_s, size_bytes=st.st_size,
                         mtime=datetime.fromtimestamp(st.st_mtime, timezone.utc), **kw)


@dataclass
class Built:
    results: Path
    source: Path
    recordings: dict[str, RecordingRow]


def scores_by_window(n: int) -> list[float]:
    """Scores spread over (0, 1): window i scores (i + 0.5) / n."""
    return [(i + 0.5) / n for i in range(n)]


def build(tmp: Path, *, fingerprints: Sequence[str] = ("fp1",),
          labels: Callable[[int], Sequence[tuple[str, float]]] | None = None,
          duration_s: float = 60.0) -> Built:
    """dep-a (site marsh-1): one 60-s mono recording (tones at 12 s and 33 s) and one stereo
    recording; every 10-s window gets the answers `labels(window_index)` under each fingerprint
    (default: "wren" with scores spread over (0, 1), and "robin" at 0.9 in windows 1 and 4)."""
    source = tmp / "source"
    mono = write_recording(source / "dep-a" / "20240601_030000.WAV", duration_s,
                           [(12.0, 2000.0), (33.0, 3000.0)])
    stereo = write_recording(source / "dep-a" / "20240601_040000.WAV", duration_s,
                             [(21.0, 1500.0)], channels=2)
    recordings = {
        "rec-mono": local_recording_row("rec-mono", mono, duration_s),
        "rec-stereo": local_recording_row("rec-stereo", stereo, duration_s, channels=2,
                                          start_utc=START + timedelta(hours=1)),
    }
    n = int(duration_s // WINDOW_S)
    spread = scores_by_window(n)

    def default_labels(i: int) -> list[tuple[str, float]]:
        return [("wren", spread[i])] + ([("robin", 0.9)] if i in (1, 4) else [])

    labels = labels or default_labels
    results = tmp / "results"
    with Catalog(results) as catalog:
        catalog.upsert_deployments([DeploymentRow(
            deployment_id="dep-a", site_id="marsh-1", latitude=51.5, longitude=-0.1,
            recorder="AudioMoth 1.2", timezone="Europe/London", start_utc=None, end_utc=None,
            extra=None, updated_run_id="run-1", clock_timezone=None)])
        catalog.register_recordings(list(recordings.values()), [])
        for fp in fingerprints:
            for rec, channel in ((recordings["rec-mono"], 0), (recordings["rec-stereo"], 2)):
                windows = [window_row(rec, i, fp, channel) for i in range(n)]
                predictions = [prediction_row(w, label, score, rank)
                               for w in windows
                               for rank, (label, score) in enumerate(labels(w.window_index), 1)]
                catalog.commit_unit(windows, predictions)
    return Built(results=results, source=source, recordings=recordings)


def reviews_rows(results: Path) -> list[dict]:
    from connectors.catalog import CatalogReader

    with CatalogReader(results) as reader:
        return reader.query("select * from reviews order by reviewed_at, review_id").to_pylist()

