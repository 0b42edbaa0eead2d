"""The catalog in the real `duckdb` command line (duckdb-cli 1.5.5, extensions from the wheels,
offline): the views and analyses answer as the reader does, the catalog is read-only, and a
results folder moved elsewhere still opens."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from flows.query import run_analysis, run_query
from seed_catalog import OWL, ROBIN, WREN, Seed


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("d", site_id="S", timezone="Europe/London")
    seed.recording("d", datetime(2024, 6, 1, 3, tzinfo=timezone.utc), 4,
                   calls={0: [ROBIN], 1: [WREN, OWL], 3: [ROBIN]})
    return root


def duckdb(root, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "duckdb", "--results", str(root),
                           "--", "-csv", "-noheader", "-c", sql],
                          capture_output=True, text=True, timeout=180)


def test_views_and_analyses_answer_as_the_reader_does(root):
    proc = duckdb(root, "select count(*) from detections")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run_query(str(root), "select count(*) as n from detections")["n"][0])
    proc = duckdb(root, "select label, detections from species_by_night order by label")
    expected = sorted((r["label"], r["detections"]) for r in
                      run_analysis(str(root), "species_by_night").to_pylist())
    assert [tuple(line.split(",")) for line in proc.stdout.splitlines()] == \
        [(label, str(n)) for label, n in expected]
    proc = duckdb(root, "set variable species = 'Tawny Owl'; select label from diel")
    assert proc.stdout.splitlines() == ["Tawny Owl"], proc.stderr


def test_the_catalog_is_read_only_there(root):
    proc = duckdb(root, "delete from predictions")
    assert proc.returncode != 0 and "read-only" in (proc.stderr + proc.stdout).lower()
    assert duckdb(root, "select count(*) from predictions").stdout.strip() == "4"


def test_a_moved_results_folder_opens(root, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    proc = duckdb(moved, "select count(*) from windows")
    assert proc.returncode == 0 and proc.stdout.strip() == "4", proc.stderr
