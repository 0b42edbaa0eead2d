"""A real `dawnchorus run` (Ray, the placeholder model) fills each window's quality from the
samples it decoded: a working recorder's windows are ok, a dead microphone's silent, a card
error's window a dropout, and the effort analysis leaves the failed ones out."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from connectors.catalog import CatalogReader
from tests.support.synth_audio import audiomoth_name, noise, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus run` starts Ray

RATE_HZ = 16_000
START = datetime(2024, 6, 1, 22, 0, tzinfo=timezone.utc)


def test_a_run_measures_every_window(tmp_path):
    dep = tmp_path / "source" / "dep-q"
    dep.mkdir(parents=True)
    write_wav(dep / audiomoth_name(START), noise(20.0, RATE_HZ, level_dbfs=-40.0), RATE_HZ)
    write_wav(dep / audiomoth_name(START + timedelta(minutes=1)),  # an unplugged microphone
              noise(20.0, RATE_HZ, level_dbfs=-95.0, seed=1), RATE_HZ, subtype="PCM_24")
    gap = noise(20.0, RATE_HZ, level_dbfs=-40.0, seed=2)
    gap[RATE_HZ * 12 : RATE_HZ * 13] = 0.0  # a second the card never wrote, in window 1
    write_wav(dep / audiomoth_name(START + timedelta(minutes=2)), gap, RATE_HZ)
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--source", str(tmp_path / "source"),
         "--results", str(results), "--model", "placeholder"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with CatalogReader(results) as reader:
        rows = reader.query("select r.object_key, w.window_index, w.status, w.qc, w.rms_dbfs, "
                            "w.zero_run_s from windows as w join recordings as r "
                            "using (recording_id) order by 1, 2").to_pylist()
        (night,) = reader.analysis("qc_by_night").to_pylist()
        (day,) = reader.analysis("effort_by_day").to_pylist()
    assert [(r["object_key"].split("/")[1], r["window_index"], r["status"], r["qc"])
            for r in rows] == [
        ("20240601_220000.WAV", 0, "ok", "ok"), ("20240601_220000.WAV", 1, "ok", "ok"),
        ("20240601_220100.WAV", 0, "ok", "silent"), ("20240601_220100.WAV", 1, "ok", "silent"),
        ("20240601_220200.WAV", 0, "ok", "ok"), ("20240601_220200.WAV", 1, "ok", "dropout"),
    ]
    assert rows[0]["rms_dbfs"] == pytest.approx(-40.0, abs=0.5)
    assert rows[5]["zero_run_s"] == pytest.approx(1.0)
    assert (night["windows_qc_ok"], night["windows_silent"], night["windows_dropout"]) == (3, 2, 1)
    assert day["hours_analysed"] == pytest.approx(30.0 / 3600)  # 3 of 6 ten-second windows
