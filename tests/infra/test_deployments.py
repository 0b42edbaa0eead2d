"""prefect.yaml against a real Prefect server and a real process worker, no mocks.

One `prefect server start` on a free 127.0.0.1 port with its own PREFECT_HOME serves the module.
The backfill deployment is deployed from the repository root with `prefect --no-prompt deploy`,
started with `prefect deployment run ... --param settings=...` on a synthetic source, and
executed by `prefect worker start --run-once`; the catalog must then hold the planned windows.
The nightly deployment is deployed with environment templating and a time zone, and the
server's scheduler must create its 02:00 runs.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.catalog import Catalog, CatalogReader
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a Prefect server and `prefect deploy`

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "dawnchorus"  # the work pool prefect.yaml names
HEALTH_TIMEOUT_S = 120  # a fresh database takes about 18 s on an idle 2-core machine
CLI_TIMEOUT_S = 180
WORKER_TIMEOUT_S = 240  # flow-run process start, local Ray (~5 s), decode, commit
SCHEDULE_TIMEOUT_S = 60  # the scheduler looks at recently changed deployments every 5 s

RATE_HZ = 16_000
START = datetime(2024, 5, 31, 22, 0, 0, tzinfo=timezone.utc)
DEP_A_DURATION_S = 25.0  # 3 windows of 10 s, the last one padded
DEP_B_DURATION_S = 12.0


@dataclass
class Server:
    api_url: str
    env: dict[str, str]
    """Environment for every client subprocess (deploy, run, worker)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, n_chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-n_chars:] if path.exists() else "(no log)"


def _wait_healthy(api_url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"prefect server not healthy after {HEALTH_TIMEOUT_S} s:\n{_tail(log)}")


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the whole group has already exited
        pass


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group (its API runs in a child process), then kill."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    # The group is signalled even if the parent is gone, so that no child outlives the test.
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)


def prefect_cli(server: Server, *args: str, extra_env: dict[str, str] | None = None,
                timeout_s: float = CLI_TIMEOUT_S) -> str:
    """Run `prefect ARGS` from the repository root; fail the test with its output on error."""
    env = {**server.env, **(extra_env or {})}
    done = subprocess.run([PREFECT, *args], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        pytest.fail(f"prefect {' '.join(args)} exited with {done.returncode}:\n"
                    f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PREFECT_API_URL")}
    base.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "DAWNCHORUS_DUCKDB_EXTENSIONS": os.environ.get(
            "DAWNCHORUS_DUCKDB_EXTENSIONS",
            str(Path(tempfile.gettempdir()) / "dawnchorus-duckdb-extensions")),
        # Read by prefect.yaml's pull step when the worker starts a flow run.
        "DAWNCHORUS_PROJECT_DIR": str(REPO_ROOT),
    })
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home, env=base, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so _stop reaches its children
        )
    try:
        _wait_healthy(api_url, proc, log)
        srv = Server(api_url=api_url, env={**base, "PREFECT_API_URL": api_url})
        prefect_cli(srv, "work-pool", "create", POOL, "--type", "process",
                    "--base-job-template", str(REPO_ROOT / "infra" / "process-work-pool.json"))
        yield srv
    finally:
        _stop(proc)


@pytest.fixture
def client(server):
    """A synchronous Prefect client on the module's server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        with get_client(sync_client=True) as sync_client:
            yield sync_client


def flow_runs_of(client, deployment_id, state_type=None) -> list:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    run_filter = None
    if state_type is not None:
        run_filter = FlowRunFilter(state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[state_type])))
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=run_filter,
    )


def test_backfill_runs_on_a_process_worker(server, client, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.objects import StateType

    source, results = tmp_path / "source", tmp_path / "results"
    dep_a = make_deployment(source, "dep-a", [START, START + timedelta(hours=1)],
                            DEP_A_DURATION_S, RATE_HZ, events={0: [(3.0, 2.0, 2000.0)]})
    make_deployment(source, "dep-b", [START], DEP_B_DURATION_S, RATE_HZ)

    prefect_cli(server, "--no-prompt", "deploy", "--name", "backfill")
    settings = {"source": str(source), "results": str(results), "deployments": ["dep-a"],
                "model": "placeholder", "windows_per_unit": 2, "batch_size": 4}
    prefect_cli(server, "deployment", "run", "backfill/backfill",
                "--param", f"settings={json.dumps(settings)}")
    deployment = client.read_deployment_by_name("backfill/backfill")
    assert deployment.schedules == []
    [scheduled] = flow_runs_of(client, deployment.id)

    worker_log = tmp_path / "worker.log"
    with worker_log.open("w") as out:
        worker = subprocess.run(
            [PREFECT, "worker", "start", "--pool", POOL, "--run-once"], cwd=tmp_path,
            env=server.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            timeout=WORKER_TIMEOUT_S,
        )
    assert worker.returncode == 0, _tail(worker_log)

    flow_run = client.read_flow_run(scheduled.id)
    assert flow_run.state.type == StateType.COMPLETED, (flow_run.state, _tail(worker_log))
    # The run's parameters are the ones given on the command line, not the deployment's.
    assert flow_run.parameters["settings"]["model"] == "placeholder"

    with CatalogReader(results) as catalog:
        windows = catalog.query(
            "select r.uri, r.deployment_id, count(*) as n, count(*) filter "
            "(where w.status = 'ok') as n_ok from windows w join recordings r "
            "using (recording_id) group by all order by r.uri").to_pylist()
        runs = catalog.query("select flow, status from runs").to_pylist()
    # dep-b was left out by settings.deployments; every dep-a recording has all its windows.
    assert [w["uri"] for w in windows] == [str(p) for p in dep_a]
    expected = math.ceil(DEP_A_DURATION_S / 10.0)
    assert [(w["n"], w["n_ok"]) for w in windows] == [(expected, expected)] * len(dep_a)
    assert runs == [{"flow": "backfill", "status": "completed"}]
    # The run summary is kept as files and published on the flow run as artifacts: the summary
    # tables and a link to the report's index.html.
    [summary] = list((results / "reports").glob("*/summary.md"))
    assert "dep-a" in summary.read_text()
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
    assert sorted(a.key for a in artifacts) == ["run-report", "run-summary"]
    [link] = [a for a in artifacts if a.key == "run-report"]
    assert (summary.parent / "index.html").resolve().as_uri() in str(link.data)


def test_nightly_is_scheduled_at_two_in_its_time_zone(server, client, tmp_path):
    zone = "Australia/Adelaide"  # +9:30 or +10:30: 02:00 there is never 02:00 UTC
    source, results = tmp_path / "nightly-source", tmp_path / "nightly-results"
    prefect_cli(server, "--no-prompt", "deploy", "--name", "nightly", "--timezone", zone,
                extra_env={"DAWNCHORUS_SOURCE": str(source),
                           "DAWNCHORUS_RESULTS": str(results)})
    deployment = client.read_deployment_by_name("nightly/nightly")
    # Environment templating reached the nested settings at deploy time.
    assert deployment.parameters == {"settings": {"source": str(source),
                                                  "results": str(results)}}
    [schedule] = deployment.schedules
    assert schedule.active
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", zone)

    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + SCHEDULE_TIMEOUT_S
    runs = []
    while not runs and time.monotonic() < deadline:
        runs = flow_runs_of(client, deployment.id, StateType.SCHEDULED)
        if not runs:
            time.sleep(2)
    assert runs, f"no scheduled nightly run after {SCHEDULE_TIMEOUT_S} s"
    now = datetime.now(timezone.utc)
    for run in runs:
        local = run.expected_start_time.astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (2, 0), local
        assert run.expected_start_time > now
        assert run.parameters["settings"]["source"] == str(source)
    starts = sorted(run.expected_start_time for run in runs)
    assert all(later - earlier >= timedelta(hours=23) for earlier, later in zip(starts, starts[1:]))
