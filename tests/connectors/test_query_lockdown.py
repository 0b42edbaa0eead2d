"""`dawnchorus query` (and every read-only path) cannot modify the catalog, cannot read or write
files other than the catalog's own, cannot attach other databases, and cannot undo those limits
from inside the SQL, and never sees a credential. Each escape is tried for real against a real
DuckLake catalog of each kind - the embedded SQLite default, and a Postgres catalog with its data
on S3 (moto) - each must fail with a short error and exit 2, and leave the catalog, the file
system and the bucket as they were."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.lakes import LAKE_KINDS
from connectors.catalog import Catalog, CatalogReader, QueryRefused
from connectors.catalog.shell_script import extension_file
from connectors.location import ResultsLocation
from connectors.tables import PredictionRow, RecordingRow, WindowRow
from tests.support.lakes import LakeFactory
from tests.support.s3server import FAKE_SECRET_ACCESS_KEY

START = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module", params=LAKE_KINDS)
def lake(request, tmp_path_factory) -> LakeFactory:
    return LakeFactory(request.param, request, tmp_path_factory)


@pytest.fixture(scope="module")
def results(lake) -> ResultsLocation:
    """A catalog with one recording, two windows and their predictions."""
    root = lake()
    with Catalog(root) as catalog:
        catalog.register_recordings([RecordingRow(
            recording_id="rec", deployment_id="dep", uri="/x/dep/a.wav", object_key="dep/a.wav",
            size_bytes=10, etag=None, mtime=None, duration_s=20.0, frames=320000,
            sample_rate_hz=16000, channels=1, format="WAV", subtype="PCM_16", start_utc=START,
            tz_name="UTC", time_source="filename", tz_source="recorder_convention", status="ok",
            error=None, run_id="run", discovered_at=START)], [])
        for index in (0, 1):
            key = dict(recording_id="rec", deployment_id="dep", channel=0, window_index=index,
                       offset_s=10.0 * index, start_utc=START, start_local=None, date=START.date())
            catalog.commit_unit(
                [WindowRow(run_id="run", config_fingerprint="fp", window_s=10.0, duration_s=10.0,
                           status="ok", padded=False, error=None, **key)],
                [PredictionRow(run_id="run", model_id="m", config_fingerprint="fp", task="classify",
                               prompt_id="p", rank=1, answer_text="Robin", label="Robin",
                               scientific_name="Erithacus rubecula", score=0.9, **key)],
            )
    return root


@pytest.fixture(scope="module")
def outside(tmp_path_factory, lake, results):
    """Files beside the catalog that no query may touch: a CSV, another SQLite database, Parquet
    (and, for data on S3, a Parquet file in the same bucket beside the results prefix)."""
    folder = tmp_path_factory.mktemp("outside")
    if results.data_on_s3:
        with lake.s3.filesystem().open(f"{results.results}-other/other.parquet", "wb") as fh:
            pq.write_table(pa.table({"x": ["private"]}), fh)
    (folder / "secret.csv").write_text("token\nhunter2\n", encoding="utf-8")
    con = sqlite3.connect(folder / "other.sqlite")
    con.execute("create table z (x)")
    con.execute("insert into z values ('private')")
    con.commit()
    con.close()
    pq.write_table(pa.table({"x": ["private"]}), folder / "other.parquet")
    (folder / "evil.duckdb_extension").write_bytes(bytes(range(256)) * 64)
    return folder


def state(lake, results) -> dict:
    with CatalogReader(results) as reader:
        counts = reader.query("select (select count(*) from predictions) as p, "
                              "(select count(*) from windows) as w, "
                              "(select count(*) from recordings) as r").to_pylist()[0]
    return {"counts": counts, "files": lake.files(results)}


def escapes(results: ResultsLocation, outside) -> list[str]:
    catalog = results.catalog
    data = results.data_path
    return [
        # write the catalog, directly or by re-attaching it read-write
        "delete from predictions",
        "insert into windows select * from windows",
        "update predictions set score = 1",
        "drop table windows",
        "create table lake.x as select 1",
        "create temp table x as select 1",
        "use memory",
        "detach lake",
        f"attach 'ducklake:sqlite:{catalog}' as rw",
        f"use memory; detach lake; attach 'ducklake:sqlite:{catalog}' as rw; delete from rw.predictions",
        f"attach '{outside / 'other.sqlite'}' as o (type sqlite)",
        "call ducklake_expire_snapshots('lake', older_than => now())",
        "checkpoint",
        # write files
        f"copy (select 1) to '{outside / 'out.csv'}'",
        f"copy predictions to '{outside / 'out.parquet'}'",
        f"export database '{outside / 'dump'}'",
        # read files, databases or settings outside the catalog
        f"select * from read_csv('{outside / 'secret.csv'}')",
        f"select * from read_text('{outside / 'secret.csv'}')",
        f"select * from '{outside / 'secret.csv'}'",
        f"select * from read_parquet('{outside / 'other.parquet'}')",
        f"select * from sqlite_scan('{outside / 'other.sqlite'}', 'z')",
        f"select * from sqlite_scan('{catalog}', 'ducklake_data_file')",
        f"select * from sqlite_attach('{outside / 'other.sqlite'}')",
        f"select (select count(*) from sqlite_scan('{outside / 'other.sqlite'}', 'z')) as n",
        "select * from query('select 1')",
        "select * from glob('/etc/*')",
        "select * from read_csv('/etc/passwd')",
        "select * from __ducklake_metadata_lake.ducklake_data_file",
        "select * from __ducklake_metadata_lake.public.ducklake_metadata",
        # climb out of the data path (an S3 path is checked as text: `..` must not pass)
        f"select * from '{data}../../outside/secret.csv'",
        f"select * from '{data}../../{results.results.rsplit('/', 1)[-1]}-other/other.parquet'",
        f"select * from read_parquet('{data}../../x-other/other.parquet')",
        # the Postgres catalog behind the lake, directly
        f"attach '{catalog}' as pg (type postgres)",
        f"attach 'ducklake:postgres:{catalog}' as rw",
        f"select * from postgres_scan('{catalog}', 'public', 'ducklake_metadata')",
        f"select * from postgres_query('lake', 'select 1')",
        "call postgres_execute('lake', 'drop table ducklake_snapshot')",
        # credentials: secrets, settings, the environment
        "select * from duckdb_secrets()",
        "select * from duckdb_secrets(redact => false)",
        "select * from duckdb_settings()",
        "create secret leak (type s3, key_id 'x', secret 'y')",
        "drop secret dawnchorus_results",
        "select * from which_secret('s3://any/thing', 's3')",
        # undo the limits
        "set enable_external_access = true",
        "reset allowed_directories",
        "set lock_configuration = false",
        "pragma enable_profiling",
        "install httpfs",
        "load sqlite",
        # extension code by path: a real, signed one from its wheel, and an unsigned file (the
        # catalog's own connections skip re-checking signatures once a file has passed)
        f"load '{extension_file('postgres')}'",
        f"load '{outside / 'evil.duckdb_extension'}'",
    ]


def test_files_under_the_working_directory_are_out_of_reach(results, tmp_path, monkeypatch):
    """DuckDB allows its spill folder (by default `.tmp` under the working directory) even when
    external access is off; the reader's spill folder is its own, empty one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.csv").write_text("token\nhunter2\n", encoding="utf-8")
    with CatalogReader(results) as reader:
        for sql in (f"select * from '{tmp_path / '.tmp' / 'secret.csv'}'",
                    "select * from '.tmp/secret.csv'"):
            with pytest.raises(QueryRefused):
                reader.query(sql)


def test_every_escape_is_refused_and_changes_nothing(lake, results, outside):
    before = state(lake, results)
    outside_before = sorted(p.name for p in outside.iterdir())
    with CatalogReader(results) as reader:
        for sql in escapes(results, outside):
            with pytest.raises(QueryRefused) as refused:
                reader.query(sql)
            message = str(refused.value)
            assert "\n" not in message and message.startswith("query "), (sql, message)
            assert "private" not in message and "hunter2" not in message, sql
            assert FAKE_SECRET_ACCESS_KEY not in message, sql
        # The reader still answers ordinary questions after every attempt.
        assert reader.query("select count(*) as n from detections").to_pylist() == [{"n": 2}]
    assert state(lake, results) == before
    assert sorted(p.name for p in outside.iterdir()) == outside_before


@pytest.mark.parametrize("sql", [
    "select label, score from detections order by window_index",
    "select * from lake.windows",
    "with w as (select * from windows) select count(*) from w",
    "describe detections",
    "select * from species_by_hour",
    "select * from range(3)",
    "select * from ducklake_snapshots('lake')",
])
def test_ordinary_queries_still_run(results, sql):
    with CatalogReader(results) as reader:
        assert reader.query(sql).num_rows > 0


def test_no_setting_or_function_shows_a_credential(results):
    """What a query can still call - settings, scalar functions - never returns a secret (the
    S3 secret the data path needs is a temporary DuckDB secret, not an s3_* setting)."""
    with CatalogReader(results) as reader:
        for sql in ("select current_setting('s3_secret_access_key') as v",
                    "select current_setting('s3_access_key_id') as v",
                    "select current_setting('s3_session_token') as v",
                    "select getenv('AWS_SECRET_ACCESS_KEY') as v"):
            try:
                values = reader.query(sql).to_pylist()
            except QueryRefused as refused:
                values = [str(refused)]
            assert FAKE_SECRET_ACCESS_KEY not in repr(values), sql


def test_no_progress_bar_can_reach_stdout(results):
    """DuckDB draws a progress bar on stdout once a query passes 2 s: into `--format csv` output
    (seen here when a slow machine made a migration take longer)."""
    with CatalogReader(results) as reader:
        assert reader.query("select current_setting('enable_progress_bar') as p"
                            ).to_pylist() == [{"p": False}]


def test_files_are_allowed_only_under_the_data_path(results, tmp_path, monkeypatch):
    """DuckDB also allows its spill folder, by default `.tmp` in the working directory."""
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "notes.csv").write_text("token\nhunter2\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with CatalogReader(results) as reader:
        allowed = reader.query("select current_setting('allowed_directories') as a").to_pylist()[0]["a"]
        others = [a for a in allowed if a != results.data_path]
        assert len(others) == len(allowed) - 1, allowed
        # The only other one is the reader's own spill folder: private and empty.
        assert all(str(tmp_path) not in a and Path(a).is_dir() and not any(Path(a).iterdir())
                   for a in others), allowed


def test_the_cli_refuses_with_exit_2_and_one_line(lake, results, outside, capsys):
    from flows.cli.main import main

    for sql in (f"copy (select 1) to '{outside / 'cli.csv'}'",
                f"select * from sqlite_scan('{outside / 'other.sqlite'}', 'z')",
                "select * from no_such_table"):
        assert main(["query", *lake.cli_args(results), sql]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dawnchorus: error: query") and "\n" not in err, err
    assert not (outside / "cli.csv").exists()


def test_no_traceback_from_a_real_process(lake, results):
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "query", *lake.cli_args(results), "detach lake"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("dawnchorus: error: query refused")


def test_a_reader_threshold_applies_to_this_reader_only(results):
    with CatalogReader(results, threshold=0.95) as strict:
        assert strict.query("select count(*) as n from detections").to_pylist() == [{"n": 0}]
        with CatalogReader(results) as default:
            assert default.query("select count(*) as n from detections").to_pylist() == [{"n": 2}]
