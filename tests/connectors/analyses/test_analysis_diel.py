"""diel: detections per species and local hour. Local hours follow the site's wall clock, across
midnight and across a daylight-saving change (Adelaide, UTC+09:30 / +10:30), and for a recorder
that only knows its fixed offset (UTC+09:30); rate = detections / effort hours of that hour."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.support.seed_catalog import ROBIN, Seed, analysis, assert_unique

# 2024-04-06 14:00 UTC is 00:30 ACDT (UTC+10:30) on 7 April; at 16:30 UTC (03:00 ACDT) Adelaide's
# clocks go back to 02:00 ACST (UTC+09:30). Nine half-hour windows from 14:00 to 18:00 UTC:
ADELAIDE_LOCAL = ["00:30", "01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00", "03:30"]
FIXED_LOCAL = ["23:30", "00:00", "00:30", "01:00", "01:30", "02:00", "02:30", "03:00", "03:30"]
START = datetime(2024, 4, 6, 14, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("adelaide", timezone="Australia/Adelaide")
    seed.deployment("fixed", timezone="UTC+09:30")
    for dep in ("adelaide", "fixed"):
        seed.recording(dep, START, 9, window_s=1800.0, calls={i: [ROBIN] for i in range(9)})
    return root


def hours(local: list[str]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for text in local:
        counts[int(text[:2])] = counts.get(int(text[:2]), 0) + 1
    return counts


@pytest.mark.parametrize("site, local", [("adelaide", ADELAIDE_LOCAL), ("fixed", FIXED_LOCAL)])
def test_local_hours_across_midnight_and_a_dst_change(root, site, local):
    rows = [r for r in analysis(root, "diel") if r["site_id"] == site]
    assert_unique(rows, "site_id", "scientific_name", "local_hour")
    assert {r["local_hour"]: r["detections"] for r in rows} == hours(local)


def test_rate_is_detections_per_effort_hour(root):
    for r in analysis(root, "diel", species="european robin"):
        # every window is 30 min of analysed audio with one detection
        assert r["effort_hours"] == pytest.approx(0.5 * r["detections"])
        assert r["rate_per_hour"] == pytest.approx(r["detections"] / r["effort_hours"])
    assert analysis(root, "diel", species="Tawny Owl") == []


def test_detections_local_gives_utc_local_day_and_night(root):
    rows = [r for r in analysis(root, "detections_local") if r["site_id"] == "adelaide"]
    assert_unique(rows, "recording_id", "channel", "window_index", "rank")
    assert [f"{r['start_local']:%H:%M}" for r in rows] == ADELAIDE_LOCAL
    assert all(r["local_date"].isoformat() == "2024-04-07" for r in rows)
    assert all(r["night_date"].isoformat() == "2024-04-06" for r in rows)
    assert rows[0]["start_utc"] == START
