"""The run report's hook for calibration curves: one PNG per species calibrate saw, drawn from
the catalog's thresholds and verdicts, with what the report needs to caption it."""

from __future__ import annotations

import struct

import numpy as np

from flows.review.calibrate import calibrate
from flows.review.curves import calibration_plots
from test_calibrate import catalog_with_verdicts


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
