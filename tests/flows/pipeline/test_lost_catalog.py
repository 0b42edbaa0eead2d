"""Data files outlive a lost catalog (issue 25, item 2).

A results folder whose catalog.sqlite is deleted or truncated to 0 bytes beside its data files:
`dawnchorus run` and `dawnchorus maintain` refuse (exit 2, one line naming the catalog, the data
and the way back), create nothing and delete nothing; and a catalog's maintenance never deletes
data files older than itself (another catalog's), however they came there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.catalog_rows import DAY, recording, unit
from connectors.catalog import Catalog, CatalogReader
from connectors.errors import ConfigError
from tests.support.synth_audio import make_deployment


def _season(results: Path) -> None:
    """A results folder with several data files, as runs leave it."""
    with Catalog(results) as catalog:
        recs = [recording(f"rec-{dep}", dep, DAY, 600 * 3.0) for dep in ("dep-a", "dep-b")]
        catalog.register_recordings(recs, [])
        for rec in recs:
            for first in (0, 200, 400):
                catalog.commit_unit(*unit(rec, first, 200))


def _tree(folder: Path) -> dict[str, int]:
    """Every file under `folder` with its size."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _lose(catalog: Path, how: str) -> None:
    if how == "deleted":
        catalog.unlink()
    else:
        catalog.write_bytes(b"")  # a torn copy, a truncation


@pytest.mark.slow  # a CLI subprocess each, refused before Ray starts
@pytest.mark.parametrize("how", ["deleted", "zero bytes"])
def test_run_and_maintain_refuse_a_lost_catalog_beside_data(tmp_path, how):
    results = tmp_path / "results"
    _season(results)
    data_before = _tree(results / "data")
    assert len(data_before) >= 6
    _lose(results / "catalog.sqlite", how)
    everything_before = _tree(results)
    start = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
    make_deployment(tmp_path / "source", "dep-a", [start], 35.0, 16_000)

    for command in (["run", "--source", str(tmp_path / "source"), "--results", str(results),
                     "--model", "placeholder"],
                    ["maintain", "--results", str(results), "--now"]):
        proc = _cli(*command)
        assert proc.returncode == 2, (command[0], proc.stdout[-2000:], proc.stderr[-3000:])
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        line = lines[0]
        assert line.startswith("dawnchorus: error: catalog ")
        assert str(results / "catalog.sqlite") in line and str(results / "data") in line
        assert "restore catalog.sqlite from a backup" in line and "move" in line
        assert "docs/operations.md" in line
        assert _tree(results) == everything_before, command[0]  # nothing created, nothing deleted
    assert _tree(results / "data") == data_before


def test_the_writer_refuses_too_and_a_first_run_is_not_refused(tmp_path):
    results = tmp_path / "results"
    Catalog(results).close()  # an empty results folder: a first run creates its catalog
    _season(results)
    (results / "catalog.sqlite").write_bytes(b"not a database at all, but bytes")
    with pytest.raises(ConfigError, match="is not a SQLite database, but .* data files"):
        Catalog(results)


def test_maintenance_never_deletes_files_older_than_its_catalog(tmp_path):
    """Another catalog's data files under this catalog's data folder (a lost catalog's, a
    restored backup's) are not this catalog's orphans, whatever DuckLake lists."""
    old = tmp_path / "old"
    _season(old)
    new = tmp_path / "new"
    with Catalog(new) as catalog:  # a fresh catalog, created after the old files were written
        rec = recording("rec-new", "dep-c", DAY, 300.0)
        catalog.register_recordings([rec], [])
        catalog.commit_unit(*unit(rec, 0, 100))
    with CatalogReader(new) as reader:
        rows = reader.query("select count(*) as n from windows").to_pylist()
    foreign = []
    for path in sorted((old / "data").rglob("*.parquet")):
        target = new / "data" / "foreign" / path.relative_to(old / "data")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)  # keeps the old files' times
        foreign.append(target)
    with Catalog(new) as catalog:
        report = catalog.maintain(retention=timedelta(0), keep_for_readers=False,
                                  orphan_grace=timedelta(0))
    assert report.orphans_deleted == 0
    assert all(path.exists() for path in foreign)
    with CatalogReader(new) as reader:
        assert reader.query("select count(*) as n from windows").to_pylist() == rows
