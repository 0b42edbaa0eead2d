"""Analyses whose parameters all have defaults are views of the reader (`from species_by_night`),
read with the defaults; `set_view_parameters` chooses others; species_by_hour and
top1_per_window keep their grain; the run analyses take a run id."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.catalog import CatalogReader
from tests.support.seed_catalog import ROBIN, WREN, Seed, analysis, assert_unique


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("d", timezone="Europe/London")
    seed.recording("d", datetime(2024, 6, 1, 4, tzinfo=timezone.utc), 3,
                   calls={0: [ROBIN, WREN], 2: [WREN]}, status={1: "failed"})
    return root


def test_views_read_the_defaults_and_equal_the_named_analysis(root):
    with CatalogReader(root) as reader:
        view = reader.query("from species_by_night").to_pylist()
        named = reader.analysis("species_by_night").to_pylist()
        assert view == named and len(view) == 2
        reader.set_view_parameters({"threshold": None, "species": "Eurasian Wren"})
        assert {r["label"] for r in reader.query("from diel").to_pylist()} == {"Eurasian Wren"}


def test_species_by_hour_and_top1(root):
    rows = analysis(root, "species_by_hour")
    assert_unique(rows, "deployment_id", "local_date", "local_hour", "scientific_name")
    assert {(r["local_hour"], r["label"], r["detections"]) for r in rows} == {
        (5, "European Robin", 1), (5, "Eurasian Wren", 2)}
    top1 = analysis(root, "top1_per_window")
    assert_unique(top1, "object_key", "channel", "offset_s")
    assert [(r["offset_s"], r["label"]) for r in top1] == [(0.0, "European Robin"), (20.0, "Eurasian Wren")]


def test_run_analyses(root):
    failures = analysis(root, "run_failures", run_id="run-1")
    assert [(f["stage"], f["windows_failed"]) for f in failures] == [("windows", 1)]
    counts = analysis(root, "run_species_counts", run_id="run-1")
    assert {(c["label"], c["detections"]) for c in counts} == {("European Robin", 1), ("Eurasian Wren", 2)}
    assert analysis(root, "run_species_counts", run_id="run-2") == []


def test_views_made_on_first_use_are_all_listed_and_read_each_other(root):
    """The reader makes an analysis view when a query first names it; a query listing views
    sees every one, as when they were all made at open; a view whose body names another works
    first, before that other one was used."""
    from connectors.analyses import all_analyses

    views = {a.name for a in all_analyses() if not any(p.required for p in a.parameters)}
    with CatalogReader(root) as reader:
        listed = {r["view_name"] for r in reader.query(
            "select view_name from duckdb_views() where database_name = 'temp'").to_pylist()}
        assert listed == views
    bodies = {a.name: a.sql for a in all_analyses() if a.name in views}
    dependent = sorted(name for name, body in bodies.items()
                       if any(other != name and other in body for other in views))
    assert dependent  # e.g. bat_passes reads species_by_night
    for name in dependent:  # each in a fresh reader, before any other view was used
        with CatalogReader(root) as reader:
            reader.query(f"select count(*) as n from {name}")  # no error: its views were made
