"""`dawnchorus run` with no Prefect API configured runs the same steps as plain functions: no
temporary Prefect server is started (Prefect is forbidden to start one here, so any API call would
fail the run), the catalog is complete and maintained afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from connectors.catalog import CatalogReader
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # a `dawnchorus run` starts Ray


def test_a_cli_run_without_a_prefect_api_needs_no_server(tmp_path):
    start = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
    make_deployment(tmp_path / "source", "dep-p", [start, start + timedelta(hours=1)], 95.0, 16_000,
                    events={0: [(12.0, 3.0, 2000.0)]})
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false", PREFECT_SERVER_EPHEMERAL_ENABLED="false",
               PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--source", str(tmp_path / "source"),
         "--results", str(results), "--model", "placeholder", "--windows-per-unit", "3"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("dawnchorus run:")  # the terminal's header, then its summary
    assert "completed: 20 windows committed" in proc.stdout  # 95 s in the placeholder's 10-s windows
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()  # no server database either
    with CatalogReader(results) as catalog:
        assert catalog.query("select count(*) as n from windows").to_pylist() == [{"n": 20}]
        runs = catalog.query("select status, counts from runs").to_pylist()
    assert [r["status"] for r in runs] == ["completed"]
    maintenance = json.loads(runs[0]["counts"])["catalog_maintenance"]
    assert "error" not in maintenance and maintenance["tables_merged"] > 0
    # The run's maintenance kept the files it merged away for readers; the next pass deletes them.
    from flows.pipeline.maintain import maintain_results

    following = maintain_results(str(results))
    assert following.files_deleted > 0 and following.after.files < maintenance["after"]["files"]
