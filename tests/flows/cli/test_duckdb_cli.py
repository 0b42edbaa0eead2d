"""The catalog in the real `duckdb` command line (duckdb-cli 1.5.5, extensions from the wheels,
offline): the views and analyses answer as the reader does, the catalog is read-only - for the
embedded SQLite default and for a team's Postgres catalog with its data on S3 - and a results
folder moved elsewhere still opens."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from tests.support.lakes import LAKE_KINDS
from connectors.location import ResultsLocation
from flows.outputs.query import run_analysis, run_query
from tests.support.lakes import LakeFactory
from tests.support.seed_catalog import OWL, ROBIN, WREN, Seed


def seed(root):
    """Four windows of one deployment with robin, wren and owl answers."""
    seeded = Seed(root)
    seeded.deployment("d", site_id="S", timezone="Europe/London")
    seeded.recording("d", datetime(2024, 6, 1, 3, tzinfo=timezone.utc), 4,
                     calls={0: [ROBIN], 1: [WREN, OWL], 3: [ROBIN]})
    return root


@pytest.fixture(scope="module", params=LAKE_KINDS)
def root(request, tmp_path_factory):
    """A seeded catalog: a results folder (SQLite), or a Postgres catalog with data on S3."""
    location = LakeFactory(request.param, request, tmp_path_factory)()
    return seed(location.root if location.is_default else location)


def duckdb(root, sql: str) -> subprocess.CompletedProcess:
    where = (["--results", root.results, "--catalog", root.catalog]
             if isinstance(root, ResultsLocation) else ["--results", str(root)])
    # The S3 server's AWS_* variables are in os.environ (conftest), as a user's would be.
    return subprocess.run([sys.executable, "-m", "flows.cli", "duckdb", *where,
                           "--", "-csv", "-noheader", "-c", sql],
                          capture_output=True, text=True, timeout=180)


def reader_args(root) -> tuple[str, dict]:
    if isinstance(root, ResultsLocation):
        return root.results, {"catalog": root.catalog}
    return str(root), {}


def test_views_and_analyses_answer_as_the_reader_does(root):
    proc = duckdb(root, "select count(*) from detections")
    assert proc.returncode == 0, proc.stderr
    results, catalog = reader_args(root)
    assert proc.stdout.strip() == str(run_query(results, "select count(*) as n from detections",
                                                **catalog)["n"][0])
    proc = duckdb(root, "select label, detections from species_by_night order by label")
    expected = sorted((r["label"], r["detections"]) for r in
                      run_analysis(results, "species_by_night", **catalog).to_pylist())
    assert [tuple(line.split(",")) for line in proc.stdout.splitlines()] == \
        [(label, str(n)) for label, n in expected]
    proc = duckdb(root, "set variable species = 'Tawny Owl'; select label from diel")
    assert proc.stdout.splitlines() == ["Tawny Owl"], proc.stderr


def test_the_catalog_is_read_only_there(root):
    proc = duckdb(root, "delete from predictions")
    assert proc.returncode != 0 and "read-only" in (proc.stderr + proc.stdout).lower()
    assert duckdb(root, "select count(*) from predictions").stdout.strip() == "4"


def test_a_moved_results_folder_opens(tmp_path):
    """Only the embedded default is a movable folder (connectors/location.py)."""
    original = seed(tmp_path / "results")
    moved = tmp_path / "elsewhere"
    shutil.copytree(original, moved)
    proc = duckdb(moved, "select count(*) from windows")
    assert proc.returncode == 0 and proc.stdout.strip() == "4", proc.stderr


def test_the_init_script_names_no_credential(root):
    where = (["--results", root.results, "--catalog", root.catalog]
             if isinstance(root, ResultsLocation) else ["--results", str(root)])
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "duckdb", *where, "--print"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "ATTACH 'ducklake:" in proc.stdout
    credentials = [os.environ[n] for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                   if os.environ.get(n)]
    if isinstance(root, ResultsLocation) and root.data_on_s3:
        assert len(credentials) == 2 and "SET s3_endpoint" in proc.stdout
    for credential in credentials:
        assert credential not in proc.stdout
