"""`dawnchorus thresholds` reads and sets a catalog's default thresholds, recorded with who and
when; `query --location-threshold 0` shows a location-filtered species. Real catalog, real CLI."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import datetime, timezone

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import SpeciesOccurrenceRow
from tests.support.seed_catalog import Call, Seed

START = datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc)  # BirdNET week 19


def dawnchorus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=120)


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def seeded(tmp_path):
    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("wytham", timezone="Europe/London", latitude=51.77, longitude=-1.34)
    seed.recording("wytham", START, 2, calls={0: [Call("Grus canadensis", "Sandhill Crane", 0.99)]})
    with Catalog(root) as catalog:  # the meta-model's answer for the crane there: unlikely
        catalog.put_species_occurrence([SpeciesOccurrenceRow(
            deployment_id="wytham", week=19, scientific_name="Grus canadensis",
            label="Sandhill Crane", occurrence=0.017, latitude=51.77, longitude=-1.34,
            model_id="meta@test", run_id="run-1")])
    return root


def test_a_location_filtered_species_comes_back_with_location_threshold_0(tmp_path):
    root = seeded(tmp_path)
    sql = "select label, score from detections"
    hidden = dawnchorus("query", "--results", str(root), "--format", "csv", sql)
    assert hidden.returncode == 0 and rows(hidden.stdout) == [["label", "score"]]
    shown = dawnchorus("query", "--results", str(root), "--format", "csv",
                       "--location-threshold", "0", sql)
    assert shown.returncode == 0 and rows(shown.stdout)[1:] == [["Sandhill Crane", "0.99"]]
    named = dawnchorus("query", "run_hidden_by_filters", "--results", str(root), "--format", "csv",
                       "--param", "run_id=run-1")
    (row,) = rows(named.stdout)[1:]
    assert row[:6] == ["wytham", "Sandhill Crane", "Grus canadensis", "location", "0.99", "1"]
    assert "BirdNET occurrence 0.017 at this site in week 19" in row[6]


def test_thresholds_are_read_and_set_with_who_and_when(tmp_path):
    root = seeded(tmp_path)
    shown = dawnchorus("thresholds", "--results", str(root))
    assert shown.returncode == 0, shown.stderr
    assert "detection 0.5  (the catalog's default)" in shown.stdout
    assert "location  0.03  (the catalog's default)" in shown.stdout
    changed = dawnchorus("thresholds", "--results", str(root), "--location", "0.01",
                         "--by", "ana")
    assert changed.returncode == 0, changed.stderr
    assert "location  0.01  (set by ana at " in changed.stdout
    with Catalog(root) as catalog:
        (change,) = catalog.setting_changes("location_filter_threshold")
        assert (change.value, change.changed_by) == ("0.01", "ana")
        assert (datetime.now(timezone.utc) - change.changed_at).total_seconds() < 120
    with CatalogReader(root) as reader:  # the new default applies to every reader
        assert reader.query("select label from detections").to_pylist() == [{"label": "Sandhill Crane"}]
    refused = dawnchorus("thresholds", "--results", str(root), "--detection", "1.5")
    assert refused.returncode == 2 and "expected a probability in [0, 1]" in refused.stderr


def test_a_mistyped_analysis_name_is_refused_before_any_sql(tmp_path):
    root = seeded(tmp_path)
    typo = dawnchorus("query", "species_by_nigth", "--results", str(root))
    assert typo.returncode == 2
    assert typo.stderr.strip() == (
        "dawnchorus: error: no analysis named 'species_by_nigth'; did you mean "
        "'species_by_night'? " + typo.stderr.strip().split("? ", 1)[1])
    assert "Parser Error" not in typo.stderr and "\n" not in typo.stderr.strip()
