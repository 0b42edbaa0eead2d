"""`dawnchorus density` (Navine et al. 2024): on a catalog whose windows hold a sound at known
rates per deployment, an always-right reviewer's verdicts on the stratified sample give
estimates whose 95 % intervals hold the true rates; bins without verdicts give no estimate, and
verdicts outside the sample are left out."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from tests.support.catalog_rows import DAY, recording
from connectors.catalog import Catalog
from connectors.errors import ConfigError
from connectors.tables import PredictionRow, ReviewRow, WindowRow
from flows.outputs.density import density, score_bins

FP = "fp-clf"
RATES = {"dep-a": 0.2, "dep-b": 0.05}
WINDOWS = 1500


def seeded(root):
    rng = np.random.default_rng(7)
    truth = {}
    with Catalog(root) as catalog:
        for n, (dep, rate) in enumerate(RATES.items()):
            rec = recording(f"rec-{dep}", dep, DAY, WINDOWS * 3.0)
            catalog.register_recordings([rec], [])
            windows, predictions = [], []
            present = rng.random(WINDOWS) < rate
            scores = np.where(present, rng.beta(6, 2, WINDOWS), rng.beta(1, 6, WINDOWS))
            for i in range(WINDOWS):
                start = DAY + timedelta(seconds=3.0 * i)
                common = dict(run_id="r", config_fingerprint=FP, recording_id=rec.recording_id,
                              deployment_id=dep, channel=0, window_index=i, offset_s=3.0 * i,
                              start_utc=start, start_local=start.replace(tzinfo=None),
                              date=start.date())
                windows.append(WindowRow(**common, window_s=3.0, duration_s=3.0, status="ok",
                                         padded=False, error=None))
                predictions.append(PredictionRow(**common, model_id="classifier:k@sha256:0",
                                                 task="classify", prompt_id="k@1", rank=1,
                                                 answer_text="knocker", label="knocker",
                                                 scientific_name=None, score=float(scores[i])))
                truth[(rec.recording_id, i)] = bool(present[i])
            catalog.commit_unit(windows, predictions)
    return truth


def judge(root, windows, truth, verdict_of=None):
    now = datetime(2024, 7, 1, tzinfo=timezone.utc)
    rows = [ReviewRow(review_id=uuid.uuid4().hex, reviewed_at=now, reviewer="ana",
                      recording_id=w["recording_id"], config_fingerprint=FP, channel=0,
                      window_index=w["window_index"], deployment_id=w["deployment_id"],
                      label="knocker", score=w["score"],
                      verdict=(verdict_of or (lambda ok: "correct" if ok else "wrong"))(
                          truth[(w["recording_id"], w["window_index"])]),
                      corrected_label=None, via="raven")
            for w in windows]
    with Catalog(root) as catalog:
        catalog.add_reviews(rows)


def test_score_bins_cut_at_quantiles():
    bins, bounds = score_bins(np.arange(16) / 15.0)
    assert bounds[0] == 0.0 and bounds[-1] == 1.0 and len(bounds) == 6
    assert np.bincount(bins).tolist() == [8, 4, 2, 1, 1]


def test_density_intervals_hold_the_true_rates(tmp_path):
    root = tmp_path / "res"
    truth = seeded(root)
    before = density(str(root), "knocker", per_bin=40)
    assert all(r.density is None for r in before.rows)  # nothing judged yet
    assert 300 < len(before.sample) <= 2 * 5 * 40  # 40 per deployment and bin, where there are 40
    judge(root, before.sample, truth)
    # A verdict on a window outside the sample (an active-learning pick) is left out.
    sampled = {(w["recording_id"], w["window_index"]) for w in before.sample}
    extra = next({"recording_id": k[0], "window_index": k[1], "deployment_id": "dep-a", "score": 0.5}
                 for k in sorted(truth) if k not in sampled and truth[k])
    judge(root, [extra], truth, verdict_of=lambda ok: "wrong")
    result = density(str(root), "knocker", per_bin=40)
    assert result.outside_sample == 1
    rows = {r.group: r for r in result.rows}
    true_rate = {dep: np.mean([v for (rid, _), v in truth.items() if rid == f"rec-{dep}"])
                 for dep in RATES}
    true_rate["all"] = np.mean(list(truth.values()))
    for group, rate in true_rate.items():
        row = rows[group]
        assert row.low <= rate <= row.high, (group, rate, row)
        assert row.high - row.low < 0.15
        assert row.low <= row.density <= row.high
    assert rows["dep-a"].density > rows["dep-b"].density


def test_density_needs_the_label_under_one_fingerprint(tmp_path):
    root = tmp_path / "res"
    seeded(root)
    with pytest.raises(ConfigError, match="'frog': predictions under 0 fingerprints"):
        density(str(root), "frog")
