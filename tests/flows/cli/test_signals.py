"""Signals end runs cleanly (issue 25, item 8).

A real `dawnchorus run` in a subprocess (its own session, as a terminal's job), real signals, real
local Ray: SIGTERM and SIGINT (Ctrl-C: the whole process group) stop it within seconds with one
line, exit 143 / 130, the run recorded `interrupted`, and no process of its tree left; after a
SIGKILL of the driver, nothing of its local Ray stays running. A plain re-run then completes
with exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.catalog import CatalogReader
from tests.support.cli_output import stderr_lines
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus run` starts Ray

WINDOWS = 3 * 60  # three 600-s recordings in the placeholder's 10-s windows
STOP_WITHIN_S = 20.0


def _tree(root: int) -> dict[int, str]:
    """pid -> command line of every live process below `root` (from ps, not from our code)."""
    out = subprocess.run(["ps", "-ww", "-e", "-o", "pid=,ppid=,stat=,args="], capture_output=True,
                         text=True, check=True).stdout
    parent, info = {}, {}
    for line in out.splitlines():
        pid, ppid, stat, args = (line.split(None, 3) + [""])[:4]
        if not stat.startswith("Z"):
            parent[int(pid)] = int(ppid)
            info[int(pid)] = args
    found, todo = {}, [root]
    while todo:
        p = todo.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in found:
                found[child] = info[child]
                todo.append(child)
    return found


def _kill_left(pids: dict[int, str]) -> None:
    """Our own processes a failed test would leave behind (by pid, checked by command line)."""
    for pid in _alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _alive(pids: dict[int, str]) -> dict[int, str]:
    out = subprocess.run(["ps", "-ww", "-e", "-o", "pid=,stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    now = {}
    for line in out.splitlines():
        pid, stat, args = (line.split(None, 2) + [""])[:3]
        if not stat.startswith("Z"):
            now[int(pid)] = args
    return {pid: args for pid, args in pids.items() if now.get(pid) == args}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("signals") / "source"
    start = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
    make_deployment(root, "dep-a", [start + timedelta(hours=h) for h in range(3)], 600.0, 8_000,
                    events={0: [(12.0, 3.0, 2000.0)], 2: [(300.0, 3.0, 1500.0)]})
    return root


def _start(source: Path, results: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--source", str(source), "--results",
         str(results), "--model", "placeholder", "--windows-per-unit", "2",
         "--commit-interval-s", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def _wait_for_a_commit(proc: subprocess.Popen, results: Path) -> None:
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no commit within 300 s"
        time.sleep(0.3)
        if not (results / "catalog.sqlite").exists():
            continue
        try:
            with CatalogReader(results) as catalog:
                if catalog.query("select count(*) as n from windows").to_pylist()[0]["n"]:
                    return
        except Exception:  # the catalog is being created
            continue


def _rows(results: Path) -> list[dict]:
    with CatalogReader(results) as catalog:
        return catalog.query("select recording_id, channel, window_index, status, label, score "
                             "from windows left join predictions using (recording_id, channel, "
                             "window_index, config_fingerprint) order by all").to_pylist()


@pytest.fixture(scope="module")
def clean_rows(source, tmp_path_factory):
    results = tmp_path_factory.mktemp("signals-clean") / "results"
    proc = _start(source, results)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    rows = _rows(results)
    assert len({(r["recording_id"], r["window_index"]) for r in rows}) == WINDOWS
    return rows


@pytest.mark.parametrize("signum, whole_group, code", [
    (signal.SIGTERM, False, 143),  # a scheduler or `kill` stops the driver
    (signal.SIGINT, True, 130),  # Ctrl-C: the terminal signals the whole foreground group
])
def test_a_signal_stops_the_run_cleanly(source, clean_rows, tmp_path, signum, whole_group, code):
    results = tmp_path / "results"
    proc = _start(source, results)
    tree: dict[int, str] = {}
    try:
        _wait_for_a_commit(proc, results)
        tree = _tree(proc.pid)
        assert any("raylet" in args for args in tree.values()), tree  # Ray runs under the driver
        sent = time.monotonic()
        if whole_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
        took = time.monotonic() - sent
        deadline = time.monotonic() + 10
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(tree)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_left(tree)
    assert proc.returncode == code, (proc.returncode, stderr[-3000:])
    assert took < STOP_WITHIN_S, took
    lines = stderr_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"dawnchorus: interrupted by {signal.Signals(signum).name}: run ")
    assert not left, left  # nothing of the run's tree left
    with CatalogReader(results) as catalog:
        runs = catalog.query("select status, interrupted_at is not null as noted from runs"
                             ).to_pylist()
    assert runs == [{"status": "interrupted", "noted": True}]

    again = _start(source, results)
    _, stderr = again.communicate(timeout=900)
    assert again.returncode == 0, stderr[-3000:]
    assert _rows(results) == clean_rows  # resumed: nothing lost, nothing twice


def test_after_a_sigkill_of_the_driver_nothing_of_its_ray_stays(source, tmp_path):
    results = tmp_path / "results"
    proc = _start(source, results)
    tree: dict[int, str] = {}
    try:
        _wait_for_a_commit(proc, results)
        tree = _tree(proc.pid)
        assert any("raylet" in args for args in tree.values()), tree
        proc.kill()  # the driver only: its children are not signalled
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 20
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.3)
        left = _alive(tree)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_left(tree)
    assert not left, left


def test_a_lost_model_worker_loses_nothing(source, clean_rows, tmp_path):
    """SIGKILL of the model actor mid-run (an OOM kill, a lost node): Ray may restart it and the
    run completes, or the run ends as a service failure (exit 75, one line naming Ray) and a plain
    re-run completes it; either way every window is there exactly once (issue 25, item 1)."""
    results = tmp_path / "results"
    proc = _start(source, results)
    tree: dict[int, str] = {}
    try:
        # The model actor, as soon as its process title names it (it lives while the run
        # analyses; on a loaded machine the run can finish soon after its first commit).
        deadline = time.monotonic() + 300
        actors: list[int] = []
        while not actors:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no model actor within 300 s"
            tree = _tree(proc.pid)
            actors = [pid for pid, args in tree.items() if "Predictor" in args or "MapWorker" in args]
            time.sleep(0.1)
        for pid in actors:
            os.kill(pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_left(tree)
    assert proc.returncode in (0, 75), (proc.returncode, stderr[-3000:])
    if proc.returncode == 75:
        lines = stderr_lines(stderr)
        assert len(lines) == 1 and "Ray" in lines[0], stderr
        again = _start(source, results)
        _, stderr = again.communicate(timeout=900)
        assert again.returncode == 0, stderr[-3000:]
    assert _rows(results) == clean_rows  # nothing lost, nothing twice, nothing left failed
