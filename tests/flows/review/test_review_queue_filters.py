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
