"""daily_richness: species per site and local day; 0 on a day with effort and no detection,
no row on a day without effort; a species detected twice in a day counts once."""

from __future__ import annotations

from datetime import date, datetime, timezone

from tests.support.seed_catalog import OWL, ROBIN, WREN, Call, Seed, analysis, assert_unique


def test_richness_per_day(tmp_path):
    seed = Seed(tmp_path)
    seed.deployment("d", site_id="S")
    unnamed = Call(None, "frog chorus", 0.9)  # a model answer naming no known species
    seed.recording("d", datetime(2024, 6, 1, 4, tzinfo=timezone.utc), 4,
                   calls={0: [ROBIN], 1: [ROBIN, WREN], 3: [unnamed]})
    seed.recording("d", datetime(2024, 6, 2, 4, tzinfo=timezone.utc), 2)
    seed.recording("d", datetime(2024, 6, 4, 4, tzinfo=timezone.utc), 1, calls={0: [OWL]})
    rows = analysis(tmp_path, "daily_richness")
    assert_unique(rows, "site_id", "local_date")
    assert [(r["local_date"], r["species"]) for r in rows] == [
        (date(2024, 6, 1), 3), (date(2024, 6, 2), 0), (date(2024, 6, 4), 1)]
