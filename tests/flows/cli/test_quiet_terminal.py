"""A `dawnchorus run` at the default verbosity prints its header, one progress bar and the summary,
and nothing else: no C++ line from Ray's core worker or LiteRT, no Prefect banner, no Python
warning (they are in the run's log file); `-v` shows them. The process runs as a user starts it
(a subprocess, its stdout and stderr both captured at the file-descriptor level), with BirdNET
(LiteRT) and coordinates, so the location filter loads BirdNET's meta-model in the driver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # `dawnchorus run` subprocesses start Ray

START = datetime(2024, 5, 15, 9, 30, tzinfo=timezone.utc)  # 05:30 EDT


def _deployment(root):
    make_deployment(root, "dep-a", [START], 30.0, 48_000,
                    events={0: [(4.0, 2.0, 2500.0), (16.0, 2.0, 3500.0)]})
    (root / "deployments.csv").write_text(
        "deployment_id,site_id,latitude,longitude,timezone\n"
        "dep-a,powdermill,40.16,-79.27,America/New_York\n", encoding="utf-8")


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RAY_ADDRESS"))}
    env.update(RAY_USAGE_STATS_ENABLED="0", DO_NOT_TRACK="1", PYTHONWARNINGS="default")
    return env


def _run(tmp_path, *flags):
    source, results = tmp_path / "source", tmp_path / "results"
    if not source.exists():
        _deployment(source)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", *flags, "run", "--source", str(source), "--results",
         str(results), "--model", "birdnet"],
        env=_env(), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    return proc, source, results


def test_default_verbosity_prints_the_header_the_bar_and_the_summary_only(tmp_path):
    proc, source, results = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stderr == "", proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    header = [f"dawnchorus run: {source} -> {results}"]
    header_re = [r"\s+model\s+\S+", r"\s+recordings\s+1 new, 0 changed",
                 r"\s+planned\s+\d+ windows, [\d.]+ audio hours",
                 r"\s+filters\s+detection threshold 0\.5, location filter on .*"]
    summary_re = [r"\d+ detections? of \d+ species at \d+ sites?, threshold 0\.5(; \d+ species "
                  r"hidden by the species filters)?",
                  r"completed: \d+ windows committed \(0 failed\), \d+ predictions in \d+ s",
                  r"\s+report\s+\S+index\.html", r"\s+log\s+\S+\.log"]
    assert lines[0] == header[0], lines
    for line, pattern in zip(lines[1:5], header_re):
        assert re.fullmatch(pattern, line), (line, pattern)
    bar = lines[5]
    assert bar.startswith("windows") and "audio h/h" in bar and bar.rstrip().endswith("done"), bar
    planned = re.search(r"planned\s+(\d+) windows", lines[3]).group(1)
    assert re.search(rf"\b{planned}/{planned}\b", bar), bar  # the bar reached every window
    for line, pattern in zip(lines[6:], summary_re):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert len(lines) == 6 + len(summary_re), lines
    # What stayed off the terminal is in the run's log file.
    log_text = next((results / "logs").glob("*.log")).read_text(encoding="utf-8")
    assert "XNNPACK" in log_text  # LiteRT's C++ line, from fd 2 of the driver


def test_verbose_shows_the_libraries(tmp_path):
    proc, _, results = _run(tmp_path, "-v")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "XNNPACK" in proc.stderr  # LiteRT's line reaches the terminal with -v
    assert "DEBUG" in proc.stderr
