"""A catalog written before call events and bands (schema version 10) opens with today's code:
migration 0011 gives predictions their call box and windows their band, old rows keep NULL
("not recorded"), the views expose the new columns, and new rows with calls sit beside them."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.catalog import SCHEMA_VERSION, Catalog, CatalogReader
from connectors.catalog.schema import MIGRATIONS
from connectors.tables import PREDICTIONS, RECORDINGS, TABLES, WINDOWS
from tests.connectors.test_catalog_schema import catalog_columns, defined_columns
from tests.support.catalog_rows import DAY, recording, unit
from tests.support.old_catalog import build_catalog_at_version

VERSION_BEFORE = 10
NEW_PREDICTION_COLUMNS = ("call_start_s", "call_end_s", "low_freq_hz", "high_freq_hz",
                          "detection_score")
NEW_WINDOW_COLUMNS = ("band_low_hz", "band_high_hz")


def build_version_10_catalog(root) -> None:
    """The catalog version 10 left after one run: its tables, its version, one recording with
    three windows (no views: the upgrade writes today's)."""
    rec = recording("rec-old", "dep-a", DAY, 30.0)
    windows, predictions = unit(rec, 0, 3)
    build_catalog_at_version(root, VERSION_BEFORE,
                             [(RECORDINGS, [rec]), (WINDOWS, windows), (PREDICTIONS, predictions)])


def test_the_migration_follows_version_10_which_lacked_its_columns():
    assert MIGRATIONS[VERSION_BEFORE] == "migrations/0011_call_events"
    assert SCHEMA_VERSION >= VERSION_BEFORE + 1  # later migrations (0012: float16) follow it


def test_a_version_10_catalog_gains_the_columns_and_its_rows_say_not_recorded(tmp_path):
    root = tmp_path / "results"
    build_version_10_catalog(root)
    with Catalog(root) as catalog:
        assert catalog.schema_version == SCHEMA_VERSION
        for table in TABLES:
            assert catalog_columns(catalog, table) == defined_columns(table), table
        rec = catalog.known_recordings()[0]
        windows, predictions = unit(rec, 3, 1)
        call = dataclasses.replace(predictions[1], call_start_s=9.25, call_end_s=9.26,
                                   low_freq_hz=41_000.0, high_freq_hz=49_000.0,
                                   detection_score=0.8, score=0.9)
        banded = [dataclasses.replace(w, band_low_hz=0.0, band_high_hz=24_000.0) for w in windows]
        catalog.commit_units([(banded, [predictions[0], call], [], [])])
    with CatalogReader(root) as reader:
        old = reader.query("select count(*) as n from predictions where window_index < 3 and ("
                           + " or ".join(f"{c} is not null" for c in NEW_PREDICTION_COLUMNS)
                           + ")").to_pylist()
        effort = reader.query("select band_low_hz, band_high_hz, windows_band_unknown, windows_ok "
                              "from effort").to_pylist()
        by_day = reader.analysis("effort_by_day").to_pylist()
        calls = reader.query("select window_index, call_start_s, call_end_s, low_freq_hz, "
                             "high_freq_hz, detection_score, call_start_utc from detections "
                             "where call_start_s is not null").to_pylist()
        window_level = reader.query("select count(*) as n from detections where call_start_s "
                                    "is null and call_start_utc is null").to_pylist()
    assert old == [{"n": 0}]
    # The day's band is the one window that recorded it; three could not say (before version 11).
    assert effort == [{"band_low_hz": 0.0, "band_high_hz": 24_000.0, "windows_band_unknown": 3,
                       "windows_ok": 4}]
    assert (by_day[0]["band_high_hz"], by_day[0]["windows_band_unknown"]) == (24_000.0, 3)
    assert [{k: v for k, v in c.items() if k != "call_start_utc"} for c in calls] == [
        {"window_index": 3, "call_start_s": 9.25, "call_end_s": 9.26, "low_freq_hz": 41_000.0,
         "high_freq_hz": 49_000.0, "detection_score": 0.8}]
    assert (calls[0]["call_start_utc"] - DAY).total_seconds() == pytest.approx(9.25)
    assert window_level[0]["n"] > 0
