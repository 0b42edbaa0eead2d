"""flows.pipeline.discover on real local files: what the listing skipped reaches Discovery, and each
recording's start time is resolved with its deployment's clock zone, through to the catalog."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import fsspec
import numpy as np

from connectors.catalog import Catalog, CatalogReader
from flows.pipeline.discover import _recording_row, discover, sync_deployments, sync_recordings
from flows.outputs.report import write_report
from tests.support.synth_audio import write_wav


def _silence(path: Path, **metadata) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_wav(path, np.zeros(800, dtype=np.float32), 8000, **metadata)


def test_discovery_keeps_linked_recordings_and_what_it_skipped(tmp_path: Path) -> None:
    root = tmp_path / "survey"
    _silence(tmp_path / "elsewhere" / "20240501_040000.WAV")
    _silence(root / "dep1" / "20240501_000000.WAV")
    (root / "dep1" / "20240501_040000.WAV").symlink_to(tmp_path / "elsewhere" / "20240501_040000.WAV")
    (root / "dep1" / "gone.WAV").symlink_to(tmp_path / "deleted.WAV")
    discovery = discover(str(root), {}, None)
    assert [o.key for o in discovery.objects] == ["dep1/20240501_000000.WAV", "dep1/20240501_040000.WAV"]
    assert [(p.key, p.reason) for p in discovery.skipped] == [("dep1/gone.WAV", "dangling_symlink")]
    assert discovery.empty_warning is None
    only_other = discover(str(root), {}, ("dep2",))
    assert (only_other.objects, only_other.skipped) == ([], [])


def test_deployments_asked_for_that_match_nothing_are_named(tmp_path: Path, caplog) -> None:
    root = tmp_path / "survey"
    _silence(root / "dep1" / "20240501_000000.WAV")
    with caplog.at_level("WARNING", logger="flows.discover"):
        discovery = discover(str(root), {}, ("dep1", "nosuchdep"))
    assert [o.key for o in discovery.objects] == ["dep1/20240501_000000.WAV"]
    assert [r.getMessage() for r in caplog.records] == [f"deployments nosuchdep: no recordings under {root}"]


def test_empty_source_comes_with_a_warning_line(tmp_path: Path) -> None:
    root = tmp_path / "survey"
    (root / "dep1").mkdir(parents=True)
    (root / "dep1" / "notes.txt").write_text("battery swapped")
    discovery = discover(str(root), {}, None)
    assert discovery.objects == []
    assert discovery.empty_warning == (
        f"no recordings under {root}: looked for .wav, .flac, .mp3, .ogg files (any case) at any depth;"
        " skipped 1 other paths (1 not_audio)")


def test_recording_row_reads_the_clock_zone_of_its_deployment(tmp_path: Path) -> None:
    root = tmp_path / "survey"
    _silence(root / "dep1" / "20240501_040000.WAV")
    (root / "deployments.csv").write_text(
        "deployment_id,timezone,clock_timezone\ndep1,America/Denver,\ndep2,America/Denver,UTC-06:00\n")
    discovery = discover(str(root), {}, None)
    (obj,) = discovery.objects
    fs = fsspec.filesystem("file")
    now = datetime.now(timezone.utc)
    row = _recording_row(obj, fs, discovery.deployments["dep1"], "run-1", now)
    assert row.start_utc == datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)  # AudioMoth: UTC
    assert (row.tz_source, row.tz_name) == ("recorder_convention", "America/Denver")
    row = _recording_row(obj, fs, discovery.deployments["dep2"], "run-1", now)
    assert row.start_utc == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert row.tz_source == "clock_timezone"


def test_clock_zones_and_start_times_reach_the_catalog(tmp_path: Path) -> None:
    # The reported bug end to end: an AudioMoth file without comment in a Denver deployment.
    root = tmp_path / "survey"
    _silence(root / "dep1" / "20240501_040000.WAV")
    _silence(root / "dep2" / "20240501_040000.WAV")
    (root / "deployments.csv").write_text(
        "deployment_id,timezone,clock_timezone\ndep1,America/Denver,\ndep2,America/Denver,UTC-6\n")
    discovery = discover(str(root), {}, None)
    results = tmp_path / "results"
    with Catalog(results) as catalog:
        sync_deployments(catalog, discovery, "run-1")
        sync_recordings(catalog, str(root), {}, discovery, "run-1")
    with CatalogReader(results) as reader:
        deployments = reader.query(
            "select deployment_id, timezone, clock_timezone from deployments order by 1").to_pylist()
        recordings = reader.query(
            "select deployment_id, start_utc, tz_source, tz_name from recordings order by 1").to_pylist()
    assert deployments == [
        {"deployment_id": "dep1", "timezone": "America/Denver", "clock_timezone": None},
        {"deployment_id": "dep2", "timezone": "America/Denver", "clock_timezone": "UTC-06:00"},
    ]
    assert [(r["deployment_id"], r["start_utc"], r["tz_source"], r["tz_name"]) for r in recordings] == [
        ("dep1", datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc), "recorder_convention", "America/Denver"),
        ("dep2", datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc), "clock_timezone", "America/Denver"),
    ]


def test_the_report_lists_each_skipped_path_with_reason_and_detail(tmp_path: Path, prefect_server) -> None:
    # prefect_server: the report also publishes a Prefect artifact (the session's test server).
    root = tmp_path / "survey"
    _silence(root / "dep1" / "20240501_000000.WAV")
    (root / "dep1" / "gone.WAV").symlink_to(tmp_path / "deleted.WAV")
    (root / "dep1" / "CONFIG.TXT").write_text("gain: medium")
    discovery = discover(str(root), {}, None)
    results = tmp_path / "results"
    Catalog(results).close()
    write_report(str(results), "run-1", {}, discovery.skipped)
    with (results / "reports" / "run-1" / "skipped.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [
        {"path": str(root / "dep1" / "CONFIG.TXT"), "reason": "not_audio", "detail": ".TXT"},
        {"path": str(root / "dep1" / "gone.WAV"), "reason": "dangling_symlink",
         "detail": str(tmp_path / "deleted.WAV")},
    ]


def test_refused_time_zone_offsets_are_warnings_on_the_recording_and_the_name_answers(tmp_path: Path) -> None:
    """`(UTC+5:75)` in an AudioMoth comment and `+05:75` in a GUANO Timestamp are no offsets: the
    recording keeps its name's time by the recorder convention (07:00Z) and carries the warning."""
    root = tmp_path / "survey"
    _silence(root / "dep1" / "20240501_070000.WAV",
             comment="Recorded at 07:00:00 01/05/2024 (UTC+5:75) by AudioMoth 24E1440360379295 at medium gain.")
    _silence(root / "dep1" / "20240501_080000.WAV",
             guano={"Make": "Wildlife Acoustics", "Timestamp": "2024-05-01T08:00:00+05:75"})
    _silence(root / "dep1" / "20240501_090000.WAV",
             comment="Recorded at 09:00:00 01/05/2024 (UTC+15) by AudioMoth 24E1440360379295 at medium gain.")
    _silence(root / "dep1" / "20240501_100000.WAV",
             comment="Recorded at 12:00:00 01/05/2024 (UTC+2) by AudioMoth 24E1440360379295 at medium gain.")
    discovery = discover(str(root), {}, None)
    results = tmp_path / "results"
    with Catalog(results) as catalog:
        sync_deployments(catalog, discovery, "run-1")
        sync_recordings(catalog, str(root), {}, discovery, "run-1")
    with CatalogReader(results) as reader:
        recordings = reader.query("select object_key, status, start_utc, time_source, tz_source, warnings "
                                  "from recordings order by 1").to_pylist()
    got = {r["object_key"].split("/")[-1]: r for r in recordings}
    for name, hour in (("20240501_070000.WAV", 7), ("20240501_080000.WAV", 8), ("20240501_090000.WAV", 9)):
        r = got[name]
        assert r["status"] == "ok"
        assert r["start_utc"] == datetime(2024, 5, 1, hour, 0, tzinfo=timezone.utc), name
        assert (r["time_source"], r["tz_source"]) == ("filename", "recorder_convention"), name
    assert got["20240501_070000.WAV"]["warnings"] == [
        "metadata_refused: AudioMoth comment offset (UTC+5:75) refused (minutes 75 are not 0-59); "
        "its time is not used"]
    assert got["20240501_080000.WAV"]["warnings"] == [
        "metadata_refused: GUANO Timestamp 2024-05-01T08:00:00+05:75 refused: offset minutes 75 "
        "are not 0-59"]
    assert "(UTC+15) refused (more than 14 hours from UTC)" in got["20240501_090000.WAV"]["warnings"][0]
    # A sound offset still answers, refusing nothing: 10:00 in the name at UTC+2 is 08:00Z.
    good = got["20240501_100000.WAV"]
    assert (good["start_utc"], good["tz_source"]) == (
        datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc), "audiomoth_comment")
    assert not [w for w in good["warnings"] or () if w.startswith("metadata_refused")]
