"""A full disk is named (issue 25, item 9).

The results folder on a small real tmpfs (a file system of its own, mounted for the test; root
only, skipped elsewhere with the reason), filled to the last byte: a unit's commit fails with "no
space left on <results>", its transaction rolled back whole, the catalog still readable, and the
same commit after space is freed gives exactly the rows of a disk that never filled. `dawnchorus
run` on the full disk ends in that one line (exit 75), and a re-run after freeing space is exact.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.catalog_rows import DAY, recording, unit
from connectors.catalog import Catalog, CatalogReader
from connectors.errors import DiskFull
from tests.support.cli_output import stderr_lines
from tests.support.synth_audio import make_deployment

pytestmark = pytest.mark.slow  # the CLI case starts Ray too: marked e2e there

EXIT_SERVICE = 75
ROWS = "select recording_id, channel, window_index, status, task, label, score " \
       "from windows left join predictions using (recording_id, channel, window_index, " \
       "config_fingerprint) order by all"
ROWS_BY_TIME = "select w.start_utc, channel, window_index, status, task, label, score " \
       "from windows as w left join predictions using (recording_id, channel, window_index, " \
       "config_fingerprint) order by all"


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 24 MiB tmpfs of its own at tmp_path/disk."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte; the filler file (delete it to free the space)."""
    filler = disk / "filler"
    block = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _rows(results: Path, by_time: bool = False) -> list[dict]:
    with CatalogReader(results) as reader:
        return reader.query(ROWS_BY_TIME if by_time else ROWS).to_pylist()


def test_a_units_commit_on_a_full_disk_is_named_rolled_back_and_redone_exactly(small_disk, tmp_path):
    recs = [recording(f"rec-{i}", "dep-a", DAY + timedelta(hours=i), 900.0) for i in range(2)]
    units = [unit(rec, first, 100) for rec in recs for first in (0, 100, 200)]
    clean = tmp_path / "clean"
    with Catalog(clean) as catalog:
        catalog.register_recordings(recs, [])
        catalog.commit_units(units)
    expected = _rows(clean)

    results = small_disk / "results"
    with Catalog(results) as catalog:
        catalog.register_recordings(recs, [])
        catalog.commit_units(units[:3])
    before = _rows(results)
    filler = fill(small_disk)
    with Catalog(results) as catalog:
        with pytest.raises(DiskFull) as failed:
            catalog.commit_units(units[3:])
    assert str(failed.value).startswith(f"no space left on {results} (")
    assert _rows(results) == before  # rolled back whole, and the catalog reads
    filler.unlink()
    with Catalog(results) as catalog:
        catalog.commit_units(units[3:])
    assert _rows(results) == expected


def _cli_run(source: Path, results: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--source", str(source), "--results",
         str(results), "--model", "placeholder"],
        env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_a_run_on_a_full_disk_ends_in_one_line_and_the_rerun_is_exact(small_disk, tmp_path):
    start = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
    source = tmp_path / "source"
    make_deployment(source, "dep-a", [start], 45.0, 16_000, events={0: [(12.0, 3.0, 2000.0)]})
    later = tmp_path / "later"  # a second night, added before the disk fills
    make_deployment(later, "dep-a", [start + timedelta(days=1)], 45.0, 16_000,
                    events={0: [(22.0, 3.0, 2500.0)]})

    clean = tmp_path / "clean"
    make_deployment(tmp_path / "all", "dep-a", [start], 45.0, 16_000, events={0: [(12.0, 3.0, 2000.0)]})
    make_deployment(tmp_path / "all", "dep-a", [start + timedelta(days=1)], 45.0, 16_000,
                    events={0: [(22.0, 3.0, 2500.0)]})
    assert _cli_run(tmp_path / "all", clean).returncode == 0
    expected = _rows(clean, by_time=True)  # recording ids name the source folder: compare by time

    results = small_disk / "results"
    first = _cli_run(source, results)
    assert first.returncode == 0, first.stderr[-3000:]
    before = _rows(results)
    for path in (later / "dep-a").iterdir():
        os.replace(path, source / "dep-a" / path.name)
    filler = fill(small_disk)
    full = _cli_run(source, results)
    assert full.returncode == EXIT_SERVICE, full.stdout[-2000:] + full.stderr[-3000:]
    lines = stderr_lines(full.stderr)
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert lines[0].startswith(f"dawnchorus: error: no space left on {results} ("), lines[0]
    assert _rows(results) == before  # readable, nothing half-written
    filler.unlink()
    again = _cli_run(source, results)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _rows(results, by_time=True) == expected
