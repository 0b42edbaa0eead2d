"""Calibration curves as PNGs, for the run report: per species, the verdicts against the score,
the observed share correct per score bin, the fitted probability of being correct, the target
precision and the threshold.

`calibration_plots(results, out_dir)` is the report's hook: it writes one PNG per fitted species
and returns what the report needs to show them.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from connectors.catalog import CatalogReader
from connectors.catalog.reads import thresholds
from connectors.location import ResultsLocation
from connectors.tables import ThresholdRow
from flows.outputs.calibration.calibrate import OUTCOME, Verdict, logit, newest_verdicts, sigmoid

BINS = 10
#: The PNGs' size in pixels (width, height).
SIZE_PX = (640, 400)


def calibration_curve_png(row: ThresholdRow, verdicts: Sequence[Verdict]) -> bytes:
    """One species' calibration curve as PNG bytes."""
    fitted = [v for v in verdicts if v.verdict in OUTCOME]
    scores = np.array([v.score for v in fitted], dtype=np.float64)
    outcomes = np.array([OUTCOME[v.verdict] for v in fitted], dtype=np.float64)
    figure = Figure(figsize=(SIZE_PX[0] / 100, SIZE_PX[1] / 100), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.11, 0.13, 0.85, 0.76))
    # Verdicts as ticks at 0 and 1, spread a little so that piles stay readable.
    spread = np.random.default_rng(0).uniform(-0.025, 0.025, len(outcomes))
    axes.scatter(scores, outcomes + spread, s=9, alpha=0.45, color="#555555", label="verdicts")
    edges = np.linspace(0.0, 1.0, BINS + 1)
    which = np.clip(np.digitize(scores, edges) - 1, 0, BINS - 1)
    centres, shares = [], []
    for b in range(BINS):
        inside = which == b
        if inside.any():
            centres.append(scores[inside].mean())
            shares.append(outcomes[inside].mean())
    axes.plot(centres, shares, "o", color="#1f77b4", label="share correct per score bin")
    if row.intercept is not None and row.slope is not None:
        grid = np.linspace(0.001, 0.999, 400)
        axes.plot(grid, sigmoid(row.intercept + row.slope * logit(grid)), color="#d62728",
                  label="fitted P(correct)")
    axes.axhline(row.target_precision, color="#2ca02c", linestyle=":",
                 label=f"target {row.target_precision:g}")
    if row.threshold is not None:
        axes.axvline(row.threshold, color="#2ca02c", linestyle="--",
                     label=f"threshold {row.threshold:.3f}")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(-0.06, 1.06)
    axes.set_xlabel("model score")
    axes.set_ylabel("verdict (1 = correct)")
    axes.set_title(f"{row.label} — {row.status}, {row.n_reviewed} verdicts "
                   f"({row.config_fingerprint[:8]})", fontsize=10)
    axes.legend(loc="lower right", fontsize=7)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


@dataclass(frozen=True)
class CalibrationPlot:
    label: str
    config_fingerprint: str
    status: str
    threshold: float | None
    n_reviewed: int
    png: Path


def _file_name(row: ThresholdRow) -> str:
    stem = re.sub(r"[^0-9A-Za-z]+", "-", row.label).strip("-").lower()[:60] or "species"
    tag = hashlib.sha256(f"{row.config_fingerprint}\n{row.label}".encode()).hexdigest()[:8]
    return f"calibration-{stem}-{tag}.png"


def calibration_plots(results: str | ResultsLocation, out_dir: str | Path, fingerprint: str | None = None
                      ) -> list[CalibrationPlot]:
    """Write a calibration curve PNG for every species calibrate saw (under `fingerprint` when
    given); what the report shows."""
    with CatalogReader(results) as reader:
        rows = thresholds(reader)
        verdicts = newest_verdicts(reader)
    by_species: dict[tuple[str, str], list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_species[(v.config_fingerprint, v.label)].append(v)
    out_dir = Path(out_dir)
    plots = []
    for row in rows:
        if fingerprint is not None and row.config_fingerprint != fingerprint:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        png = out_dir / _file_name(row)
        png.write_bytes(calibration_curve_png(row, by_species[(row.config_fingerprint, row.label)]))
        plots.append(CalibrationPlot(row.label, row.config_fingerprint, row.status, row.threshold,
                                     row.n_reviewed, png))
    return plots
