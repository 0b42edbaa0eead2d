"""The run report's hook for calibration curves: one PNG per species calibrate saw, drawn from
the catalog's thresholds and verdicts, with what the report needs to caption it."""

from __future__ import annotations

import struct

import numpy as np

from flows.outputs.calibration.calibrate import calibrate
from flows.outputs.calibration.curves import calibration_plots
from tests.flows.outputs.test_calibrate import catalog_with_verdicts


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_a_curve_per_species_calibrate_saw(tmp_path):
    results, _ = catalog_with_verdicts(tmp_path, n_wren=120, n_robin=6)
    assert calibration_plots(str(results), tmp_path / "none") == []  # not calibrated yet
    rows = {r.label: r for r in calibrate(str(results), precision=0.9, min_reviews=30)}
    plots = calibration_plots(str(results), tmp_path / "report")
    assert [(p.label, p.status, p.n_reviewed) for p in plots] == [
        ("robin", "too_few_reviews", 6), ("wren", "calibrated", 120)]
    wren = plots[1]
    assert wren.threshold == rows["wren"].threshold
    assert wren.png.parent == tmp_path / "report" and wren.png.name.startswith("calibration-wren-")
    assert png_size(wren.png.read_bytes()) == (640, 400)
    # The two species' pictures differ (each draws its own verdicts and curve).
    assert plots[0].png.read_bytes() != wren.png.read_bytes()


def test_the_run_report_shows_each_reviewed_species_curve(tmp_path, browser):
    import json
    from datetime import datetime, timezone

    from tests.support.browser import console_errors
    from connectors.catalog import Catalog
    from connectors.tables import RunRow
    from flows.outputs.report import write_report

    results, _ = catalog_with_verdicts(tmp_path, n_wren=60, n_robin=3)
    calibrate(str(results), precision=0.9, min_reviews=30)
    now = datetime(2024, 7, 2, tzinfo=timezone.utc)
    with Catalog(results) as catalog:
        catalog.start_run(RunRow(
            run_id="run-1", flow="nightly", started_at=now, finished_at=now, status="completed",
            parameters="{}", config_fingerprint="fp1", model_id="placeholder-v1@none",
            code_version="test", counts=json.dumps({"windows": 67}), host="h", pid=1,
            interrupted_at=None))
    index = write_report(str(results), "run-1")
    browser.get(f"file://{index}")
    curves = [i for i in browser.find_elements("tag name", "img")
              if i.get_attribute("src").rsplit("/", 1)[-1].startswith("calibration-")]
    assert len(curves) == 2
    for image in curves:
        assert browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", image) == 640
    text = browser.find_element("tag name", "body").text
    assert "wren: calibrated, 60 verdicts, threshold" in text
    assert "robin: too_few_reviews, 3 verdicts" in text
    assert console_errors(browser) == []
