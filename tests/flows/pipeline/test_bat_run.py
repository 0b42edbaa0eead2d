"""Bats end to end (issue 23) on real `dawnchorus run`s (Ray, the placeholder model): calls
planted in a 384 kHz deployment come back as rows with their own boxes, `dawnchorus query
bat_passes` counts the passes a hand count gives, the Raven export boxes the planted calls, a
48 kHz recording fails with its reason while the run goes on, and a bird-rate run over the same
ultrasonic audio warns and records that it heard only its own band."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.catalog import CatalogReader
from flows.outputs.exports.raven import read_selection_table
from tests.support.cli_run import dawnchorus
from tests.support.synth_audio import audiomoth_name, chirp, fade, noise, place, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus run` starts Ray

BAT_RATE_HZ = 384_000
START = datetime(2024, 6, 1, 22, 0, tzinfo=timezone.utc)
CALL_S = 0.005  # each call: a 50 -> 40 kHz sweep
FRAME_S = 512 / BAT_RATE_HZ  # the placeholder's STFT frame: a box edge lies within it
#: file start -> call starts (s). Hand count with the 1 s gap: file 1 holds two passes (0.20 to
#: 0.50; then 1.80 and 2.10, since 1.80 is 1.295 s after 0.505 and 2.10 only 0.295 s after
#: 1.805); file 2, a minute later, one more. 3 passes, 6 calls, 2 minutes with a call (22:00, 22:01).
PLANTED = {START: [0.20, 0.35, 0.50, 1.80, 2.10], START + timedelta(minutes=1): [0.40]}
EVENT_OPTIONS = ["events=true", f"sample_rate_hz={BAT_RATE_HZ}", "band_low_hz=10000",
                 "band_high_hz=120000", "min_recording_rate_hz=240000"]



@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bats") / "source"
    dep = root / "cave"
    dep.mkdir(parents=True)
    for start, calls in PLANTED.items():
        audio = noise(3.0, BAT_RATE_HZ, level_dbfs=-60, seed=start.minute)
        for t_s in calls:
            sweep = fade(chirp(50_000, 40_000, CALL_S, BAT_RATE_HZ), 0.0005, BAT_RATE_HZ)
            audio = place(audio, sweep, t_s, BAT_RATE_HZ)
        write_wav(dep / audiomoth_name(start), audio, BAT_RATE_HZ)
    write_wav(dep / audiomoth_name(START + timedelta(minutes=2)),  # too slow for the bat model
              noise(3.0, 48_000, level_dbfs=-60), 48_000)
    return root


@pytest.fixture(scope="module")
def bat_run(source):
    results = source.parent / "results-bats"
    options = [a for o in EVENT_OPTIONS for a in ("--model-option", o)]
    proc = dawnchorus("run", "--source", str(source), "--results", str(results),
                      "--model", "placeholder", *options, "--task", "classify",
                      "--window-s", "1", home=source.parent)
    return results, proc


def test_the_run_goes_on_past_a_recording_too_slow_for_the_model(bat_run):
    results, proc = bat_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    slow = audiomoth_name(START + timedelta(minutes=2))
    assert f"{slow}: recorded at 48 kHz, below the 240 kHz" in proc.stdout  # the run header
    with CatalogReader(results) as reader:
        failed = reader.query("select r.object_key, w.status, w.error from windows as w join "
                              "recordings as r using (recording_id) where r.sample_rate_hz = "
                              "48000").to_pylist()
        analysed = reader.query("select count(*) as n, min(band_low_hz) as low, max(band_high_hz) "
                                "as high from windows where status = 'ok'").to_pylist()
    assert len(failed) == 3 and {f["status"] for f in failed} == {"failed"}
    assert all(f["error"].endswith(f"{slow}: recorded at 48 kHz, below the 240 kHz the model "
                                   "needs to hear its band: not resampled up, not analysed")
               for f in failed)
    assert analysed == [{"n": 6, "low": 10_000.0, "high": 120_000.0}]


def test_every_planted_call_is_a_row_with_its_own_box(bat_run):
    results, _ = bat_run
    with CatalogReader(results) as reader:
        rows = reader.query("select r.start_utc as file_start, p.window_index, p.offset_s, "
                            "p.call_start_s, p.call_end_s, p.low_freq_hz, p.high_freq_hz, "
                            "p.label from predictions as p join recordings as r "
                            "using (recording_id) order by 1, p.call_start_s").to_pylist()
    planted = [(start, t_s) for start, calls in PLANTED.items() for t_s in calls]
    assert len(rows) == len(planted)
    for row, (start, t_s) in zip(rows, planted):
        assert row["file_start"] == start and row["window_index"] == int(t_s)
        assert row["call_start_s"] == pytest.approx(t_s, abs=FRAME_S)
        assert row["call_end_s"] == pytest.approx(t_s + CALL_S, abs=FRAME_S)
        assert 40_000 <= row["low_freq_hz"] < row["high_freq_hz"] <= 50_000
        assert row["label"] == "call 45 kHz"


def test_query_bat_passes_gives_the_hand_count(bat_run):
    results, _ = bat_run
    proc = dawnchorus("query", "--results", str(results), "bat_passes", "--format", "csv",
                      home=results.parent)
    assert proc.returncode == 0, proc.stderr
    (row,) = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert (row["site_id"], row["night_date"], row["label"]) == ("cave", "2024-06-01", "call 45 kHz")
    assert (int(row["passes"]), int(row["calls"]), int(row["activity_minutes"])) == (3, 6, 2)
    assert float(row["effort_hours"]) == pytest.approx(6 / 3600)  # the 48 kHz file's are not
    assert (float(row["band_low_hz"]), float(row["band_high_hz"])) == (10_000.0, 120_000.0)
    merged = dawnchorus("query", "--results", str(results), "bat_passes", "--format", "csv",
                        "--param", "gap_s=2", home=results.parent)
    assert int(next(csv.DictReader(io.StringIO(merged.stdout)))["passes"]) == 2


def test_the_raven_export_boxes_the_planted_calls(bat_run):
    results, _ = bat_run
    out = results.parent / "raven"
    proc = dawnchorus("export", "raven", "--results", str(results), "--out", str(out),
                      home=results.parent)
    assert proc.returncode == 0, proc.stderr
    for start, calls in PLANTED.items():
        (table,) = out.rglob(audiomoth_name(start).rsplit(".", 1)[0] + ".Table.1.selections.txt")
        selections = sorted(read_selection_table(table), key=lambda s: s.begin_s)
        assert len(selections) == len(calls)
        for s, t_s in zip(selections, calls):
            assert s.begin_s == pytest.approx(t_s, abs=FRAME_S)
            assert s.end_s == pytest.approx(t_s + CALL_S, abs=FRAME_S)
            assert 40_000 <= s.low_hz < s.high_hz <= 50_000
            assert s.file_offset_s == int(t_s)  # the window, for a verdict read back


def test_the_csv_export_gives_each_call_its_own_times_and_box(bat_run):
    results, _ = bat_run
    out = results.parent / "csv"
    proc = dawnchorus("export", "csv", "--results", str(results), "--out", str(out),
                      home=results.parent)
    assert proc.returncode == 0, proc.stderr
    with open(out / "detections.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for start, calls in PLANTED.items():
        mine = sorted((r for r in rows if r["File"].endswith(audiomoth_name(start))),
                      key=lambda r: float(r["Start (s)"]))
        assert len(mine) == len(calls)
        for r, t_s in zip(mine, calls):
            assert float(r["Start (s)"]) == pytest.approx(t_s, abs=FRAME_S)
            assert float(r["End (s)"]) == pytest.approx(t_s + CALL_S, abs=FRAME_S)
            assert 40_000 <= float(r["low_freq_hz"]) < float(r["high_freq_hz"]) <= 50_000
            assert 0 < float(r["detection_score"]) <= 1


def test_a_bird_rate_run_over_ultrasound_warns_and_records_its_band(source):
    results = source.parent / "results-birds"
    proc = dawnchorus("run", "--source", str(source), "--results", str(results),
                      "--model", "placeholder", "--window-s", "1", home=source.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    warning = "recorded at 384 kHz (band up to 192 kHz), but the placeholder model hears up to 8 kHz"
    assert proc.stdout.count(warning) == 2  # the run header, one line per 384 kHz file
    report = Path(proc.stdout.split("report   ", 1)[1].split()[0])
    assert warning in (report.parent / "summary.md").read_text(encoding="utf-8")
    with CatalogReader(results) as reader:
        bands = reader.query("select distinct band_low_hz, band_high_hz from windows where "
                             "status = 'ok'").to_pylist()
        (day,) = reader.analysis("effort_by_day").to_pylist()
        passes = reader.analysis("bat_passes").to_pylist()
    assert bands == [{"band_low_hz": 0.0, "band_high_hz": 8_000.0}]
    assert (day["band_low_hz"], day["band_high_hz"]) == (0.0, 8_000.0)
    # Nine analysed seconds, no call located: "no bats", with a band that could not hold them.
    assert [(p["label"], p["passes"], p["band_high_hz"]) for p in passes] == [(None, 0, 8_000.0)]
