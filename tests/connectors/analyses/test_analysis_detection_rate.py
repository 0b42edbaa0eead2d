"""detection_rate: rate = detections / effort hours per site, local day and species; a day with
effort and no detection has rate 0, a day without effort has no row."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from tests.support.seed_catalog import ROBIN, WREN, Seed, analysis, assert_unique


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("dep-1", site_id="wood", timezone="UTC")
    # 1 May: 6 windows of 10 min (1 h), robin in 3, wren in 1; 3 May: 3 windows, nothing heard.
    seed.recording("dep-1", datetime(2024, 5, 1, 5, 0, tzinfo=timezone.utc), 6, window_s=600.0,
                   calls={0: [ROBIN], 2: [ROBIN, WREN], 5: [ROBIN]})
    seed.recording("dep-1", datetime(2024, 5, 3, 5, 0, tzinfo=timezone.utc), 3, window_s=600.0)
    return analysis(root, "detection_rate")


def test_grain_and_rate(rows):
    assert_unique(rows, "site_id", "local_date", "scientific_name")
    got = {(r["local_date"], r["label"]): r for r in rows}
    assert set(got) == {(date(2024, 5, d), s) for d in (1, 3)
                        for s in ("European Robin", "Eurasian Wren")}
    for r in rows:
        assert r["detections_per_hour"] == pytest.approx(r["detections"] / r["effort_hours"])
    assert got[(date(2024, 5, 1), "European Robin")]["detections_per_hour"] == pytest.approx(3.0)
    assert got[(date(2024, 5, 1), "Eurasian Wren")]["detections_per_hour"] == pytest.approx(1.0)
    quiet = got[(date(2024, 5, 3), "European Robin")]
    assert (quiet["detections"], quiet["effort_hours"]) == (0, pytest.approx(0.5))


def test_no_effort_no_row(rows):
    assert date(2024, 5, 2) not in {r["local_date"] for r in rows}
