"""Exports: Raven tables round-trip exactly with Raven's header; Audacity labels and the flat
CSV carry every detection; the Camtrap DP package validates against the published 1.0.2 profile
and table schemas (and a broken one does not); occupancy matrices agree with the detections and
the effort they came from, NA where nothing was analysed."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

import pytest

from connectors.catalog import CatalogReader
from flows.cli.main import main
from flows.outputs.exports import ExportFilters, export
from flows.outputs.exports.camtrap_dp import validate_package
from flows.outputs.exports.raven import COLUMNS, read_selection_table
from tests.support.seed_catalog import OWL, ROBIN, WREN, Call, Seed

RAVEN_HEADER = ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
                "High Freq (Hz)\tCommon Name\tScientific Name\tConfidence\tBegin Path\t"
                "File Offset (s)")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("marsh-1", site_id="marsh", timezone="Europe/London", latitude=51.5, longitude=-0.1)
    seed.deployment("wood-1", site_id="wood", timezone="Europe/London", latitude=51.6, longitude=-0.2)
    seed.deployment("lost-1", timezone="UTC")  # no coordinates
    odd = Call(ROBIN.scientific_name, ROBIN.label, 0.923456789012345)
    # Night 14 May (BST): marsh heard robin and wren; wood analysed, heard nothing but an owl later.
    seed.recording("marsh-1", datetime(2024, 5, 14, 21, 0, tzinfo=timezone.utc), 4,
                   calls={0: [odd, WREN], 2: [ROBIN]}, status={3: "failed"})
    seed.recording("wood-1", datetime(2024, 5, 14, 21, 0, tzinfo=timezone.utc), 2)
    # Night 15 May: marsh not recorded at all; wood heard an owl.
    seed.recording("wood-1", datetime(2024, 5, 15, 23, 0, tzinfo=timezone.utc), 2, calls={1: [OWL]})
    # Night 16 May: marsh's windows all failed (no effort), wood heard a robin.
    seed.recording("marsh-1", datetime(2024, 5, 16, 22, 0, tzinfo=timezone.utc), 2,
                   status={0: "failed", 1: "failed"})
    seed.recording("wood-1", datetime(2024, 5, 16, 22, 0, tzinfo=timezone.utc), 1, calls={0: [ROBIN]})
    seed.recording("lost-1", datetime(2024, 5, 14, 22, 0, tzinfo=timezone.utc), 1, calls={0: [WREN]})
    return root


def detections(root) -> list[dict]:
    with CatalogReader(root) as reader:
        return reader.query("select uri, channel, offset_s, end_offset_s, label, scientific_name, "
                            "score from detections").to_pylist()


def test_raven_tables_round_trip_exactly(root, tmp_path):
    summary = export("raven", str(root), tmp_path)
    files = sorted(tmp_path.rglob("*.selections.txt"))
    assert len(files) == len(summary["files"]) == 4  # one per recording with detections
    back = []
    for path in files:
        assert path.read_text(encoding="utf-8").splitlines()[0] == RAVEN_HEADER
        rows = read_selection_table(path)
        assert [r.selection for r in rows] == list(range(1, len(rows) + 1))
        assert len({r.begin_path for r in rows}) == 1
        back += [{"uri": r.begin_path, "channel": r.channel - 1, "offset_s": r.file_offset_s,
                  "end_offset_s": r.end_s, "label": r.common_name,
                  "scientific_name": r.scientific_name, "score": r.confidence} for r in rows]
        assert all(r.begin_s == r.file_offset_s and r.view == "Spectrogram 1" for r in rows)
    key = lambda d: (d["uri"], d["offset_s"], d["label"])  # noqa: E731
    assert sorted(back, key=key) == sorted(detections(root), key=key)
    assert any(r["score"] == 0.923456789012345 for r in back)  # exact, not rounded
    assert COLUMNS == tuple(RAVEN_HEADER.split("\t"))


def test_audacity_and_csv_carry_every_detection(root, tmp_path):
    export("audacity", str(root), tmp_path / "aud")
    lines = [ln.split("\t") for p in sorted((tmp_path / "aud").rglob("*.labels.txt"))
             for ln in p.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(detections(root)) == 6
    assert all(len(ln) == 3 and float(ln[0]) < float(ln[1]) for ln in lines)
    assert ["0.000", "10.000", "European Robin (Erithacus rubecula) 0.923"] in lines
    export("csv", str(root), tmp_path / "csv", ExportFilters(species=("eurasian wren",)))
    with open(tmp_path / "csv" / "detections.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:6] == ["Start (s)", "End (s)", "Scientific name", "Common name",
                                 "Confidence", "File"]
    assert {r["Common name"] for r in rows} == {"Eurasian Wren"} and len(rows) == 2
    marsh = next(r for r in rows if r["deployment_id"] == "marsh-1")
    assert (marsh["start_utc"], marsh["start_local"], marsh["night_date"], marsh["week"]) == (
        "2024-05-14T21:00:00+00:00", "2024-05-14T22:00:00", "2024-05-14", "18")


def test_camtrap_dp_validates_and_a_broken_package_does_not(root, tmp_path):
    summary = export("camtrap-dp", str(root), tmp_path, title="Test marshes", contributor="A. Tester")
    assert validate_package(tmp_path) == []
    assert (summary["deployments"], summary["observations"]) == (2, 5)
    assert summary["deployments_without_coordinates"] == 1
    descriptor = json.loads((tmp_path / "datapackage.json").read_text())
    assert descriptor["profile"].endswith("/1.0.2/camtrap-dp-profile.json")
    with open(tmp_path / "observations.csv", newline="", encoding="utf-8") as fh:
        observations = list(csv.DictReader(fh))
    assert {o["classificationMethod"] for o in observations} == {"machine"}
    assert 0.923456789012345 in {float(o["classificationProbability"]) for o in observations}
    # Breaking a table or the descriptor is caught: the check is not vacuous.
    observations[0]["classificationProbability"] = "1.5"
    with open(tmp_path / "observations.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(observations[0]))
        writer.writeheader()
        writer.writerows(observations)
    del descriptor["taxonomic"]
    (tmp_path / "datapackage.json").write_text(json.dumps(descriptor))
    problems = validate_package(tmp_path)
    assert any("observations" in p and "constraint" in p for p in problems), problems
    assert any("'taxonomic' is a required property" in p for p in problems), problems


def read_matrix(path) -> dict[str, list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == "site_id"
    return {r[0]: r[1:] for r in rows[1:]}


def test_occupancy_matrices_agree_with_detections_and_effort(root, tmp_path):
    assert main(["export", "occupancy", "--results", str(root), "--out", str(tmp_path),
                 "--deployment", "marsh-1", "--deployment", "wood-1"]) == 0
    # Occasions are nights 14, 15 and 16 May.
    with open(tmp_path / "occasions.csv", newline="") as fh:
        assert [r["first_date"] for r in csv.DictReader(fh)] == ["2024-05-14", "2024-05-15", "2024-05-16"]
    effort = read_matrix(tmp_path / "effort.csv")
    assert effort["marsh"] == [repr(round(30 / 3600, 6)), "NA", "NA"]  # 3 ok windows; none; all failed
    assert effort["wood"] == [repr(round(20 / 3600, 6))] * 2 + [repr(round(10 / 3600, 6))]
    assert read_matrix(tmp_path / "y_Erithacus_rubecula.csv") == {"marsh": ["1", "NA", "NA"],
                                                                  "wood": ["0", "0", "1"]}
    assert read_matrix(tmp_path / "y_Troglodytes_troglodytes.csv") == {"marsh": ["1", "NA", "NA"],
                                                                       "wood": ["0", "0", "0"]}
    assert read_matrix(tmp_path / "y_Strix_aluco.csv")["wood"] == ["0", "1", "0"]
    with open(tmp_path / "sites.csv", newline="") as fh:
        assert [r["site_id"] for r in csv.DictReader(fh)] == ["marsh", "wood"]


def test_occupancy_occasions_of_several_days(root, tmp_path):
    export("occupancy", str(root), tmp_path, ExportFilters(deployments=("marsh-1", "wood-1")),
           occasion="night", days=2)
    assert read_matrix(tmp_path / "y_Strix_aluco.csv") == {"marsh": ["0", "NA"], "wood": ["1", "0"]}
