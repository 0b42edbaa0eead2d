"""first_last: first and last detection of each species at each site, and nights detected."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.support.seed_catalog import OWL, ROBIN, Seed, analysis, assert_unique


def test_first_and_last_per_site_and_species(tmp_path):
    seed = Seed(tmp_path)
    seed.deployment("a1", site_id="A", timezone="Europe/Berlin")
    seed.deployment("a2", site_id="A", timezone="Europe/Berlin")  # same site, next deployment
    seed.recording("a1", datetime(2024, 3, 30, 22, 0, tzinfo=timezone.utc), 2, calls={1: [OWL]})
    seed.recording("a2", datetime(2024, 4, 20, 4, 0, tzinfo=timezone.utc), 2,
                   calls={0: [OWL, ROBIN], 1: [ROBIN]})
    rows = analysis(tmp_path, "first_last")
    assert_unique(rows, "site_id", "scientific_name")
    owl = next(r for r in rows if r["label"] == "Tawny Owl")
    assert owl["first_utc"] == datetime(2024, 3, 30, 22, 0, 10, tzinfo=timezone.utc)
    assert owl["first_local"] == datetime(2024, 3, 30, 23, 0, 10)  # CET, before the change
    assert owl["last_local"] == datetime(2024, 4, 20, 6, 0)  # CEST
    assert (owl["detections"], owl["nights_detected"]) == (2, 2)
    robin = next(r for r in rows if r["label"] == "European Robin")
    assert (robin["site_id"], robin["detections"], robin["nights_detected"]) == ("A", 2, 1)


def test_the_first_detection_in_solar_time(tmp_path):
    """State College, PA (40.79 N, 77.86 W) on 1 May 2024: sunrise about 06:09-06:10 EDT
    (10:09 UTC; NOAA's solar calculator), so a first call at 10:51 UTC (its window's middle 5 s
    later) is about 41-42 minutes after sunrise, in daylight; a deployment
    without coordinates leaves both columns empty."""
    from flows.pipeline.solar import update_solar

    seed = Seed(tmp_path)
    seed.deployment("pa", latitude=40.79, longitude=-77.86, timezone="America/New_York")
    seed.deployment("nowhere")
    seed.recording("pa", datetime(2024, 5, 1, 10, 51, tzinfo=timezone.utc), 2,
                   calls={0: [ROBIN], 1: [ROBIN]})
    seed.recording("nowhere", datetime(2024, 5, 1, 10, 51, tzinfo=timezone.utc), 1,
                   calls={0: [ROBIN]})
    update_solar(tmp_path)
    rows = {r["site_id"]: r for r in analysis(tmp_path, "first_last")}
    assert 40 <= rows["pa"]["first_minutes_from_sunrise"] <= 43.5, rows["pa"]
    assert rows["pa"]["first_light_class"] == "day"
    assert rows["nowhere"]["first_minutes_from_sunrise"] is None
    assert rows["nowhere"]["first_light_class"] is None
