"""The privacy gate's marks in the pipeline's stages, without Ray: the model stage runs the speech
detector on the windows it decoded, the driver turns its columns into `speech_marks` rows that
commit with their windows, and `window_speech` says "not checked" for windows committed without
marks (a catalog written before the gate). With the real clips, a deployment holding a LibriSpeech
reading, bird song, rain and music gets exactly the reading's windows marked."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

from connectors.catalog import Catalog, CatalogReader
from flows.pipeline.discover import discover, sync_deployments, sync_recordings
from flows.pipeline.plan import plan_units
from flows.pipeline.speech import unit_speech_marks
from flows.pipeline.stages import CommitContext, DecodeOptions, Predictor, decode_unit, unit_rows
from tests.support.synth_audio import audiomoth_name, noise, place, tone, write_wav

RATE_HZ = 48_000
WINDOW_S = 3.0
START = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)
TASKS = ("detect", "classify")
CLIPS = {  # file -> is speech (the gate's check: speech, bird song, rain, music)
    "5703-47212-0000.ogg": True,
    "birds_10s.wav": False,
    "Recording_1_Segment_07-snippet.wav": False,
    "rain_inspectorj_401275.flac": False,
    "nri-SensationJazz.mp3": False,
}


def _batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0] if k != "audio"}
    batch["audio"] = np.stack([r["audio"] for r in rows])  # (B, S)
    return batch


def analyse(source, results, *, marks: bool = True, model: str = "placeholder") -> None:
    """Discover, plan, decode, answer and commit every unit, as a run does (minus Ray)."""
    found = discover(str(source), {}, None)
    with Catalog(results) as catalog:
        sync_deployments(catalog, found, "run-1")
        sync = sync_recordings(catalog, str(source), {}, found, "run-1")
        units = plan_units(catalog, sync.current_ids, fingerprint="fp", window_s=WINDOW_S,
                           hop_s=WINDOW_S, tail="pad", channel_policy="mean",
                           windows_per_unit=100, retry_failed=False)
        options = DecodeOptions(str(source), {}, WINDOW_S, RATE_HZ, "mean")
        predictor = Predictor(model, {"sample_rate_hz": RATE_HZ} if model == "placeholder" else {},
                              TASKS)
        ctx = CommitContext("run-1", "fp", "placeholder@x", WINDOW_S)
        for unit in units:
            out = predictor(_batch(decode_unit(unit.as_item(), options)))
            rows = [{k: out[k][i] for k in out} for i in range(len(out["unit_id"]))]
            windows, predictions = unit_rows(unit, rows, ctx)
            speech = unit_speech_marks(unit, rows, "run-1", "fp", WINDOW_S) if marks else []
            catalog.commit_units([(windows, predictions, [], speech)])


def window_speech(results) -> list[dict[str, Any]]:
    with CatalogReader(results) as reader:
        return reader.query(
            "select r.object_key, w.window_index, w.speech_check, w.speech_s, w.detector "
            "from window_speech w join recordings r using (recording_id) "
            "order by r.object_key, w.window_index").to_pylist()


def test_tones_and_noise_are_checked_and_not_marked(tmp_path):
    samples = place(noise(12.0, RATE_HZ, level_dbfs=-40), tone(2000.0, 2.0, RATE_HZ), 4.0, RATE_HZ)
    (tmp_path / "src" / "dep-a").mkdir(parents=True)
    write_wav(tmp_path / "src" / "dep-a" / audiomoth_name(START), samples, RATE_HZ)
    analyse(tmp_path / "src", tmp_path / "results")
    rows = window_speech(tmp_path / "results")
    assert len(rows) == 4
    assert {r["speech_check"] for r in rows} == {"no speech"}
    assert all(r["detector"].startswith("silero-vad ") for r in rows)


def test_windows_committed_without_marks_say_not_checked(tmp_path):
    (tmp_path / "src" / "dep-a").mkdir(parents=True)
    write_wav(tmp_path / "src" / "dep-a" / audiomoth_name(START), noise(6.0, RATE_HZ), RATE_HZ)
    analyse(tmp_path / "src", tmp_path / "results", marks=False)
    rows = window_speech(tmp_path / "results")
    assert [r["speech_check"] for r in rows] == ["not checked", "not checked"]
    assert all(r["speech_s"] is None for r in rows)


@pytest.mark.parametrize("model", ["placeholder", "birdnet"])
def test_a_deployment_of_real_speech_bird_song_rain_and_music(tmp_path, clips_dir, model):
    """With BirdNET its Human vocal class votes too (it scores 0.51 on a jazz window)."""
    for name in CLIPS:
        (tmp_path / "src" / "dep-a").mkdir(parents=True, exist_ok=True)
        shutil.copy(clips_dir / name, tmp_path / "src" / "dep-a" / name)
    analyse(tmp_path / "src", tmp_path / "results", model=model)
    rows = window_speech(tmp_path / "results")
    by_file: dict[str, set[str]] = {}
    for r in rows:
        by_file.setdefault(r["object_key"].split("/")[-1], set()).add(r["speech_check"])
    assert by_file == {name: {"speech" if speech else "no speech"} for name, speech in CLIPS.items()}
    if model == "birdnet":
        with CatalogReader(tmp_path / "results") as reader:
            scores = reader.query("select count(model_speech_score) as n, max(model_speech_score) "
                                  "as top from speech_marks").to_pylist()[0]
        assert scores["n"] == len(rows) and 0.3 < scores["top"] < 0.7
