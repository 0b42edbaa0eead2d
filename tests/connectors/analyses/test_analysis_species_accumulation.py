"""species_accumulation: cumulative species against cumulative effort hours, per site, in date
order; a species counts on the day it is first detected and never again."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.support.seed_catalog import OWL, ROBIN, WREN, Seed, analysis, assert_unique


def test_the_curve_never_falls_and_counts_each_species_once(tmp_path):
    seed = Seed(tmp_path)
    seed.deployment("d", site_id="S")
    for day, calls in ((1, {0: [ROBIN]}), (2, {0: [ROBIN, WREN]}), (3, {}), (5, {1: [OWL, ROBIN]})):
        seed.recording("d", datetime(2024, 6, day, 4, tzinfo=timezone.utc), 2, window_s=900.0,
                       calls=calls)
    rows = analysis(tmp_path, "species_accumulation")
    assert_unique(rows, "site_id", "local_date")
    assert [r["new_species"] for r in rows] == [1, 1, 0, 1]
    assert [r["cumulative_species"] for r in rows] == [1, 2, 2, 3]
    assert [r["cumulative_effort_hours"] for r in rows] == pytest.approx([0.5, 1.0, 1.5, 2.0])
