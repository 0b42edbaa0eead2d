"""`dawnchorus demo` as a new user meets it: started from an empty folder with nothing beside it,
it analyses the shipped field recordings with BirdNET and names at least five of the labelled
species right, by the demo's own truth table; it prints local times, effort per night, the
report's path and the closing "N of M named right", the first detection of each species in
minutes from sunrise, and no line from a library."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus demo` subprocess starts Ray

#: Lines a library would print (Ray's C++ core worker, LiteRT, Prefect, Python warnings).
FOREIGN = re.compile(r"XNNPACK|core_worker|\[\d{4}-\d\d-\d\d .*\] \[|Prefect|Warning:|"
                     r"Traceback|INFO|DEBUG", re.IGNORECASE)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("newcomer")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RAY_ADDRESS"))}
    env.update(RAY_USAGE_STATS_ENABLED="0", DO_NOT_TRACK="1")
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--out", "demo"], cwd=home,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home / "demo", proc


def _detections(results: Path) -> list[tuple]:
    """(file key, window start, window end, scientific name) of every detection, read from the
    catalog with plain DuckDB SQL (not the demo's own comparison)."""
    from connectors.catalog import CatalogReader

    with CatalogReader(str(results)) as reader:
        return reader.query(
            "select r.object_key, d.offset_s, d.end_offset_s, d.scientific_name "
            "from detections d join recordings r using (recording_id)").to_pylist()


def test_at_least_five_labelled_species_are_named_right(demo):
    out, proc = demo
    with open(out / "truth.csv", newline="", encoding="utf-8") as fh:
        truth = list(csv.DictReader(fh))
    assert len(truth) >= 6
    detections = _detections(out / "results")
    right = set()
    for row in truth:
        start, end = float(row["offset_s"]), float(row["offset_s"]) + float(row["duration_s"])
        if any(d["object_key"] == row["key"] and d["scientific_name"] == row["scientific_name"]
               and d["offset_s"] < end and d["end_offset_s"] > start for d in detections):
            right.add(row["scientific_name"])
    # Seven of nine on this machine (ATTRIBUTION.md); the issue asks for at least five.
    assert len(right) >= 5, (right, truth)
    closing = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1]
    assert closing == f"{len(right)} of {len(truth)} named right.", closing


def test_it_prints_local_times_effort_and_the_report_and_nothing_foreign(demo):
    out, proc = demo
    text = proc.stdout
    assert proc.stderr == "", proc.stderr[-3000:]
    for line in text.splitlines():
        assert not FOREIGN.search(line), line
    assert "Sandhill Crane" in text and "Wood Thrush" in text
    # local times at each site: the Yellowstone dawn recordings are in the early morning there
    assert re.search(r"yellowstone-lamar .*Sandhill Crane .* 2024-05-15 05:3\d", text), text
    # ... and in solar time: 05:35 MDT on 15 May is before sunrise in the Lamar Valley (about
    # 05:52 MDT; tests/flows/pipeline/test_solar.py checks sunrise against the NOAA equations)
    assert re.search(r"Sandhill Crane .* 2024-05-15 05:35:00 +sunrise -1\d min", text), text
    assert "Effort per site and night" in text and "powdermill" in text
    report = re.search(r"^Report:\s+(\S+index\.html)$", text, re.MULTILINE)
    assert report and Path(report.group(1)).is_file()
    assert (Path(report.group(1)).parent / "clips").is_dir()  # the species cards' audio


def test_only_the_shipped_recordings_were_analysed(demo):
    out, _ = demo
    sources = {p.parent.name for p in (out / "source").rglob("*.*") if p.name != "deployments.csv"}
    assert sources == {"yellowstone-2024-05", "powdermill-2024-05"}
