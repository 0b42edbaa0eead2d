"""Transient failures are not verdicts (issue 25, item 1).

A real moto S3 server behind a fault-injecting proxy (`faulty_s3`), a real `dawnchorus run` in a
subprocess, real Ray. A run in which the storage failed exits non-zero with one line naming the
service, and a plain second run (no flag) after recovery holds exactly the rows of a run that
never saw the outage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.catalog import CatalogReader
from connectors.errors import InputError, ServiceError, transient_reason
from tests.support.cli_output import stderr_lines
from tests.support.faulty_s3 import faulty_s3
from tests.support.s3server import subprocess_env
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus run` starts Ray (and moto)

EXIT_SERVICE = 75  # sysexits' EX_TEMPFAIL, what flows.cli returns for a service failure
WINDOW_COLUMNS = "recording_id, channel, window_index, offset_s, duration_s, status, padded, error"
PREDICTION_COLUMNS = "recording_id, channel, window_index, task, prompt_id, rank, label, score"


def _source(root: Path) -> None:
    start = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
    make_deployment(root, "dep-a", [start, start + timedelta(hours=1)], 95.0, 16_000,
                    events={0: [(12.0, 3.0, 2000.0)]})
    make_deployment(root, "dep-b", [start + timedelta(hours=2)], 65.0, 16_000,
                    events={0: [(30.0, 3.0, 3000.0)]})


def _run(source: str, results: Path, endpoint: str, s3, *extra: str, popen: bool = False):
    env = {k: v for k, v in subprocess_env(s3).items() if not k.startswith("PREFECT_API")}
    # One retry per request in botocore, so that an outage is seen in seconds, not minutes.
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_MAX_ATTEMPTS="2")
    env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "flows.cli", "run", "--source", source, "--results", str(results),
            "--model", "placeholder", "--windows-per-unit", "2", *extra]
    if popen:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def _rows(results: Path) -> tuple[list[dict], list[dict]]:
    with CatalogReader(results) as catalog:
        windows = catalog.query(f"select {WINDOW_COLUMNS} from windows order by all").to_pylist()
        predictions = catalog.query(
            f"select {PREDICTION_COLUMNS} from predictions order by all").to_pylist()
    return windows, predictions


def _error_lines(stderr: str) -> list[str]:
    return stderr_lines(stderr)


@pytest.fixture(scope="module")
def bucket(s3_server, tmp_path_factory):
    local = tmp_path_factory.mktemp("outage-source")
    _source(local)
    url = s3_server.make_bucket("outage-field")
    s3_server.upload_tree(local, url)
    return url


@pytest.fixture(scope="module")
def clean_rows(s3_server, bucket, tmp_path_factory):
    """The rows of a run that never saw an outage."""
    results = tmp_path_factory.mktemp("clean") / "results"
    with faulty_s3(s3_server.endpoint_url) as proxy:
        proc = _run(bucket, results, proxy.endpoint_url, s3_server)
    assert proc.returncode == 0, proc.stderr[-3000:]
    windows, predictions = _rows(results)
    assert len(windows) == 10 + 10 + 7 and predictions  # 95 s, 95 s, 65 s in 10-s windows
    return windows, predictions, proxy.object_reads


def test_storage_errors_are_transient_and_bad_files_are_not():
    import botocore.exceptions

    outage = botocore.exceptions.ClientError(
        {"Error": {"Code": "ServiceUnavailable", "Message": "down"},
         "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
    wrapped = InputError("s3://b/x.wav", "cannot open: down")
    wrapped.__cause__ = OSError(16, "down")  # what s3fs makes of a 503 (EBUSY)
    wrapped.__cause__.__cause__ = outage
    assert "ServiceUnavailable" in transient_reason(wrapped)
    refused = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert "EndpointConnectionError" in transient_reason(refused)
    assert transient_reason(ServiceError("S3", "down")) == "down"
    # The file's own faults stay verdicts.
    assert transient_reason(InputError("x.wav", "not a recognised audio format")) is None
    assert transient_reason(FileNotFoundError(2, "gone")) is None
    missing = botocore.exceptions.ClientError(
        {"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject")
    assert transient_reason(missing) is None


def test_a_whole_run_of_failed_object_reads_is_retried_by_the_next_plain_run(
        s3_server, bucket, clean_rows, tmp_path):
    results = tmp_path / "results"
    with faulty_s3(s3_server.endpoint_url) as proxy:
        proxy.fail_object_reads = True  # listing works, every object read answers 503
        first = _run(bucket, results, proxy.endpoint_url, s3_server)
        assert proxy.failed_reads > 0
        assert first.returncode == EXIT_SERVICE, first.stdout[-2000:] + first.stderr[-3000:]
        lines = _error_lines(first.stderr)
        assert len(lines) == 1, first.stderr
        assert lines[0].startswith("dawnchorus: error: ") and "Traceback" not in first.stderr
        assert f"S3 at {proxy.endpoint_url}" in lines[0] and "ServiceUnavailable" in lines[0]
        assert "completed" not in first.stdout
        with CatalogReader(results) as catalog:
            statuses = catalog.query("select status, count(*) as n from recordings group by all"
                                     ).to_pylist()
            run = catalog.query("select status from runs").to_pylist()
        assert statuses == [{"status": "unavailable", "n": 3}]  # recorded as such, not failed
        assert run == [{"status": "failed"}]

        proxy.fail_object_reads = False  # the endpoint recovers
        second = _run(bucket, results, proxy.endpoint_url, s3_server)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "completed: 27 windows committed (0 failed)" in second.stdout
    assert _rows(results) == clean_rows[:2]


def test_an_endpoint_that_dies_mid_run_loses_nothing(s3_server, bucket, clean_rows, tmp_path):
    """The endpoint dies for good once the run has made half the object reads of a clean run:
    what was read commits, the rest is left (not failed) for the next run."""
    results = tmp_path / "results"
    with faulty_s3(s3_server.endpoint_url) as proxy:
        proxy.die_after_object_reads = clean_rows[2] // 2
        proc = _run(bucket, results, proxy.endpoint_url, s3_server)
        assert not proxy.alive
    assert proc.returncode == EXIT_SERVICE, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and f"S3 at {proxy.endpoint_url}" in lines[0], proc.stderr
    windows, _ = _rows(results)
    assert len(windows) < 27 and all(w["status"] != "failed" for w in windows)  # no verdicts

    with faulty_s3(s3_server.endpoint_url) as healthy:  # the endpoint is back (a new port)
        second = _run(bucket, results, healthy.endpoint_url, s3_server)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _rows(results) == clean_rows[:2]
