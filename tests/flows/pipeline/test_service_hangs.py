"""Persistent service failures end within a stated time, in one line (issue 25, item 7's hangs).

A RAY_ADDRESS at which nothing listens (Ray would retry for minutes), and GPU model actors on a
host without a GPU (Ray would wait for a node that never comes): each `dawnchorus run` ends in
seconds, with one line naming the service and what was tried.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from flows.pipeline.ray_engine import RAY_CONNECT_TIMEOUT_S
from tests.support.cli_output import stderr_lines
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus run` starts Ray

EXIT_SERVICE = 75


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def _run(tmp_path, *extra: str, env_extra: dict[str, str] | None = None):
    start = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
    make_deployment(tmp_path / "source", "dep-a", [start], 25.0, 16_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.pop("RAY_ADDRESS", None)
    env.update(env_extra or {})
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--source", str(tmp_path / "source"),
         "--results", str(tmp_path / "results"), "--model", "placeholder", *extra],
        env=env, capture_output=True, text=True, timeout=300)
    return proc, time.monotonic() - began


def _one_line(stderr: str) -> str:
    lines = stderr_lines(stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("dawnchorus: error: ")
    return lines[0]


def test_a_ray_address_where_nothing_listens_ends_in_seconds(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    proc, elapsed = _run(tmp_path, env_extra={"RAY_ADDRESS": address})
    assert proc.returncode == EXIT_SERVICE, proc.stderr[-3000:]
    line = _one_line(proc.stderr)
    assert f"Ray cluster at RAY_ADDRESS={address}" in line
    assert "tried TCP connections" in line and "unset RAY_ADDRESS" in line
    assert elapsed < RAY_CONNECT_TIMEOUT_S + 20, elapsed  # not Ray's minutes of retries
    assert not (tmp_path / "results").exists()  # refused before any work


def test_gpu_actors_on_a_host_without_a_gpu_end_in_seconds(tmp_path):
    proc, elapsed = _run(tmp_path, "--actor-gpus", "1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_line(proc.stderr)
    assert "--actor-gpus 1" in line and "local Ray cluster" in line and "GPUs per node: 0" in line
    assert elapsed < 120, elapsed  # Ray itself would wait for ever
