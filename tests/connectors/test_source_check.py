"""The source check (connectors/source_check.py) on real files: each deployments.csv mistake an
ecologist makes gives its error or warning, and a clean source gives none.

Every source here is a real folder of real WAV files written with AudioMoth's naming and
comment (tests/synth_audio.py); nothing is mocked.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from connectors.source_check import check_source, format_report, zone_longitude
from connectors.timeparse import resolve_start_time
from tests.support.synth_audio import audiomoth_comment, audiomoth_name, make_deployment, write_wav

START = datetime(2024, 5, 15, 9, 50, tzinfo=timezone.utc)  # 05:50 in New York (EDT)
PA = {"latitude": "40.8", "longitude": "-77.8", "timezone": "America/New_York"}


def _csv(root: Path, header: list[str], rows: list[list[str]]) -> None:
    with (root / "deployments.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _source(tmp_path: Path, deployments: tuple[str, ...] = ("pa-01",)) -> Path:
    root = tmp_path / "source"
    for dep in deployments:
        make_deployment(root, dep, [START, START + timedelta(days=1)], duration_s=2.0,
                        sample_rate_hz=48000)
    return root


def _codes(report, severity: str) -> list[str]:
    return [p.code for p in report.problems if p.severity == severity]


def test_clean_source_has_no_problem_and_summarises_each_deployment(tmp_path):
    root = _source(tmp_path)
    _csv(root, ["deployment_id", "latitude", "longitude", "timezone"],
         [["pa-01", PA["latitude"], PA["longitude"], PA["timezone"]]])
    report = check_source(str(root), model="birdnet", model_rate_hz=48000)
    assert report.problems == []
    (dep,) = report.deployments
    assert dep.files == 2 and dep.sample_rates_hz == (48000,)
    assert dep.first_local == datetime(2024, 5, 15, 5, 50)  # local, EDT
    assert dep.last_local == datetime(2024, 5, 16, 5, 50, 2)
    assert (dep.latitude, dep.longitude, dep.timezone) == (40.8, -77.8, "America/New_York")
    text = "\n".join(format_report(report))
    assert "2024-05-15 05:50 .. 2024-05-16 05:50 local" in text
    assert "0 errors, 0 warnings" in text


def test_time_zone_instead_of_timezone_is_an_error_with_did_you_mean(tmp_path):
    root = _source(tmp_path)
    _csv(root, ["deployment_id", "latitude", "longitude", "time_zone"],
         [["pa-01", PA["latitude"], PA["longitude"], PA["timezone"]]])
    report = check_source(str(root))
    (error,) = report.errors
    assert error.code == "unknown_column"
    assert "'time_zone'" in error.message and "did you mean 'timezone'" in error.message
    # Unchecked, the dawn chorus would sit at 09:50 "local": the summary shows what was read.
    assert report.deployments[0].first_local == datetime(2024, 5, 15, 9, 50)


def test_lat_lon_instead_of_latitude_longitude_are_two_errors(tmp_path):
    root = _source(tmp_path)
    _csv(root, ["deployment_id", "lat", "lon", "timezone"],
         [["pa-01", PA["latitude"], PA["longitude"], PA["timezone"]]])
    messages = [p.message for p in check_source(str(root)).errors]
    assert len(messages) == 2
    assert "did you mean 'latitude'" in messages[0] and "did you mean 'longitude'" in messages[1]


def test_an_unknown_column_with_no_likeness_is_only_a_warning(tmp_path):
    root = _source(tmp_path)
    _csv(root, ["deployment_id", "timezone", "habitat"], [["pa-01", PA["timezone"], "forest"]])
    report = check_source(str(root))
    assert report.errors == []
    (warning,) = report.warnings
    assert warning.code == "unknown_column" and "'habitat'" in warning.message


def test_swapped_coordinates_are_an_error_naming_the_swap(tmp_path):
    root = _source(tmp_path)
    _csv(root, ["deployment_id", "latitude", "longitude", "timezone"],
         [["pa-01", PA["longitude"], PA["latitude"], PA["timezone"]]])
    (error,) = check_source(str(root)).errors
    assert error.code == "coordinates_swapped"
    assert "look swapped" in error.message and "pa-01" in error.where


def test_a_longitude_far_from_its_zone_is_an_error_and_a_bit_far_a_warning(tmp_path):
    root = _source(tmp_path, ("pa-01", "west"))
    # A lost minus sign: 77.8 E is in Asia, not in New York's zone.
    _csv(root, ["deployment_id", "latitude", "longitude", "timezone"],
         [["pa-01", "40.8", "77.8", "America/New_York"],
          # Western China keeps Beijing time: 44 degrees away, real, worth a look.
          ["west", "39.5", "76.0", "Asia/Shanghai"]])
    report = check_source(str(root))
    assert [(p.code, p.severity) for p in report.problems] == [
        ("coordinates_vs_timezone", "error"), ("coordinates_vs_timezone", "warning")]
    assert "pa-01" in report.problems[0].where and "west" in report.problems[1].where


def test_zone_longitudes_follow_standard_offsets():
    assert zone_longitude("America/New_York") == -75.0
    assert zone_longitude("Europe/Berlin") == 15.0
    assert zone_longitude("Asia/Kolkata") == 82.5
    assert zone_longitude("UTC") is None and zone_longitude("Etc/GMT+5") is None


def test_out_of_range_coordinates_are_an_error(tmp_path):
    root = _source(tmp_path)
    _csv(root, ["deployment_id", "latitude", "longitude", "timezone"],
         [["pa-01", "140.8", "-77.8", PA["timezone"]]])
    (error,) = check_source(str(root)).errors
    assert error.code == "bad_metadata" and "outside [-90, 90]" in error.message
    assert error.where.endswith("deployments.csv") and "line 2" in error.message


def test_a_row_that_nearly_names_a_folder_is_an_error_with_did_you_mean(tmp_path):
    root = _source(tmp_path, ("PA-01",))
    _csv(root, ["deployment_id", "timezone"], [["pa_01", PA["timezone"]]])
    report = check_source(str(root))
    (error,) = report.errors
    assert error.code == "unmatched_row" and "did you mean 'PA-01'" in error.message
    assert report.warnings == []  # the folder is named once, in the error


def test_rows_without_folders_and_folders_without_rows_are_warnings(tmp_path):
    root = _source(tmp_path, ("north",))
    _csv(root, ["deployment_id", "timezone"], [["zz-later", PA["timezone"]]])
    (root / "south").mkdir()
    make_deployment(root, "south", [START], duration_s=1.0, sample_rate_hz=48000)
    report = check_source(str(root))
    assert report.errors == []
    assert sorted((p.code, p.where.rsplit("/", 1)[-1]) for p in report.warnings) == [
        ("unmatched_folder", "north"), ("unmatched_folder", "south"),
        ("unmatched_row", "deployments.csv")]


def test_a_384_khz_recording_is_beyond_a_bird_model_band(tmp_path):
    root = tmp_path / "source"
    (root / "bats").mkdir(parents=True)
    write_wav(root / "bats" / "20240515_220000.WAV", np.zeros(38400, np.float32), 384000)
    write_wav(root / "bats" / "20240515_230000.WAV", np.zeros(4800, np.float32), 48000)
    report = check_source(str(root), model="birdnet", model_rate_hz=48000)
    (warning,) = report.warnings
    assert warning.code == "beyond_model_band" and warning.where.endswith("20240515_220000.WAV")
    assert "384 kHz" in warning.message and "up to 24 kHz" in warning.message
    assert report.deployments[0].sample_rates_hz == (48000, 384000)
    # The same recording is fine for a model that hears it.
    assert check_source(str(root), model="bats", model_rate_hz=384000).warnings == []


def test_a_name_three_months_from_its_comment_is_a_time_conflict(tmp_path):
    root = tmp_path / "source"
    (root / "moth").mkdir(parents=True)
    comment = audiomoth_comment(START + timedelta(days=92))
    write_wav(root / "moth" / audiomoth_name(START), np.zeros(4800, np.float32), 48000, comment=comment)
    # Ten seconds apart is within the tolerance.
    write_wav(root / "moth" / audiomoth_name(START + timedelta(hours=1)), np.zeros(4800, np.float32),
              48000, comment=audiomoth_comment(START + timedelta(hours=1, seconds=10)))
    (warning,) = check_source(str(root)).warnings
    assert warning.code == "time_conflict" and warning.where.endswith(audiomoth_name(START))
    assert "92 days" in warning.message and "audiomoth_comment" in warning.message


def test_resolve_start_time_reports_the_disagreement():
    start = resolve_start_time(audiomoth_name(START), audiomoth_comment(START + timedelta(days=92)),
                               None, None)
    assert start.start_utc == START and start.time_source == "filename"
    assert start.conflict_s == 92 * 86400 and start.conflict_source == "audiomoth_comment"
    assert start.conflicting
    same = resolve_start_time(audiomoth_name(START), audiomoth_comment(START), None, None)
    assert same.conflict_s == 0 and not same.conflicting


def test_a_missing_source_is_an_error(tmp_path):
    report = check_source(str(tmp_path / "no-such-folder"))
    (error,) = report.errors
    assert error.code == "source" and "does not exist" in error.message


def test_a_run_stops_on_the_first_error_in_one_line_naming_how_many_more(tmp_path):
    import pytest

    from connectors.errors import ConfigError
    from connectors.source_check import check_listing

    root = _source(tmp_path)
    _csv(root, ["deployment_id", "lat", "lon", "time_zone"],
         [["pa-01", PA["latitude"], PA["longitude"], PA["timezone"]]])
    checked = check_listing(str(root))
    assert [o.deployment_id for o in checked.objects] == ["pa-01", "pa-01"]
    with pytest.raises(ConfigError) as caught:
        checked.raise_errors()
    message = str(caught.value)
    assert "\n" not in message and "did you mean 'latitude'" in message
    assert f"and 2 more errors: dawnchorus check --source {root} lists them" in message
    # A clean source passes.
    _csv(root, ["deployment_id", "timezone"], [["pa-01", PA["timezone"]]])
    check_listing(str(root)).raise_errors()
