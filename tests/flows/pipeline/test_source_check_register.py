"""What a run does with the source check, step by step without Ray: discovery carries the
listing's warnings, registration marks each recording's own (band beyond the model's, start
times that disagree) on the recording, and the header shows them with the filters that are on.
Real files, a real catalog, the real console."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from connectors.catalog import Catalog, CatalogReader
from connectors.errors import ConfigError
from flows.cli.terminal import RunConsole
from flows.pipeline.discover import discover, sync_deployments, sync_recordings
from flows.pipeline.run import filters_line, run_warnings
from flows.pipeline.settings import RunSettings
from tests.support.synth_audio import audiomoth_comment, audiomoth_name, write_wav

NAME_TIME = datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc)


def source(tmp_path, header, row):
    root = tmp_path / "source"
    (root / "wytham").mkdir(parents=True)
    write_wav(root / "wytham" / "20240515_220000.WAV", np.zeros(38_400, np.float32), 384_000)
    write_wav(root / "wytham" / audiomoth_name(NAME_TIME), np.zeros(48_000, np.float32), 48_000,
              comment=audiomoth_comment(NAME_TIME + timedelta(days=92)))
    write_wav(root / "wytham" / audiomoth_name(NAME_TIME + timedelta(hours=1)),
              np.zeros(48_000, np.float32), 48_000,
              comment=audiomoth_comment(NAME_TIME + timedelta(hours=1)))
    with (root / "deployments.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerow(row)
    return root


def test_registration_marks_recordings_and_the_header_says_so(tmp_path):
    root = source(tmp_path, ["deployment_id", "latitude", "longitude", "timezone", "habitat"],
                  ["wytham", "51.77", "-1.34", "Europe/London", "oak"])
    discovery = discover(str(root), {}, None)
    assert [p.code for p in discovery.problems] == ["unknown_column"]
    results = tmp_path / "results"
    with Catalog(str(results)) as catalog:
        sync_deployments(catalog, discovery, "run-1")
        sync = sync_recordings(catalog, str(root), {}, discovery, "run-1", model="birdnet",
                               model_rate_hz=48_000)
    assert sorted(p.code for p in sync.warnings) == ["beyond_model_band", "time_conflict"]
    with CatalogReader(str(results)) as reader:
        marked = {r["object_key"]: r for r in reader.query(
            "select object_key, warnings, time_conflict_s from recordings").to_pylist()}
    assert marked["wytham/20240515_220000.WAV"]["warnings"][0].startswith(
        "beyond_model_band: recorded at 384 kHz")
    conflict = marked[f"wytham/{audiomoth_name(NAME_TIME)}"]
    assert conflict["time_conflict_s"] == 92 * 86400
    assert conflict["warnings"][0].startswith("time_conflict: start times disagree")
    agreeing = marked[f"wytham/{audiomoth_name(NAME_TIME + timedelta(hours=1))}"]
    assert (agreeing["warnings"], agreeing["time_conflict_s"]) == (None, None)

    lines = run_warnings(discovery, sync)
    assert len(lines) == 3 and all(line.startswith("warning: ") for line in lines)
    settings = RunSettings(source=str(root), results=str(results))
    filters = filters_line(settings)
    assert filters.startswith("detection threshold 0.5, location filter on (1 of 1 deployments "
                              "have coordinates; occurrence < 0.03 hidden), no species lists")
    out = io.StringIO()
    console = RunConsole(file=out)
    console.header(source=str(root), results=str(results), model_id="birdnet", recordings_new=3,
                   recordings_changed=0, planned_windows=0, planned_audio_s=0.0,
                   warnings=lines, filters=filters)
    console.stop()
    text = out.getvalue()
    assert f"  filters     {filters}" in text
    assert "recorded at 384 kHz" in text and "92 days" in text and "'habitat'" in text


def test_many_recordings_with_one_warning_are_counted_not_listed(tmp_path):
    from connectors.source_check import Problem
    from flows.pipeline.discover import Discovery, SyncResult

    sync = SyncResult(current_ids=[], warnings=[
        Problem("warning", "beyond_model_band", f"/bats/{i}.WAV", "recorded at 384 kHz")
        for i in range(7)])
    lines = run_warnings(Discovery(objects=[], deployments={}), sync)
    assert len(lines) == 4 and lines[-1] == (
        "warning: 4 more recordings with beyond_model_band (recordings.warnings)")


def test_an_error_stops_discovery(tmp_path):
    root = source(tmp_path, ["deployment_id", "lat", "lon", "timezone"],
                  ["wytham", "51.77", "-1.34", "Europe/London"])
    with pytest.raises(ConfigError, match="did you mean 'latitude'.*and 1 more error"):
        discover(str(root), {}, None)


def test_the_summary_names_what_the_filters_hid():
    out = io.StringIO()
    console = RunConsole(file=out)
    console.summary({"status": "completed", "windows": 20, "hidden_by_filters": [
        {"deployment_id": "wytham", "label": "Wood Thrush", "scientific_name": "Hylocichla mustelina",
         "filter": "location", "best_score": 0.998, "windows": 14,
         "why": "BirdNET occurrence 0.0 at this site in week 18 is below the location filter's 0.03"}]},
        None)
    text = out.getvalue()
    assert "1 strong predictions (score >= 0.5) hidden by filters:" in text
    assert ("Wood Thrush (Hylocichla mustelina) at wytham: best 0.998 in 14 windows, location "
            "filter: BirdNET occurrence 0.0") in text
    assert "dawnchorus query --location-threshold 0" in text
