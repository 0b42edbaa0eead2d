"""Issue 18 on a real `dawnchorus run` with BirdNET: what the source check and the filters find
is said, and kept.

The source is a Wytham Woods (UK) deployment holding opensoundscape's one-minute Pennsylvania
dawn chorus, where BirdNET hears Wood Thrush at 0.99 and more: an American species the location
filter hides in Oxfordshire in May. Beside it, a 384 kHz recording (ultrasonic for BirdNET) and
a recording whose AudioMoth comment is three months from its file name.
"""

from __future__ import annotations

import csv
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from connectors.catalog import CatalogReader
from tests.support.cli_run import dawnchorus
from tests.support.synth_audio import audiomoth_comment, audiomoth_name, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus run` starts Ray

NAME_TIME = datetime(2018, 5, 4, 5, 0, tzinfo=timezone.utc)



@pytest.fixture(scope="module")
def wytham_run(tmp_path_factory, clips_dir):
    tmp_path = tmp_path_factory.mktemp("silent")
    source = tmp_path / "source"
    dep = source / "wytham"
    dep.mkdir(parents=True)
    shutil.copy(clips_dir / "opensoundscape_1min.wav", dep / "opensoundscape_1min.wav")
    write_wav(dep / "20180504_220000.WAV", np.zeros(384_000, np.float32), 384_000)  # 1 s
    write_wav(dep / audiomoth_name(NAME_TIME), np.zeros(48_000, np.float32), 48_000,
              comment=audiomoth_comment(NAME_TIME + timedelta(days=92)))
    with (source / "deployments.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["deployment_id", "site_id", "latitude", "longitude", "timezone"])
        writer.writerow(["wytham", "wytham", "51.7736", "-1.3380", "Europe/London"])
    results = tmp_path / "results"
    proc = dawnchorus("run", "--source", str(source), "--results", str(results),
                      home=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results, proc.stdout


def test_the_header_names_the_filters_and_the_source_warnings(wytham_run):
    results, out = wytham_run
    header = out.split("windows", 1)[0] + out.split("\n  planned", 1)[1].split("\n", 3)[2]
    assert "  filters     detection threshold 0.5, location filter on (1 of 1 deployments" in out
    assert "20180504_220000.WAV: recorded at 384 kHz" in out
    assert "start times disagree: the audiomoth_comment says 92 days, 0:00:00 later" in out
    with CatalogReader(results) as reader:
        (run,) = reader.query("select warnings from runs").to_pylist()
        marked = reader.query("select object_key, warnings, time_conflict_s from recordings "
                              "where warnings is not null order by object_key").to_pylist()
    assert len(run["warnings"]) == 2 and all(w.startswith("warning: ") for w in run["warnings"])
    assert [m["object_key"] for m in marked] == ["wytham/20180504_050000.WAV",
                                                 "wytham/20180504_220000.WAV"]
    assert marked[0]["time_conflict_s"] == 92 * 86400 and marked[1]["time_conflict_s"] is None
    assert marked[0]["warnings"][0].startswith("time_conflict: ")
    assert marked[1]["warnings"][0].startswith("beyond_model_band: ")
    assert header  # the warnings come before the progress bar's first line


def test_a_location_filtered_strong_species_is_named_everywhere(wytham_run):
    results, out = wytham_run
    summary = out.split("windows committed", 1)[1]
    assert "strong predictions (score >= 0.5) hidden by filters" in summary
    assert re.search(r"Wood Thrush \(Hylocichla mustelina\) at wytham: best (1\.000|0\.99\d) in "
                     r"\d+ windows, location filter", summary), summary
    assert "location filter: BirdNET occurrence" in summary
    report = Path(summary.split("report   ", 1)[1].split()[0])
    md = (report.parent / "summary.md").read_text(encoding="utf-8")
    hidden_md = md.split("## Strong predictions hidden by filters", 1)[1].split("\n## ", 1)[0]
    assert "| wytham | Wood Thrush | Hylocichla mustelina | location |" in hidden_md
    assert "Wood Thrush" in report.read_text(encoding="utf-8").split(
        "Strong predictions hidden by filters", 1)[1].split("<h2>", 1)[0]
    sql = "select max(score) as best from detections where label = 'Wood Thrush'"
    with CatalogReader(results) as reader:
        assert reader.query(sql).to_pylist() == [{"best": None}]
    shown = dawnchorus("query", "--results", str(results), "--location-threshold", "0",
                       "--format", "csv", sql, home=results.parent)
    assert shown.returncode == 0, shown.stderr
    assert float(shown.stdout.splitlines()[1]) >= 0.99


def test_the_floor_holds_for_every_stored_classify_row(wytham_run):
    results, _ = wytham_run
    with CatalogReader(results) as reader:
        rows = reader.query("select count(*) as n, min(score) as lowest, "
                            "max(rank) as deepest from predictions where task = 'classify'"
                            ).to_pylist()[0]
        per_window = reader.query(
            "select max(n) as most from (select count(*) as n from predictions "
            "where task = 'classify' and score > 0.5 group by recording_id, window_index)"
        ).to_pylist()[0]
    assert rows["n"] > 0 and rows["lowest"] >= 0.1
    assert per_window["most"] >= 4  # the chorus's window with four species above 0.5
