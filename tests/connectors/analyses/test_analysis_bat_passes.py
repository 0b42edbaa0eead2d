"""bat_passes: passes of one species split where a silence exceeds gap_s, across windows; each
pass counted once; the activity index counts one-minute blocks with a call; each night carries
its effort and band, and a night analysed without calls is a row with passes 0."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from connectors.catalog import Catalog
from connectors.tables import DeploymentRow, PredictionRow, WindowRow
from tests.support.catalog_rows import FINGERPRINT, MODEL_ID, recording
from tests.support.seed_catalog import analysis, assert_unique

PIP = ("Pipistrellus pipistrellus", "Common Pipistrelle")
NOCTULE = ("Nyctalus noctula", "Noctule")
CALL_S = 0.005
NIGHT_1 = datetime(2024, 6, 1, 22, 0, tzinfo=timezone.utc)
NIGHT_2 = datetime(2024, 6, 2, 21, 0, tzinfo=timezone.utc)
#: (seconds from the recording's start, species). Silences with gap_s = 1: 0.10-0.30 one pass;
#: 1.50 starts a second (1.195 s after 0.305); 2.40 joins it (0.895 s); 70.0 a third (22:01).
CALLS = [(0.10, PIP), (0.20, PIP), (0.30, PIP), (1.50, PIP), (2.40, PIP), (70.0, PIP),
         (5.0, NOCTULE)]
CLIPPED_WINDOW = 5  # the noctule's window failed quality
WINDOW_LEVEL_WINDOW = 3  # night 2: a window-level answer (no call box), which is not a call


def seed(root) -> None:
    with Catalog(root) as catalog:
        catalog.upsert_deployments([DeploymentRow(
            deployment_id="dep-bats", site_id="cave", latitude=None, longitude=None,
            recorder="AudioMoth 1.2", timezone="UTC", start_utc=None, end_utc=None, extra=None,
            updated_run_id="run-0", clock_timezone=None)])
        for rec_id, start, seconds, calls in (("rec-1", NIGHT_1, 80, CALLS),
                                              ("rec-2", NIGHT_2, 30, [])):
            rec = recording(rec_id, "dep-bats", start, float(seconds))
            catalog.register_recordings([rec], [])
            windows, predictions = [], []
            for index in range(seconds):
                when = start + timedelta(seconds=index)
                where = dict(run_id="run-0", config_fingerprint=FINGERPRINT,
                             recording_id=rec_id, deployment_id="dep-bats", channel=0,
                             window_index=index, offset_s=float(index), start_utc=when,
                             start_local=when.replace(tzinfo=None), date=when.date())
                clipped = rec_id == "rec-1" and index == CLIPPED_WINDOW
                windows.append(WindowRow(**where, window_s=1.0, duration_s=1.0, status="ok",
                                         padded=False, error=None,
                                         qc="clipped" if clipped else "ok",
                                         band_low_hz=10_000.0, band_high_hz=120_000.0))
                for t_s, (scientific, common) in calls:
                    if int(t_s) == index:
                        predictions.append(PredictionRow(
                            **where, model_id=MODEL_ID, task="classify", prompt_id="calls",
                            rank=1, answer_text=common, label=common, scientific_name=scientific,
                            score=0.9, call_start_s=t_s, call_end_s=t_s + CALL_S,
                            low_freq_hz=42_000.0, high_freq_hz=55_000.0, detection_score=0.95))
                if rec_id == "rec-2" and index == WINDOW_LEVEL_WINDOW:  # no call box: not a call
                    predictions.append(PredictionRow(
                        **where, model_id=MODEL_ID, task="classify", prompt_id="species", rank=1,
                        answer_text=NOCTULE[1], label=NOCTULE[1], scientific_name=NOCTULE[0],
                        score=0.99))
            catalog.commit_unit(windows, predictions)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed(root)
    return root


def by_label(rows):
    return {(r["night_date"], r["label"]): r for r in rows}


def test_passes_split_on_silences_longer_than_the_gap_and_count_once(root):
    rows = analysis(root, "bat_passes")
    assert_unique(rows, "site_id", "night_date", "label")
    pip = by_label(rows)[(date(2024, 6, 1), "Common Pipistrelle")]
    assert (pip["passes"], pip["calls"], pip["activity_minutes"]) == (3, 6, 2)
    assert pip["gap_s"] == 1.0 and pip["site_id"] == "cave"
    assert pip["first_call_local"] == datetime(2024, 6, 1, 22, 0, 0, 100_000)


def test_the_gap_is_a_parameter(root):
    pip = by_label(analysis(root, "bat_passes", gap_s=0.5))[(date(2024, 6, 1), "Common Pipistrelle")]
    assert pip["passes"] == 4  # 1.50 and 2.40 are 0.895 s apart: two passes now
    assert by_label(analysis(root, "bat_passes", gap_s=100.0))[
        (date(2024, 6, 1), "Common Pipistrelle")]["passes"] == 1


def test_each_night_carries_its_effort_and_band_and_a_silent_night_is_a_row(root):
    rows = by_label(analysis(root, "bat_passes"))
    pip = rows[(date(2024, 6, 1), "Common Pipistrelle")]
    assert pip["effort_hours"] == pytest.approx(79 / 3600)  # the clipped window is not effort
    assert pip["passes_per_hour"] == pytest.approx(3 / (79 / 3600))
    assert (pip["band_low_hz"], pip["band_high_hz"]) == (10_000.0, 120_000.0)
    silent = rows[(date(2024, 6, 2), None)]
    assert (silent["passes"], silent["calls"], silent["activity_minutes"]) == (0, 0, 0)
    assert silent["effort_hours"] == pytest.approx(30 / 3600)
    assert silent["band_high_hz"] == 120_000.0


def test_calls_in_windows_that_failed_quality_count_only_with_qc_include(root):
    hidden = by_label(analysis(root, "bat_passes"))
    assert (date(2024, 6, 1), "Noctule") not in hidden
    # ... and every row of that night says what was left out: one window, its one call.
    night = [r for (night, _), r in hidden.items() if night == date(2024, 6, 1)]
    assert night and all((r["windows_qc_failed"], r["calls_qc_left_out"]) == (1, 1) for r in night)
    rows = by_label(analysis(root, "bat_passes", qc="include"))
    noctule = rows[(date(2024, 6, 1), "Noctule")]
    assert (noctule["passes"], noctule["calls"], noctule["activity_minutes"]) == (1, 1, 1)
    assert noctule["effort_hours"] == pytest.approx(80 / 3600)
    assert (noctule["windows_qc_failed"], noctule["calls_qc_left_out"]) == (0, 0)


def test_window_level_answers_are_not_calls(root):
    rows = by_label(analysis(root, "bat_passes"))
    assert (date(2024, 6, 2), "Noctule") not in rows and rows[(date(2024, 6, 2), None)]["passes"] == 0
