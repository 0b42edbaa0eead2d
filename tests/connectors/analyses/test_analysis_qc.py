"""Quality per window in the effort analyses: qc_by_night counts verdicts per deployment and
night; effort_by_day, detection_rate, report_effort_by_night and diel leave QC-failed windows out of
effort (and their detections out of counts) with qc=exclude, the default, and keep them with
qc=include; windows analysed before quality was measured count as effort and as not measured."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from connectors.catalog import QueryRefused
from tests.support.seed_catalog import ROBIN, WINDOW_S, Seed, analysis, assert_unique

NIGHT_1 = datetime(2024, 5, 1, 22, 0, tzinfo=timezone.utc)  # night of 1 May
NIGHT_2 = datetime(2024, 5, 2, 22, 0, tzinfo=timezone.utc)  # night of 2 May: a dead microphone
NIGHT_3 = datetime(2024, 5, 3, 22, 0, tzinfo=timezone.utc)  # analysed before QC existed


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("dep-1", site_id="ridge")
    seed.recording("dep-1", NIGHT_1, 4, calls={0: [ROBIN], 3: [ROBIN]},
                   qc={0: "ok", 1: "ok", 2: "clipped", 3: "dropout"})
    seed.recording("dep-1", NIGHT_2, 3, calls={1: [ROBIN]}, status={2: "failed"},
                   qc={0: "silent", 1: "silent"})
    seed.recording("dep-1", NIGHT_3, 2, calls={0: [ROBIN]})  # qc NULL: not measured
    return root


def test_qc_per_deployment_and_night(root):
    rows = analysis(root, "qc_by_night")
    assert_unique(rows, "deployment_id", "night_date")
    got = {r["night_date"]: r for r in rows}
    counts = ("windows_analysed", "windows_qc_ok", "windows_silent", "windows_dropout",
              "windows_clipped", "windows_not_measured")
    assert {d: tuple(r[c] for c in counts) for d, r in got.items()} == {
        date(2024, 5, 1): (4, 2, 0, 1, 1, 0),
        date(2024, 5, 2): (2, 0, 2, 0, 0, 0),  # the failed window was not analysed
        date(2024, 5, 3): (2, 0, 0, 0, 0, 2),
    }
    assert got[date(2024, 5, 1)]["minutes_qc_failed"] == pytest.approx(2 * WINDOW_S / 60, abs=0.01)


def test_effort_leaves_qc_failed_windows_out_by_default(root):
    excluded = {r["local_date"]: r for r in analysis(root, "effort_by_day")}
    included = {r["local_date"]: r for r in analysis(root, "effort_by_day", qc="include")}
    assert {d: r["hours_analysed"] * 3600 for d, r in excluded.items()} == pytest.approx({
        date(2024, 5, 1): 2 * WINDOW_S, date(2024, 5, 2): 0.0, date(2024, 5, 3): 2 * WINDOW_S})
    assert {d: r["hours_analysed"] * 3600 for d, r in included.items()} == pytest.approx({
        date(2024, 5, 1): 4 * WINDOW_S, date(2024, 5, 2): 2 * WINDOW_S,
        date(2024, 5, 3): 2 * WINDOW_S})
    assert [(r["windows_qc_failed"], r["windows_qc_unmeasured"], r["qc"])
            for r in excluded.values()] == [(2, 0, "exclude"), (2, 0, "exclude"), (0, 2, "exclude")]


def test_detection_rate_counts_neither_effort_nor_detections_of_failed_windows(root):
    excluded = {r["local_date"]: r for r in analysis(root, "detection_rate")}
    assert excluded[date(2024, 5, 1)]["detections"] == 1  # the robin in the dropout window is out
    assert excluded[date(2024, 5, 1)]["detections_per_hour"] == pytest.approx(3600 / (2 * WINDOW_S))
    assert excluded[date(2024, 5, 2)]["detections"] == 0
    assert excluded[date(2024, 5, 2)]["detections_per_hour"] is None  # no effort: unknown
    included = {r["local_date"]: r for r in analysis(root, "detection_rate", qc="include")}
    assert [included[d]["detections"] for d in sorted(included)] == [2, 1, 1]


def test_report_effort_by_night(root):
    rows = {r["night_date"]: r for r in analysis(root, "report_effort_by_night")}
    night = rows[date(2024, 5, 2)]
    assert (night["minutes_analysed"], night["windows_ok"], night["windows_qc_failed"],
            night["detections"]) == (0, 2, 2, 0)
    kept = {r["night_date"]: r for r in analysis(root, "report_effort_by_night", qc="include")}
    assert kept[date(2024, 5, 2)]["minutes_analysed"] == pytest.approx(2 * WINDOW_S / 60, abs=0.01)
    assert kept[date(2024, 5, 2)]["detections"] == 1


def test_a_mistyped_choice_is_an_error_not_a_silent_default(root):
    for name in ("effort_by_day", "detection_rate", "report_effort_by_night", "diel",
                 "activity_by_sun"):
        with pytest.raises(QueryRefused, match="qc must be exclude or include, got exlude"):
            analysis(root, name, qc="exlude")


def test_diel_rates_leave_failed_windows_out_of_effort_and_detections(root):
    """Every window starts in the 22:00 hour (UTC site). Left out by default: night 1's clipped
    and dropout windows (with the robin in the dropout one) and night 2's two silent windows
    (with its robin); kept: the two ok windows of night 1 and night 3's two unmeasured ones."""
    (excluded,) = analysis(root, "diel")
    assert (excluded["local_hour"], excluded["detections"]) == (22, 2)
    assert excluded["effort_hours"] * 3600 == pytest.approx(4 * WINDOW_S)
    (included,) = analysis(root, "diel", qc="include")
    assert included["detections"] == 4
    assert included["effort_hours"] * 3600 == pytest.approx(8 * WINDOW_S)
