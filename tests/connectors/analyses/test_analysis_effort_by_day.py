"""effort_by_day: hours analysed per site and local day from the windows table; a day without
windows has no row (not analysed is not zero), a day whose windows all failed has 0 hours."""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone

import pytest

from tests.support.seed_catalog import Seed, analysis, assert_unique


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("dep-1", site_id="ridge", timezone="America/New_York")
    # 03:00 UTC on 2 May is 23:00 EDT on 1 May.
    seed.recording("dep-1", datetime(2024, 5, 2, 3, 0, tzinfo=timezone.utc), 6,
                   status={4: "failed", 5: "empty"})
    seed.recording("dep-1", datetime(2024, 5, 4, 12, 0, tzinfo=timezone.utc), 2,
                   status={0: "failed", 1: "failed"})
    seed.deployment("dep-2")  # no site: the deployment is its own site
    seed.recording("dep-2", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc), 1)
    seed.recording("dep-2", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc), 3,
                   fingerprint="fp-other", key="dep-2/other.WAV")
    return root


def test_effort_per_site_and_local_day(root):
    rows = analysis(root, "effort_by_day", config_fingerprint="fp-birdnet")
    assert_unique(rows, "site_id", "local_date")
    got = {(r["site_id"], r["local_date"]): r for r in rows}
    assert set(got) == {("ridge", date(2024, 5, 1)), ("ridge", date(2024, 5, 4)),
                        ("dep-2", date(2024, 5, 1))}  # 2 and 3 May: no row, not zero
    day = got[("ridge", date(2024, 5, 1))]
    assert (day["windows"], day["windows_ok"], day["windows_failed"], day["windows_empty"]) == (6, 4, 1, 1)
    assert day["hours_analysed"] == pytest.approx(40 / 3600)
    assert got[("ridge", date(2024, 5, 4))]["hours_analysed"] == 0  # analysed nothing: 0 h


def test_several_fingerprints_never_mix_and_the_default_is_said(root, caplog):
    from connectors.errors import ConfigError

    other = analysis(root, "effort_by_day", config_fingerprint="fp-other")
    assert [(r["site_id"], r["windows"]) for r in other] == [("dep-2", 3)]
    # None named: one fingerprint (with no runs recorded, the one whose windows start last, the
    # name breaking the tie), never the two together, and a note says which.
    notes = logging.getLogger("dawnchorus.note")  # the CLI stops its propagation
    notes.addHandler(caplog.handler)
    try:
        assert analysis(root, "effort_by_day") == other
    finally:
        notes.removeHandler(caplog.handler)
    assert "reading fingerprint fp-other (the newest of 2)" in caplog.text
    with pytest.raises(ConfigError, match="'fp-nope' is not in the catalog"):
        analysis(root, "effort_by_day", config_fingerprint="fp-nope")
