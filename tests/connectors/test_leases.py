"""Many writers, one Postgres catalog: leases (advisory locks in the catalog's database) let runs
on different deployments go at once, queue runs on the same ones, die with their holder, and
tell a live run from a dead one; concurrent writers lose no row and duplicate none. Holders run
in other processes, as they would on other machines; the server is a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.catalog import Catalog
from connectors.location import ResultsLocation
from connectors.catalog.locks import CatalogLease, ResultsBusy, RunLock, run_lock

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent("""
    import sys, time
    from connectors.catalog.locks import CatalogLease
    url, run_id, hold_s, *deployments = sys.argv[1:]
    with CatalogLease(url, run_id) as lease:
        lease.claim(deployments)
        print("holding", flush=True)
        time.sleep(float(hold_s))
""")


def hold(url: str, run_id: str, deployments: list[str], hold_s: float = 600) -> subprocess.Popen:
    """Another process holding run `run_id`'s lease and these deployments, until it ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, run_id, str(hold_s), *deployments],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


@pytest.fixture
def catalog_url(postgres, request):
    return postgres.create_database(f"leases_{request.node.name.lower()[:40]}")


def test_different_deployments_at_once_same_ones_refused_naming_the_holder(catalog_url):
    other = hold(catalog_url, "run-other", ["dep-a"])
    try:
        with CatalogLease(catalog_url, "run-me") as lease:
            lease.claim(["dep-b", "dep-c"])  # nobody holds these: at once
            with pytest.raises(ResultsBusy) as busy:
                lease.claim(["dep-a"])
            assert lease.deployments == {"dep-b", "dep-c"}
    finally:
        other.kill()
        other.wait()
    message = str(busy.value)
    assert "deployment dep-a" in message and "run run-other" in message
    assert f"pid {other.pid}" in message and "postgres:" not in message


def test_a_waiting_claim_takes_the_deployment_when_its_holder_finishes(catalog_url):
    other = hold(catalog_url, "run-first", ["dep-a"], hold_s=2)
    try:
        started = time.monotonic()
        with CatalogLease(catalog_url, "run-second", wait_s=120) as lease:
            lease.claim(["dep-a", "dep-b"])
            waited = time.monotonic() - started
            assert lease.deployments == {"dep-a", "dep-b"}
    finally:
        other.wait(timeout=60)
    assert waited > 0.5  # it really waited for the first run


def test_a_killed_holders_lease_is_taken_over_and_its_run_counts_as_dead(catalog_url):
    other = hold(catalog_url, "run-doomed", ["dep-a"])
    with CatalogLease(catalog_url, "run-next") as lease:
        assert lease.alive("run-doomed")
        os.kill(other.pid, signal.SIGKILL)
        other.wait()
        deadline = time.monotonic() + 30
        while lease.alive("run-doomed") and time.monotonic() < deadline:
            time.sleep(0.1)  # the server ends the dead client's session within moments
        assert not lease.alive("run-doomed")
        lease.claim(["dep-a"])
        assert lease.deployments == {"dep-a"}
        assert lease.alive("run-next")


def test_the_same_run_id_cannot_run_twice(catalog_url):
    other = hold(catalog_url, "run-twin", [])
    try:
        with pytest.raises(ResultsBusy, match="run id run-twin"):
            CatalogLease(catalog_url, "run-twin").acquire()
    finally:
        other.kill()
        other.wait()


def test_a_sqlite_catalog_keeps_its_flock_which_can_wait(tmp_path):
    location = ResultsLocation.resolve(tmp_path / "res")
    lock = run_lock(location, "run-1")
    assert isinstance(lock, RunLock) and lock.path == tmp_path / "res" / "run.lock"
    script = textwrap.dedent("""
        import sys, time
        from connectors.catalog.locks import RunLock
        with RunLock(sys.argv[1], "run-holder"):
            print("holding", flush=True)
            time.sleep(2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "res")], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    with pytest.raises(ResultsBusy, match="results folder .* is in use by run run-holder"):
        run_lock(location, "run-2").acquire()
    with run_lock(location, "run-3", wait_s=120) as waited:
        assert not waited.alive("run-holder")  # holding the flock: every other run is dead
    proc.wait(timeout=60)


WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, timezone
    from connectors.catalog import Catalog
    from connectors.location import ResultsLocation
    from connectors.tables import DeploymentRow, PredictionRow, WindowRow
    results, catalog, mine, units = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    start = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)
    with Catalog(ResultsLocation.resolve(results, catalog)) as lake:
        for i in range(units):
            # Both writers rewrite both deployments' metadata (a replace that conflicts) and
            # commit their own units (appends, which do not).
            lake.upsert_deployments([DeploymentRow(d, None, None, None, None, "UTC", None, None,
                                                   None, mine, None) for d in ("dep-a", "dep-b")])
            key = dict(recording_id=f"rec-{mine}", deployment_id=mine, channel=0, window_index=i,
                       offset_s=10.0 * i, start_utc=start, start_local=None, date=start.date())
            lake.commit_unit(
                [WindowRow(run_id=mine, config_fingerprint="fp", window_s=10.0, duration_s=10.0,
                           status="ok", padded=False, error=None, **key)],
                [PredictionRow(run_id=mine, model_id="m", config_fingerprint="fp", task="detect",
                               prompt_id="p", rank=1, answer_text="yes", label="animal",
                               scientific_name=None, score=0.5, **key)])
    print("done", flush=True)
""")


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(postgres, tmp_path):
    catalog = postgres.create_database("writers")
    location = ResultsLocation.resolve(tmp_path / "res", catalog)
    Catalog(location).close()  # created once; the writers race on the rows, not the schema
    units = 12
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "res"), catalog,
                               dep, str(units)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for dep in ("dep-a", "dep-b")]
    outcomes = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()[-2000:]) for p in procs]
    assert [o[:2] for o in outcomes] == [(0, "done\n")] * 2, outcomes
    with Catalog(location) as lake:
        windows = lake.con.execute(
            "select deployment_id, count(*), count(distinct window_index) from windows group by 1 "
            "order by 1").fetchall()
        predictions = lake.con.execute("select count(*) from predictions").fetchone()[0]
        deployments = lake.con.execute(
            "select deployment_id, count(*) from deployments group by 1 order by 1").fetchall()
    assert windows == [("dep-a", units, units), ("dep-b", units, units)]
    assert predictions == 2 * units
    assert deployments == [("dep-a", 1), ("dep-b", 1)]


def test_two_writers_opening_a_fresh_catalog_at_once_both_get_one_schema(postgres, tmp_path):
    catalog = postgres.create_database("fresh")
    script = textwrap.dedent("""
        import sys
        from connectors.catalog import Catalog
        from connectors.location import ResultsLocation
        with Catalog(ResultsLocation.resolve(sys.argv[1], sys.argv[2])) as lake:
            print(lake.schema_version, flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "res"), catalog],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = [(p.wait(timeout=600), p.stdout.read().strip(), p.stderr.read()[-2000:])
                for p in procs]
    from connectors.catalog import SCHEMA_VERSION

    assert [o[:2] for o in outcomes] == [(0, str(SCHEMA_VERSION))] * 2, outcomes
    with Catalog(ResultsLocation.resolve(tmp_path / "res", catalog)) as lake:
        versions = lake.con.execute("select value from settings where key = 'schema_version'"
                                    ).fetchall()
    assert versions == [(str(SCHEMA_VERSION),)]
