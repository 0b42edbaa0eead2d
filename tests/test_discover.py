"""flows.discover on real local files: what the listing skipped reaches Discovery, and each
recording's start time is resolved with its deployment's clock zone. (Registering in the catalog
is covered by the flow tests.)"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import fsspec
import numpy as np

from flows.discover import _recording_row, discover
from tests.synth_audio import write_wav


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
    assert row["start_utc"] == datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)  # AudioMoth: UTC
    assert (row["tz_source"], row["tz_name"]) == ("recorder_convention", "America/Denver")
    row = _recording_row(obj, fs, discovery.deployments["dep2"], "run-1", now)
    assert row["start_utc"] == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert row["tz_source"] == "clock_timezone"
