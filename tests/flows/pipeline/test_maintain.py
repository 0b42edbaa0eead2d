"""`maintain`: few files afterwards, every row and every reader intact, resume unchanged, and a
killed commit's orphaned files removed (only once older than the grace time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.catalog_rows import DAY, FINGERPRINT, recording, unit
from connectors.catalog import Catalog, CatalogReader, DataFiles

NIGHT = timedelta(days=1)
WINDOWS = 2220  # per recording and night
#: What a reader sees; all of it must be the same before and after maintenance.
QUERIES = {
    "windows": "select recording_id, window_index, status from windows order by all",
    "predictions": "select recording_id, window_index, task, rank, label, score from predictions order by all",
    "detections": "select recording_id, window_index, label, score from detections order by all",
    "effort": "select * from effort order by all",
    "species_by_hour": "select * from species_by_hour order by all",
}


def season(results: Path, nights: int = 3) -> Catalog:
    """Nights of two deployments; each night a unit alone and units in batches (one Parquet file
    per table and commit), as the driver commits them."""
    catalog = Catalog(results)
    for night in range(nights):
        recs = [recording(f"rec-{dep}-{night}", dep, DAY + night * NIGHT, WINDOWS * 3.0)
                for dep in ("dep-a", "dep-b")]
        catalog.register_recordings(recs, [])
        for rec in recs:
            catalog.commit_unit(*unit(rec, 0, 20))
            for first in (20, 1120):
                catalog.commit_units([unit(rec, f, 100) for f in range(first, first + 1100, 100)])
    return catalog


def snapshot(reader: CatalogReader) -> dict[str, list[dict]]:
    return {name: reader.query(sql).to_pylist() for name, sql in QUERIES.items()}


def test_maintain_merges_files_and_keeps_every_row_reader_and_resume(tmp_path):
    results = tmp_path / "results"
    catalog = season(results)
    before_files = DataFiles.under(results / "data")
    resume_before = catalog.committed_windows(FINGERPRINT)
    reader = CatalogReader(results)  # open across the maintenance, as a user's session would be
    seen = snapshot(reader)
    assert len(seen["windows"]) == 3 * 2 * WINDOWS and seen["detections"]

    report = catalog.maintain(retention=timedelta(0), keep_for_readers=False, orphan_grace=timedelta(0))

    assert report.before == before_files
    assert report.snapshots_expired > 0 and report.files_deleted > 0
    after_files = DataFiles.under(results / "data")
    assert report.after == after_files
    # One file per table and partition (deployment, date) is all that is left of the windows and
    # predictions; the small tables (runs, settings, recordings...) add a few.
    partitions = 2 * 3
    assert before_files.files >= 3 * 2 * partitions  # three commits per partition, two tables
    assert after_files.files <= 2 * partitions + 6
    assert snapshot(reader) == seen  # the reader opened before still works, same rows
    with CatalogReader(results) as fresh:
        assert snapshot(fresh) == seen
    assert catalog.committed_windows(FINGERPRINT) == resume_before
    reader.close()
    # Maintaining again finds nothing to do and changes nothing.
    again = catalog.maintain(retention=timedelta(0), keep_for_readers=False, orphan_grace=timedelta(0))
    assert again.after == after_files and again.files_deleted == again.orphans_deleted == 0
    catalog.close()


def test_by_default_a_pass_deletes_what_the_pass_before_replaced(tmp_path):
    results = tmp_path / "results"
    catalog = season(results, nights=1)
    files = DataFiles.under(results / "data")
    with CatalogReader(results) as reader:
        seen = snapshot(reader)
        first = catalog.maintain()  # defaults: 30 days of snapshots, readers kept working
        assert first.snapshots_expired == 0 and first.files_deleted == 0 and first.tables_merged
        # The merged files were added; the small ones stay for queries already running.
        assert first.after.files > files.files
        assert snapshot(reader) == seen
        second = catalog.maintain()  # e.g. the next night's
        assert second.files_deleted == first.after.files - second.after.files > 0
        assert snapshot(reader) == seen
    catalog.close()


KILLED_COMMIT = textwrap.dedent("""
    import time
    from connectors import catalog as cat
    from tests.support.catalog_rows import DAY, recording, unit

    def commit_then_die(self, exc_type, *rest):
        print("files written", flush=True)  # the inserts wrote their Parquet files; no COMMIT yet
        time.sleep(600)

    c = cat.Catalog({results!r})
    rec = recording("rec-killed", "dep-a", DAY, 3600.0)
    cat._Transaction.__exit__ = commit_then_die
    c.commit_units([unit(rec, first, 100) for first in range(0, 1100, 100)])
""")


def test_a_killed_commits_orphans_are_removed_and_nothing_else(tmp_path):
    results = tmp_path / "results"
    season(results, nights=1).close()
    with Catalog(results) as catalog:
        catalog.maintain(retention=timedelta(0), keep_for_readers=False, orphan_grace=timedelta(0))
    clean = DataFiles.under(results / "data")
    with CatalogReader(results) as reader:
        seen = snapshot(reader)

    script = KILLED_COMMIT.format(results=str(results))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == "files written", proc.stderr.read() if proc.wait(5) is not None else line
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    orphaned = DataFiles.under(results / "data")
    assert orphaned.files > clean.files, "the killed commit left no files to clean up"
    with CatalogReader(results) as reader:
        assert snapshot(reader) == seen  # the killed commit is not in the catalog

    # Within the grace time an unknown file may be a commit in flight: kept.
    catalog = Catalog(results)
    kept = catalog.maintain(retention=timedelta(0), keep_for_readers=False, orphan_grace=timedelta(hours=1))
    assert kept.orphans_deleted == 0 and DataFiles.under(results / "data") == orphaned
    report = catalog.maintain(retention=timedelta(0), keep_for_readers=False, orphan_grace=timedelta(0))
    assert report.orphans_deleted == orphaned.files - clean.files
    assert DataFiles.under(results / "data") == clean
    with CatalogReader(results) as reader:
        assert snapshot(reader) == seen
    catalog.close()


def test_negative_retention_is_refused(tmp_path):
    from connectors.errors import ConfigError

    with Catalog(tmp_path / "results") as catalog, pytest.raises(ConfigError, match="retention"):
        catalog.maintain(retention=timedelta(days=-1))


def test_the_maintain_command_prints_what_it_did(tmp_path, capsys):
    import json

    from flows.cli.main import main

    results = tmp_path / "results"
    season(results, nights=1).close()
    assert main(["maintain", "--results", str(results), "--retention-days", "0", "--now"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["after"]["files"] < report["before"]["files"] and report["files_deleted"] > 0
    assert main(["maintain", "--results", str(results), "--retention-days", "-1"]) == 2
    assert "retention" in capsys.readouterr().err
