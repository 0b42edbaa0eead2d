"""Several processes write one catalog at once: a run commits units while the review page writes
verdicts and a reader reads. SQLite takes one writer at a time and DuckDB's sqlite extension does
not wait for a busy database, so without retrying a busy catalog one of the writers fails
("database is locked"); every row of every writer must land exactly once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import PredictionRow, ReviewRow, WindowRow

pytestmark = pytest.mark.slow

UNITS = 25
REVIEWS = 25

REPO_ROOT = Path(__file__).resolve().parents[2]  # `tests.` imports resolve from here


def unit_rows(i: int) -> tuple[list[WindowRow], list[PredictionRow]]:
    window = WindowRow(
        run_id="run", config_fingerprint="fp", recording_id=f"rec{i}", deployment_id="dep",
        channel=0, window_index=0, offset_s=0.0, window_s=10.0, duration_s=10.0, start_utc=None,
        start_local=None, date=date(2024, 6, 1), status="ok", padded=False, error=None)
    prediction = PredictionRow(
        run_id="run", model_id="m", config_fingerprint="fp", recording_id=f"rec{i}",
        deployment_id="dep", channel=0, window_index=0, offset_s=0.0, start_utc=None,
        start_local=None, date=date(2024, 6, 1), task="classify", prompt_id="p", rank=1,
        answer_text="wren", label="wren", scientific_name=None, score=0.5)
    return [window], [prediction]


def write_units(results: str, n: int) -> None:
    """What a run does: commit n units, each in its own transaction (run in a subprocess)."""
    with Catalog(results) as catalog:
        for i in range(n):
            catalog.commit_unit(*unit_rows(i))


def review(i: int) -> ReviewRow:
    return ReviewRow(
        review_id=uuid.uuid4().hex, reviewed_at=datetime.now(timezone.utc), reviewer="ana",
        recording_id=f"rec{i}", config_fingerprint="fp", channel=0, window_index=0,
        deployment_id="dep", label="wren", score=0.5, verdict="correct", corrected_label=None,
        via="page")


def test_verdicts_and_units_written_at_once_all_land_exactly_once(tmp_path):
    results = tmp_path / "results"
    Catalog(results).close()
    runner = subprocess.Popen(
        [sys.executable, "-c",
         f"from tests.connectors.test_catalog_concurrency import write_units; "
         f"write_units({str(results)!r}, {UNITS})"],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    counts = []
    try:
        with Catalog(results) as page, CatalogReader(results) as reader:
            for i in range(REVIEWS):
                page.add_review(review(i))
                counts.append(reader.query("select count(*) as n from reviews").column("n")[0].as_py())
    finally:
        _, stderr = runner.communicate(timeout=300)
    assert runner.returncode == 0, stderr
    # The long-lived reader saw each verdict as it was committed.
    assert counts == list(range(1, REVIEWS + 1))
    with CatalogReader(results) as reader:
        got = reader.query("""
            select (select count(*) from windows) as windows,
                   (select count(distinct recording_id) from windows) as distinct_windows,
                   (select count(*) from predictions) as predictions,
                   (select count(*) from reviews) as reviews,
                   (select count(distinct review_id) from reviews) as distinct_reviews""").to_pylist()
    assert got == [{"windows": UNITS, "distinct_windows": UNITS, "predictions": UNITS,
                    "reviews": REVIEWS, "distinct_reviews": REVIEWS}]
