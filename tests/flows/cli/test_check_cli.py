"""`dawnchorus check` and the check `dawnchorus run` performs first: every deployments.csv
mistake gives its error or warning; an error stops `run` with exit 2, one line, in under 3 s,
with nothing created under the results (no Ray, no catalog, no lock, no logs). Real processes,
real files."""

from __future__ import annotations

import csv
import resource
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.support.synth_audio import make_deployment, write_wav

START = datetime(2024, 5, 15, 9, 50, tzinfo=timezone.utc)
GOOD = ["pa-01", "40.8", "-77.8", "America/New_York"]


def dawnchorus(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI; its result and the CPU seconds it took. CPU time, not wall time: on this
    shared 2-core machine the load average reaches 40 and wall time measures the neighbours
    (a refused run costs ~0.7 CPU s and ~1 s of wall time on an idle machine); Ray's start
    alone would cost several CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, cpu_s


def source(tmp_path: Path, header: list[str], rows: list[list[str]], folder: str = "pa-01") -> Path:
    root = tmp_path / "source"
    make_deployment(root, folder, [START], duration_s=2.0, sample_rate_hz=48000)
    with (root / "deployments.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return root


HEADER = ["deployment_id", "latitude", "longitude", "timezone"]
MISTAKES = {
    "time_zone": (["deployment_id", "latitude", "longitude", "time_zone"], [GOOD], "pa-01",
                  "unknown column 'time_zone': did you mean 'timezone'?"),
    "lat_lon": (["deployment_id", "lat", "lon", "timezone"], [GOOD], "pa-01",
                "unknown column 'lat': did you mean 'latitude'?"),
    "unmatched_id": (HEADER, [GOOD], "PA_01",
                     "deployment_id 'pa-01' matches no folder: did you mean 'PA_01'?"),
    "swapped": (HEADER, [["pa-01", "-77.8", "40.8", "America/New_York"]], "pa-01",
                "latitude -77.8 and longitude 40.8 look swapped"),
    "out_of_range": (HEADER, [["pa-01", "40.8", "-277.8", "America/New_York"]], "pa-01",
                     "longitude -277.8 is outside [-180, 180]"),
    "against_zone": (HEADER, [["pa-01", "40.8", "77.8", "America/New_York"]], "pa-01",
                     "longitude 77.8 is 153 degrees from the time zone"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_is_an_error_in_check_and_stops_run_at_once(tmp_path, mistake):
    header, rows, folder, expected = MISTAKES[mistake]
    root = source(tmp_path, header, rows, folder)
    checked, _ = dawnchorus("check", "--source", str(root))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert expected in checked.stdout and "error:" in checked.stdout
    results = tmp_path / "results"
    ran, seconds = dawnchorus("run", "--source", str(root), "--results", str(results))
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert seconds < 3.0
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith("dawnchorus: error:") and expected in line
    assert not results.exists()  # no catalog, data, logs or run.lock


def test_check_prints_each_deployment_and_warnings_without_failing(tmp_path):
    root = source(tmp_path, HEADER + ["habitat"], [GOOD + ["oak forest"]])
    write_wav(root / "pa-01" / "20240515_220000.WAV", np.zeros(38400, np.float32), 384000)
    checked, _ = dawnchorus("check", "--source", str(root))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    out = checked.stdout
    assert "  pa-01\n" in out and "files        2" in out
    assert "time         2024-05-15 05:50 .. 2024-05-15 18:00 local" in out
    assert "sample rate  48 kHz, 384 kHz" in out
    assert "time zone    America/New_York" in out and "coordinates  40.8, -77.8" in out
    assert "0 errors, 2 warnings" in out
    assert "warning:" in out and "unknown column 'habitat'" in out
    assert "20240515_220000.WAV: recorded at 384 kHz" in out


def test_check_uses_the_models_band_and_lowest_rate_with_its_options(tmp_path):
    """BatDetect2 (10-120 kHz, recordings of 240 kHz or more by default): the 48 kHz file is
    named as too slow, the 384 kHz one is not beyond its band; a lowered floor is respected."""
    root = source(tmp_path, HEADER, [GOOD])
    write_wav(root / "pa-01" / "20240515_220000.WAV", np.zeros(38400, np.float32), 384000)
    checked, _ = dawnchorus("check", "--source", str(root), "--model", "batdetect2")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "below the 240 kHz" in checked.stdout and "0 errors, 1 warnings" in checked.stdout
    assert "20240515_220000.WAV: recorded at 384 kHz" not in checked.stdout
    lowered, _ = dawnchorus("check", "--source", str(root), "--model", "batdetect2",
                            "--model-option", "min_recording_rate_hz=48000")
    assert lowered.returncode == 0 and "0 errors, 0 warnings" in lowered.stdout, lowered.stdout


def test_a_missing_source_stops_run_before_anything_exists(tmp_path):
    results = tmp_path / "results"
    ran, seconds = dawnchorus("run", "--source", str(tmp_path / "sesaon-1"), "--results", str(results))
    assert ran.returncode == 2 and seconds < 3.0
    assert "does not exist" in ran.stderr and not results.exists()
