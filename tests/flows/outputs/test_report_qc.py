"""The report's "QC per deployment and night" table: a dead microphone's night shows its silent
windows beside the effort table that leaves them out."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from connectors.catalog import Catalog
from connectors.tables import RunRow
from flows.outputs.report import write_report
from tests.support.seed_catalog import ROBIN, Seed


def test_the_report_shows_qc_per_deployment_and_night(tmp_path):
    seed = Seed(tmp_path)
    seed.deployment("marsh-1", site_id="marsh")
    seed.recording("marsh-1", datetime(2024, 5, 14, 22, 0, tzinfo=timezone.utc), 2,
                   calls={0: [ROBIN]}, qc={0: "ok", 1: "clipped"})
    seed.recording("marsh-1", datetime(2024, 5, 15, 22, 0, tzinfo=timezone.utc), 3,
                   qc={0: "silent", 1: "silent", 2: "silent"})
    started = datetime(2024, 5, 16, 1, 0, tzinfo=timezone.utc)
    with Catalog(tmp_path) as catalog:
        catalog.start_run(RunRow(
            run_id="run-1", flow="nightly", started_at=started, finished_at=started,
            status="completed", parameters="{}", config_fingerprint="fp-birdnet",
            model_id="birdnet@test", code_version="test", counts=json.dumps({"windows": 5}),
            host="h", pid=1, interrupted_at=None))
    index = write_report(str(tmp_path), "run-1")
    summary = (tmp_path / "reports" / "run-1" / "summary.md").read_text(encoding="utf-8")
    section = summary.split("## QC per deployment and night", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| marsh-1")]
    assert len(lines) == 2
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header = [c.strip() for c in section.split("\n| ", 1)[1].split("\n", 1)[0].strip("|").split("|")]
    nights = [dict(zip(["deployment_id", *header[1:]], row)) for row in cells]
    assert [(n["windows_qc_ok"], n["windows_clipped"], n["windows_silent"]) for n in nights] == [
        ("1", "1", "0"), ("0", "0", "3")]
    page = open(index, encoding="utf-8").read()
    assert '<section id="qc"><h2>QC per deployment and night</h2>' in page
    assert page.index('id="effort"') < page.index('id="qc"')
