"""Crash-safe resume: kill a run mid-way (SIGKILL, the driver and its Ray cluster), run again, and
every window ends up in the catalog exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.catalog import Catalog, CatalogReader
from flows.pipeline.prefect_flows import nightly
from flows.pipeline.settings import RunSettings
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]

DURATION_S = 600.0  # 60 windows per recording
RECORDINGS = 3


def committed_windows(results: Path) -> int:
    if not (results / "catalog.sqlite").exists():
        return 0
    try:
        with CatalogReader(results) as catalog:
            return catalog.query("select count(*) as n from windows").to_pylist()[0]["n"]
    except Exception:  # the catalog may be mid-creation
        return 0


def test_a_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    from prefect.settings import PREFECT_API_URL

    starts = [datetime(2024, 6, 1, h, 0, tzinfo=timezone.utc) for h in range(RECORDINGS)]
    make_deployment(tmp_path / "source", "dep-r", starts, DURATION_S, 8_000,
                    events={0: [(100.0, 5.0, 1000.0)]})
    results = tmp_path / "results"
    args = ["--source", str(tmp_path / "source"), "--results", str(results),
            "--model", "placeholder", "--windows-per-unit", "2", "--batch-size", "2",
            "--commit-interval-s", "0"]
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while committed_windows(results) < 4 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
        proc.wait()
    before = committed_windows(results)
    total = RECORDINGS * int(DURATION_S // 10)
    assert 0 < before < total, f"interrupt landed at {before} of {total} windows"
    assert before % 2 == 0, "a unit (2 windows) was half committed"

    summary = nightly(RunSettings(source=str(tmp_path / "source"), results=str(results),
                                  model="placeholder", windows_per_unit=2, batch_size=2))
    assert summary["status"] == "completed"
    assert summary["windows"] == total - before
    with CatalogReader(results) as catalog:
        counts = catalog.query("""
            select count(*) as windows, count(distinct (recording_id, window_index)) as distinct_windows
            from windows""").to_pylist()[0]
        preds = catalog.query("""
            select count(*) as n from predictions where task = 'detect'""").to_pylist()[0]["n"]
        runs = catalog.query(
            "select status, interrupted_at, finished_at, pid from runs order by started_at"
        ).to_pylist()
    assert counts == {"windows": total, "distinct_windows": total}
    assert preds == total
    # The killed run is told apart from one in progress: the next run found it dead and marked
    # it interrupted, with when it noticed; the resuming run completed.
    assert [r["status"] for r in runs] == ["interrupted", "completed"]
    assert runs[0]["interrupted_at"] is not None and runs[0]["finished_at"] is None
    assert runs[0]["pid"] == proc.pid and runs[1]["pid"] == os.getpid()
