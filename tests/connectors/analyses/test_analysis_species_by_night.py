"""species_by_night: night = local date of (local time - 12 h), so 23:30 on day D and 01:30 on
D+1 are one night; one row per site, night and species; each night carries its effort."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from tests.support.seed_catalog import ROBIN, WREN, Seed, analysis, assert_unique


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("dep-1", site_id="marsh", timezone="Europe/London")
    # BST (UTC+1): 22:30 UTC = 23:30 local on 14 May; 00:30 UTC = 01:30 local on 15 May.
    seed.recording("dep-1", datetime(2024, 5, 14, 22, 30, tzinfo=timezone.utc), 3,
                   calls={0: [ROBIN], 1: [ROBIN, WREN]})
    seed.recording("dep-1", datetime(2024, 5, 15, 0, 30, tzinfo=timezone.utc), 3,
                   calls={2: [ROBIN]})
    # 11:00 local on 15 May is past noon-minus-12h: still night 14 May? No: 11:00 - 12 h is
    # 23:00 on 14 May, so it is night 14 May too; 13:00 local on 15 May is night 15 May.
    seed.recording("dep-1", datetime(2024, 5, 15, 12, 0, tzinfo=timezone.utc), 1,
                   calls={0: [WREN]})
    return root


def test_a_night_spans_local_midnight(root):
    rows = analysis(root, "species_by_night")
    assert_unique(rows, "site_id", "night_date", "scientific_name")
    by_key = {(r["night_date"], r["label"]): r for r in rows}
    robin = by_key[(date(2024, 5, 14), "European Robin")]
    assert robin["detections"] == 3  # 23:30, 23:30:10 and 01:30:20 local
    assert robin["first_local"] == datetime(2024, 5, 14, 23, 30)
    assert robin["last_local"] == datetime(2024, 5, 15, 1, 30, 20)
    assert by_key[(date(2024, 5, 14), "Eurasian Wren")]["detections"] == 1
    assert by_key[(date(2024, 5, 15), "Eurasian Wren")]["detections"] == 1  # 13:00 local
    assert {r["site_id"] for r in rows} == {"marsh"}


def test_each_night_carries_the_effort_analysed_that_night(root):
    rows = analysis(root, "species_by_night")
    effort = {r["night_date"]: r["effort_hours"] for r in rows}
    assert effort[date(2024, 5, 14)] == pytest.approx(6 * 10 / 3600)
    assert effort[date(2024, 5, 15)] == pytest.approx(10 / 3600)


def test_the_threshold_is_a_parameter(root):
    rows = analysis(root, "species_by_night", threshold=0.85)
    assert {r["label"] for r in rows} == {"European Robin"}  # wrens scored 0.8
