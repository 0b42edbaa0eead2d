"""A catalog written by main at 8ca6c13 (the schema before the house restructuring, built here
from that commit's own statements) opens, queries, resumes and migrates with today's code."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date

import pytest

from connectors.catalog import (
    SCHEMA_VERSION,
    Catalog,
    CatalogReader,
    _attach,
    connect_duckdb,
    views_digest,
)
from connectors.location import ResultsLocation
from connectors.tables import PREDICTIONS, RECORDINGS, WINDOWS
from tests.support import schema_8ca6c13 as old
from tests.support.catalog_rows import DAY, FINGERPRINT, recording, unit

WINDOW_S = 3.0
WINDOWS_WRITTEN = 5


def statements(text: str) -> list[str]:
    """A file's statements, split on `;` at the end of a line (as that code split them)."""
    out, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current))
            current = []
    rest = "\n".join(current).strip()
    if rest and any(ln.strip() and not ln.strip().startswith("--") for ln in current):
        out.append(rest)
    return out


def old_views_digest() -> str:
    return hashlib.sha256("\n".join(old.VIEWS).encode()).hexdigest()[:16]


def build_old_catalog(root) -> tuple[str, str]:
    """The catalog that code left after one run: its migrations and views applied, its settings
    recorded, one recording with WINDOWS_WRITTEN committed windows."""
    location = ResultsLocation.resolve(root)
    (root / "data").mkdir(parents=True)
    con = connect_duckdb(location)
    _attach(con, location, read_only=False)
    for text in (*old.MIGRATIONS, *old.VIEWS):
        for statement in statements(text):
            con.execute(statement)
    for key, value in (("schema_version", str(len(old.MIGRATIONS))),
                       ("views_sha256", old_views_digest())):
        con.execute("delete from settings where key = ?", [key])
        con.execute("insert into settings (key, value) values (?, ?)", [key, value])
    rec = recording("rec-old", "dep-a", DAY, 60.0)
    windows, predictions = unit(rec, 0, WINDOWS_WRITTEN, window_s=WINDOW_S)
    for table, rows, name in ((RECORDINGS, [rec], "recordings"), (WINDOWS, windows, "windows"),
                              (PREDICTIONS, predictions, "predictions")):
        # Only the columns that code's tables had: today's rows carry later ones (migrations 6+).
        had = [d[0] for d in con.execute(f"select * from {name} limit 0").description]
        arrow = table.to_arrow(rows)
        con.register("_rows", arrow.select([c for c in arrow.column_names if c in had]))
        con.execute(f"insert into {name} by name select * from _rows")
        con.unregister("_rows")
    con.close()
    return rec.recording_id, rec.deployment_id


@pytest.fixture
def old_catalog(tmp_path):
    root = tmp_path / "results"
    recording_id, deployment_id = build_old_catalog(root)
    return root, recording_id, deployment_id


def test_the_old_catalog_differs_from_todays_views():
    # Otherwise the test below would not exercise a refresh at all.
    assert old_views_digest() != views_digest()
    assert len(old.MIGRATIONS) <= SCHEMA_VERSION


def test_it_opens_and_queries_through_the_new_effort_view(old_catalog):
    root, _, deployment_id = old_catalog
    with CatalogReader(root) as reader:
        effort = reader.analysis("effort_by_day").to_pylist()
        rows = reader.query("select * from site_day_effort").to_pylist()
    hours = WINDOWS_WRITTEN * WINDOW_S / 3600.0
    assert [(r["site_id"], r["local_date"], r["windows"], r["windows_ok"]) for r in effort] == [
        (deployment_id, date(2024, 6, 1), WINDOWS_WRITTEN, WINDOWS_WRITTEN)]
    assert effort[0]["hours_analysed"] == pytest.approx(hours)
    assert [(r["config_fingerprint"], r["site_id"]) for r in rows] == [(FINGERPRINT, deployment_id)]
    assert rows[0]["effort_hours"] == pytest.approx(hours)


def test_it_migrates_and_a_run_resumes_where_it_stopped(old_catalog):
    root, recording_id, _ = old_catalog
    with Catalog(root) as catalog:
        assert catalog.schema_version == SCHEMA_VERSION
        assert catalog.setting("views_sha256") == views_digest()
        done = catalog.committed_windows(FINGERPRINT)
        assert done == {(recording_id, 0): set(range(WINDOWS_WRITTEN))}
        rec = catalog.known_recordings()[0]
        catalog.commit_unit(*unit(rec, WINDOWS_WRITTEN, 2, window_s=WINDOW_S))
        assert catalog.committed_windows(FINGERPRINT) == {
            (recording_id, 0): set(range(WINDOWS_WRITTEN + 2))}


def test_its_windows_say_quality_was_not_measured_and_the_qc_analyses_answer(old_catalog):
    # Quality per window (schema version 9): windows analysed before it keep NULL ("not
    # measured"), still count as effort under the default qc=exclude, and new windows carry it.
    root, recording_id, deployment_id = old_catalog
    with CatalogReader(root) as reader:
        (night,) = reader.analysis("qc_by_night").to_pylist()
        effort = reader.analysis("effort_by_day").to_pylist()
        qc = reader.query("select distinct qc, rms_dbfs from windows").to_pylist()
    assert (night["deployment_id"], night["windows_analysed"], night["windows_not_measured"],
            night["windows_qc_ok"]) == (deployment_id, WINDOWS_WRITTEN, WINDOWS_WRITTEN, 0)
    assert effort[0]["hours_analysed"] == pytest.approx(WINDOWS_WRITTEN * WINDOW_S / 3600.0)
    assert effort[0]["windows_qc_unmeasured"] == WINDOWS_WRITTEN
    assert qc == [{"qc": None, "rms_dbfs": None}]
    with Catalog(root) as catalog:
        rec = catalog.known_recordings()[0]
        windows, predictions = unit(rec, WINDOWS_WRITTEN, 2, window_s=WINDOW_S)
        catalog.commit_unit([dataclasses.replace(w, qc="silent", rms_dbfs=-95.0) for w in windows],
                            predictions)
    with CatalogReader(root) as reader:
        (night,) = reader.analysis("qc_by_night").to_pylist()
        (day,) = reader.analysis("effort_by_day").to_pylist()
    assert (night["windows_silent"], night["windows_not_measured"]) == (2, WINDOWS_WRITTEN)
    assert day["hours_analysed"] == pytest.approx(WINDOWS_WRITTEN * WINDOW_S / 3600.0)
