"""The review queue follows the species filters and starts with what matters: species by number
of detections, not alphabetically, and never a species a filter hides at that deployment.
A real catalog and the real review service (no server needed for the queue)."""

from __future__ import annotations

from datetime import datetime, timezone

from connectors.catalog import Catalog
from connectors.tables import SpeciesOccurrenceRow
from flows.review.service import Filters, ReviewService, ReviewSettings
from tests.support.seed_catalog import Call, Seed

START = datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc)  # BirdNET week 19


def test_the_queue_follows_the_filters_and_orders_species_by_detections(tmp_path):
    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("pa", timezone="America/New_York", latitude=40.8, longitude=-77.8,
                    species_exclude=["house sparrow"])
    robin = Call("Turdus migratorius", "American Robin", 0.8)
    calls = {
        0: [Call("Acanthis flammea", "Common Redpoll", 0.7), robin],
        1: [robin, Call("Passer domesticus", "House Sparrow", 0.9)],
        2: [robin, Call("Drepanis pacifica", "Hawaii Mamo", 0.95)],
        3: [robin],
    }
    seed.recording("pa", START, 4, calls=calls)
    with Catalog(root) as catalog:  # a Hawaiian honeycreeper on a Pennsylvania night: unlikely
        catalog.put_species_occurrence([SpeciesOccurrenceRow(
            deployment_id="pa", week=19, scientific_name="Drepanis pacifica", label="Hawaii Mamo",
            occurrence=0.0, latitude=40.8, longitude=-77.8, model_id="meta@test", run_id="run-1")])
    service = ReviewService(ReviewSettings(results=str(root), reviewer="ana"))
    try:
        queue = service.queue(Filters(), limit=100)
        progress = service.progress(Filters())
    finally:
        service.close()
    labels = [q["label"] for q in queue]
    # Hidden by the location filter (Hawaii Mamo) and the exclude list (House Sparrow): never
    # offered. The robin (4 detections) comes before the redpoll (1), whatever the alphabet.
    assert labels == ["American Robin"] * 4 + ["Common Redpoll"]
    assert [(p["label"], p["pending"]) for p in progress] == [("American Robin", 4),
                                                               ("Common Redpoll", 1)]


def test_one_fingerprint_by_default_a_target_list_and_the_location_threshold(tmp_path):
    from datetime import timedelta

    from tests.connectors.analyses.test_fingerprints_view import run

    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("pa", timezone="America/New_York", latitude=40.8, longitude=-77.8)
    robin = Call("Turdus migratorius", "American Robin", 0.8)
    wren = Call("Troglodytes aedon", "House Wren", 0.6)
    mamo = Call("Drepanis pacifica", "Hawaii Mamo", 0.95)
    seed.recording("pa", START, 3, calls={0: [robin, mamo], 1: [robin], 2: [wren]},
                   fingerprint="old11111", run_id="r1")
    seed.recording("pa", START + timedelta(days=1), 3, calls={0: [robin, wren], 1: [wren]},
                   fingerprint="new22222", run_id="r2")
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with Catalog(root) as catalog:
        catalog.start_run(run("r1", "old11111", t0))
        catalog.start_run(run("r2", "new22222", t0 + timedelta(days=1)))
        catalog.put_species_occurrence([SpeciesOccurrenceRow(
            deployment_id="pa", week=19, scientific_name="Drepanis pacifica", label="Hawaii Mamo",
            occurrence=0.0, latitude=40.8, longitude=-77.8, model_id="meta@test", run_id="run-1")])

    def queue(**settings):
        service = ReviewService(ReviewSettings(results=str(root), reviewer="ana", **settings))
        try:
            return ([(q["config_fingerprint"], q["label"]) for q in service.queue(Filters(), limit=100)],
                    [(p["config_fingerprint"], p["label"]) for p in service.progress(Filters())])
        finally:
            service.close()

    # The newest fingerprint only (not both side by side), most detections first.
    got, progress = queue()
    assert got == [("new22222", "House Wren")] * 2 + [("new22222", "American Robin")]
    assert progress and {fp for fp, _ in progress} == {"new22222"}
    # A target list: only those, in its order.
    got, _ = queue(species=("American Robin", "House Wren"))
    assert got == [("new22222", "American Robin")] + [("new22222", "House Wren")] * 2
    # The old fingerprint (the page's filter), where the location filter hid the mamo; with the
    # filter off (0), the mamo is offered.
    service = ReviewService(ReviewSettings(results=str(root), reviewer="ana", location_threshold=0.0))
    try:
        old = [q["label"] for q in service.queue(Filters(fingerprint="old11111"), limit=100)]
    finally:
        service.close()
    assert sorted(old) == ["American Robin", "American Robin", "Hawaii Mamo", "House Wren"]
