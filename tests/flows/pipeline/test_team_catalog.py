"""A team's setup end to end: audio on S3, Parquet results on S3, the DuckLake catalog in a real
PostgreSQL, runs started as separate `dawnchorus run` processes (as two Prefect flow runs would
be) that share one Ray cluster, joined through RAY_ADDRESS. Runs on different deployments write
at once; runs on the same deployment queue on its lease; the final rows equal those of the same
runs one after the other; a killed run resumes exactly once; `dawnchorus query` reads the
catalog from another process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import pytest

from connectors.catalog import CatalogReader
from connectors.location import ResultsLocation
from flows.pipeline.prefect_flows import nightly
from flows.pipeline.settings import RunSettings
from tests.support.s3server import subprocess_env
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow,
              pytest.mark.usefixtures("prefect_server", "ray_local", "s3_server", "postgres")]

RATE_HZ = 8_000
START = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
COMMON = ["--model", "placeholder", "--windows-per-unit", "2", "--batch-size", "4"]
#: Columns that differ between two runs of the same work by design.
RUN_COLUMNS = {"run_id", "updated_run_id", "discovered_at"}


@pytest.fixture(scope="module")
def shared_ray(s3_server):
    """One Ray cluster the module's drivers share (as flow runs share a team's cluster), so no
    run starts a Ray of its own; started after the S3 server, so its workers have AWS_*."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 6, "include_dashboard": False, "object_store_memory": 100 * 1024**2})
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def source(s3_server, tmp_path_factory) -> str:
    """dep-a and dep-b, two 60-s recordings each, uploaded to S3."""
    local = tmp_path_factory.mktemp("audio")
    for n, dep in enumerate(("dep-a", "dep-b")):
        make_deployment(local, dep, [START + timedelta(hours=h + 3 * n) for h in range(2)], 60.0,
                        RATE_HZ, events={0: [(12.0, 4.0, 1000.0 + 500 * n)]})
    bucket = s3_server.make_bucket("field")
    s3_server.upload_tree(local, f"{bucket}/season")
    return f"{bucket}/season"


def cli(s3_server, ray_address: str | None, *args: str) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = {**subprocess_env(s3_server), "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop("RAY_ADDRESS", None)
    # Results on S3 with a Postgres catalog leave no local folder: the run log goes here.
    env["DAWNCHORUS_LOG_DIR"] = os.path.join(tempfile.gettempdir(), "dawnchorus-test-logs")
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def terminal_summary(out: str) -> dict:
    """Status and windows from the summary line `dawnchorus run` ends with (flows/cli/terminal.py)."""
    found = re.search(r"^(\w+): (\d+) windows committed \((\d+) failed\)", out, re.M)
    assert found, out[-2000:]
    return {"status": found[1], "windows": int(found[2]), "windows_failed": int(found[3])}


def finish(procs: list[subprocess.Popen]) -> list[dict]:
    """Wait for every process; each must exit 0; their printed summaries."""
    outcomes = [(p.wait(timeout=900), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, out, err in outcomes:
        assert code == 0, (out + err)[-3000:]
    return [terminal_summary(out) for _, out, _ in outcomes]


def table_rows(location: ResultsLocation, table: str) -> list[tuple]:
    with CatalogReader(location) as reader:
        result = reader.query(f"select * from {table}")
    names = [n for n in result.column_names if n not in RUN_COLUMNS]
    return sorted(tuple(str(r[n]) for n in names) for r in result.select(names).to_pylist())


def test_runs_share_a_postgres_catalog_on_s3_and_equal_sequential_runs(
        source, s3_server, postgres, shared_ray, tmp_path):
    catalog = postgres.create_database("team")
    results = s3_server.make_bucket("team-results") + "/season"
    place = ["--source", source, "--results", results, "--catalog", catalog, *COMMON]

    # Two runs on different deployments, at once.
    a_b = finish([cli(s3_server, shared_ray, "run", *place, "--deployment", dep)
                  for dep in ("dep-a", "dep-b")])
    assert [s["status"] for s in a_b] == ["completed", "completed"]
    assert [s["windows"] for s in a_b] == [12, 12]
    # Two runs on the same deployment (a new window length: new work), at once: they queue on
    # the deployment's lease, so the second finds the first's rows and adds none.
    same = finish([cli(s3_server, shared_ray, "run", *place, "--deployment", "dep-a",
                       "--window-s", "5", "--lease-wait-s", "600") for _ in range(2)])
    assert sorted(s["windows"] for s in same) == [0, 24]

    location = ResultsLocation.resolve(results, catalog)
    with CatalogReader(location) as reader:
        runs = reader.query("select run_id, started_at, finished_at, status, counts from runs "
                            "order by started_at").to_pylist()
    assert [r["status"] for r in runs] == ["completed"] * 4
    first, second = sorted(runs[:2], key=lambda r: r["started_at"])
    assert second["started_at"] < first["finished_at"], "the dep-a and dep-b runs did not overlap"

    # The same work done one run after another, into a local SQLite catalog: the same rows.
    # (One run over both deployments writes what the dep-a run and the dep-b run wrote; the
    # size of work units changes no row.)
    options = s3_server.storage_options()
    reference = tmp_path / "sequential"
    for extra in ({}, {"deployments": ("dep-a",), "window_s": 5.0}):
        nightly(RunSettings(source=source, results=str(reference), model="placeholder",
                            windows_per_unit=30, batch_size=8, storage_options=options, **extra))
    for table in ("windows", "predictions", "recordings", "deployments"):
        shared = table_rows(location, table)
        assert shared == table_rows(ResultsLocation.resolve(reference), table), table
        assert len(shared) == len(set(shared)), table

    # Every data file and report is on S3; `dawnchorus query` reads it all from another process.
    stored = s3_server.filesystem().find(results[len("s3://"):])
    assert any("/data/main/windows/" in p and p.endswith(".parquet") for p in stored)
    assert sum(p.endswith("summary.md") for p in stored) == 4
    query = cli(s3_server, None, "query", "--results", results, "--catalog", catalog,
                "--format", "csv",
                "select config_fingerprint, count(*) as n from windows group by 1 order by 2")
    out, err = query.communicate(timeout=300)
    assert query.returncode == 0, err[-2000:]
    assert [line.split(",")[1] for line in out.strip().splitlines()[1:]] == ["24", "24"]


def committed_windows(location: ResultsLocation) -> int:
    try:
        with CatalogReader(location) as reader:
            return reader.query("select count(*) as n from windows").to_pylist()[0]["n"]
    except Exception:  # the catalog may not exist yet
        return 0


def test_a_killed_run_resumes_exactly_once_on_the_team_catalog(s3_server, postgres, shared_ray,
                                                               tmp_path):
    local = tmp_path / "audio"
    make_deployment(local, "dep-k", [START + timedelta(hours=h) for h in range(3)], 240.0, RATE_HZ)
    source = s3_server.make_bucket("field-kill") + "/season"
    s3_server.upload_tree(local, source)
    catalog = postgres.create_database("team_kill")
    results = s3_server.make_bucket("team-kill") + "/season"
    location = ResultsLocation.resolve(results, catalog)
    proc = cli(s3_server, shared_ray, "run", "--source", source, "--results", results,
               "--catalog", catalog, "--model", "placeholder", "--windows-per-unit", "2",
               "--batch-size", "2", "--commit-interval-s", "0")  # each unit commits at once
    try:
        deadline = time.monotonic() + 300
        while committed_windows(location) < 4 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver; Ray ends its job's workers
        proc.wait()
    before = committed_windows(location)
    total = 3 * 24
    assert 0 < before < total and before % 2 == 0, before

    # Resumed with larger units: the unit size changes no row, and the commits are fewer.
    summary = nightly(RunSettings(source=source, results=results, catalog=catalog,
                                  model="placeholder", windows_per_unit=12, batch_size=8,
                                  storage_options=s3_server.storage_options()))
    assert summary["status"] == "completed" and summary["windows"] == total - before
    with CatalogReader(location) as reader:
        counts = reader.query("select count(*) as n, count(distinct (recording_id, window_index)) "
                              "as d from windows").to_pylist()[0]
        runs = reader.query("select status, pid from runs order by started_at").to_pylist()
    assert counts == {"n": total, "d": total}
    # The killed run's lease died with it, so the next run knew it was dead, not running.
    assert [r["status"] for r in runs] == ["interrupted", "completed"]
    assert runs[0]["pid"] == proc.pid
