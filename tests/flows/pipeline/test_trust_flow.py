"""Results ecologists can trust, end to end through the real flow (Prefect server, local Ray,
DuckLake, moto S3): one run at a time per results folder, NaN audio never becomes a detection, a
moved results folder queries and resumes, no credential reaches a log, report or the catalog,
configuration errors are not retried, an empty source says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from connectors.catalog import CatalogReader
from flows.pipeline.prefect_flows import nightly
from flows.pipeline.settings import RunSettings
from tests.support.s3server import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, subprocess_env
from tests.support.synth_audio import audiomoth_name, make_deployment, noise, place, tone, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]

RATE_HZ = 8_000
START = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)


def settings_for(source, results, **overrides) -> RunSettings:
    fields = dict(source=str(source), results=str(results), model="placeholder",
                  windows_per_unit=2, batch_size=4)
    fields.update(overrides)
    return RunSettings(**fields)


def rows(results, sql, params=None) -> list[dict]:
    with CatalogReader(results) as reader:
        return reader.query(sql, params).to_pylist()


def cli_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop("RAY_ADDRESS", None)
    return env


def test_two_runs_started_together_produce_the_rows_of_one_run(tmp_path):
    make_deployment(tmp_path / "src", "dep", [START.replace(hour=h) for h in range(3)], 300.0, RATE_HZ)
    results = tmp_path / "res"
    args = [sys.executable, "-m", "flows.cli", "run", "--source", str(tmp_path / "src"),
            "--results", str(results), "--model", "placeholder", "--windows-per-unit", "2"]
    procs = [subprocess.Popen(args, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(err for code, err in outcomes if code == 2)
    assert "is in use by run" in refused and "pid" in refused and "Traceback" not in refused
    runs = rows(results, "select run_id, status from runs")
    assert [r["status"] for r in runs] == ["completed"]
    assert runs[0]["run_id"] in refused  # the refusal names the run that holds the folder
    counts = rows(results, "select count(*) as n, count(distinct (recording_id, window_index)) "
                           "as d from windows")[0]
    assert counts == {"n": 90, "d": 90}


def test_nan_audio_beside_good_files_never_becomes_a_detection(tmp_path):
    folder = tmp_path / "src" / "dep"
    make_deployment(tmp_path / "src", "dep", [START], 30.0, RATE_HZ, events={0: [(2.0, 3.0, 1000.0)]})
    bad = place(noise(30.0, RATE_HZ, -30), tone(1000.0, 3.0, RATE_HZ), 2.0, RATE_HZ)
    bad[int(15.0 * RATE_HZ):int(16.0 * RATE_HZ)] = np.nan
    write_wav(folder / audiomoth_name(START.replace(hour=5)), bad, RATE_HZ, subtype="FLOAT")
    results = tmp_path / "res"
    summary = nightly(settings_for(tmp_path / "src", results))
    assert summary["status"] == "completed" and summary["windows_failed"] == 1
    failed = rows(results, "select r.object_key, w.window_index, w.error from windows w "
                           "join recordings r using (recording_id) where w.status = 'failed'")
    assert [(f["object_key"], f["window_index"]) for f in failed] == [("dep/20240601_050000.WAV", 1)]
    assert "non-finite samples" in failed[0]["error"]
    assert rows(results, "select count(*) as n from predictions where isnan(score) or score > 1 "
                         "or score < 0")[0]["n"] == 0
    with CatalogReader(results, threshold=0.99) as reader:
        strict = reader.query("select window_index, score from detections").to_pylist()
    assert all(np.isfinite(r["score"]) and r["score"] >= 0.99 for r in strict)
    assert rows(results, "select status from recordings order by uri") == [{"status": "ok"}] * 2
    report = Path(summary["report"]).read_text()
    assert "non-finite samples" in report
    # --retry-failed plans exactly that window again (it fails again: its audio is NaN).
    again = nightly(settings_for(tmp_path / "src", results, retry_failed=True))
    assert again["windows"] == 1 and again["windows_failed"] == 1
    assert rows(results, "select count(*) as n from windows")[0]["n"] == 6


def test_a_moved_results_folder_queries_and_resumes(tmp_path):
    paths = make_deployment(tmp_path / "src", "dep", [START, START.replace(hour=5)], 30.0, RATE_HZ)
    later = paths[1].read_bytes()
    paths[1].unlink()
    nightly(settings_for(tmp_path / "src", tmp_path / "res"))
    moved = tmp_path / "elsewhere" / "results"
    moved.parent.mkdir()
    shutil.move(tmp_path / "res", moved)
    assert rows(moved, "select count(*) as n from windows")[0]["n"] == 3
    assert rows(moved, "select count(*) as n from detections")[0]["n"] >= 0
    paths[1].write_bytes(later)  # a new recording arrives; the moved catalog resumes from there
    summary = nightly(settings_for(tmp_path / "src", moved))
    assert summary["recordings_new"] == 1 and summary["windows"] == 3
    assert rows(moved, "select count(*) as n, count(distinct (recording_id, window_index)) as d "
                       "from windows")[0] == {"n": 6, "d": 6}
    assert not (tmp_path / "res").exists()


def test_no_credential_reaches_logs_reports_prefect_or_the_catalog(tmp_path, s3_server):
    from prefect.client.orchestration import get_client

    make_deployment(tmp_path / "local", "dep", [START], 20.0, RATE_HZ)
    bucket = s3_server.make_bucket("creds")
    s3_server.upload_tree(tmp_path / "local", f"{bucket}/season")
    # A verbose CLI run with credentials in the environment (botocore logs signed requests).
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "-v", "run", "--source", f"{bucket}/season",
         "--results", str(tmp_path / "res-cli"), "--model", "placeholder"],
        env={**subprocess_env(s3_server), "PREFECT_API_URL": cli_env()["PREFECT_API_URL"]},
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = proc.stdout + proc.stderr
    assert "botocore" in logs  # the verbose log really holds the library's debug lines
    # An in-process run with credentials in storage_options (stored settings, Prefect params).
    nightly(settings_for(f"{bucket}/season", tmp_path / "res-api",
                         storage_options=s3_server.storage_options()))
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs()
    parameters = repr([fr.parameters for fr in flow_runs])
    assert "storage_options" in parameters
    for secret in (FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY):
        assert secret not in logs
        assert secret not in parameters
        for results in (tmp_path / "res-cli", tmp_path / "res-api"):
            for path in results.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), path


def test_configuration_errors_stop_at_once_without_retries(tmp_path, capsys):
    from prefect.client.orchestration import get_client

    from flows.cli.main import main

    make_deployment(tmp_path / "src", "dep", [START], 20.0, RATE_HZ)
    (tmp_path / "src" / "deployments.csv").write_text(
        "deployment_id,timezone\ndep,Mars/Olympus\n", encoding="utf-8")
    assert main(["run", "--source", str(tmp_path / "src"), "--results", str(tmp_path / "res"),
                 "--model", "placeholder"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "deployments.csv" in err[-1] and "Mars/Olympus" in err[-1]
    # The CLI refuses it before Prefect starts (the source check); a deployment run starts the
    # flow itself, and there the discover task fails once, never retried.
    from connectors.errors import ConfigError

    with pytest.raises(ConfigError, match="Mars/Olympus"):
        nightly(RunSettings(source=str(tmp_path / "src"), results=str(tmp_path / "res"),
                            model="placeholder"))
    with get_client(sync_client=True) as client:
        discover_runs = [t for t in client.read_task_runs() if t.name.startswith("discover")]
    latest = max(discover_runs, key=lambda t: t.created)
    assert latest.run_count == 1 and latest.state.is_failed()


@pytest.mark.parametrize("results_kind", ["file", "unwritable"])
def test_a_results_path_that_cannot_be_a_folder_exits_2(tmp_path, capsys, results_kind):
    from flows.cli.main import main

    make_deployment(tmp_path / "src", "dep", [START], 20.0, RATE_HZ)
    if results_kind == "file":
        results = tmp_path / "results.txt"
        results.write_text("x")
    else:
        results = Path("/proc/dawnchorus-results")
    assert main(["run", "--source", str(tmp_path / "src"), "--results", str(results),
                 "--model", "placeholder"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dawnchorus: error:") and str(results) in err


def test_an_empty_source_completes_with_a_warning(tmp_path):
    (tmp_path / "src" / "dep").mkdir(parents=True)
    (tmp_path / "src" / "dep" / "notes.txt").write_text("battery swapped")
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--source", str(tmp_path / "src"),
         "--results", str(tmp_path / "res"), "--model", "placeholder"],
        env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"no recordings under {tmp_path / 'src'}" in proc.stderr
    assert ".wav, .flac, .mp3, .ogg" in proc.stderr
