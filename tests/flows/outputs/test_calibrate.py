"""Calibration: the logistic fit of verdict on logit(score) recovers a known curve's threshold
within its sampling error, says why when it cannot fit, and the detections view switches to a
calibrated threshold while species without enough reviews keep the catalog default.

Tolerance. The threshold estimate t = sigmoid((logit(p) - a) / b) has a sampling error that the
delta method gives from the Fisher information of the design at the true (a, b); it depends only
on the true curve and the reviewed scores, not on the fit under test. With a = 0.5, b = 1.5,
p = 0.9 (true threshold 0.756) and 400 verdicts over scores uniform in [0.1, 1] (what the
stratified queue yields), that standard error is about 0.030; one fixed draw must land within
3 SE (0.09). Across 300 independent draws of 200 verdicts, at least 90 % must land within 2 SE
(the nominal share is 95 %; 300 draws put the 90 % floor more than 3 binomial SDs below it), and
the mean error must be within 3 standard errors of the mean, i.e. no bias beyond noise.
"""

from __future__ import annotations

import csv
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import ReviewRow, ThresholdRow
from flows.outputs.calibration.calibrate import (
    NoFit,
    Verdict,
    calibrate,
    calibrate_species,
    fit_logistic,
    logit,
    sigmoid,
)
from tests.support.review_catalog import recording_row, prediction_row, window_row

A, B, PRECISION = 0.5, 1.5, 0.9
TRUE_THRESHOLD = float(sigmoid((logit(PRECISION) - A) / B))


def draw(n: int, seed: int, a: float = A, b: float = B) -> tuple[np.ndarray, np.ndarray]:
    """n reviewed scores (uniform over [0.1, 1], as the stratified queue yields) and outcomes
    drawn from P(correct) = sigmoid(a + b logit(score))."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.1, 1.0, n)
    outcomes = (rng.random(n) < sigmoid(a + b * logit(scores))).astype(int)
    return scores, outcomes


def threshold_se(scores: np.ndarray, a: float = A, b: float = B, p: float = PRECISION) -> float:
    """Delta-method standard error of the threshold at the true curve, for these scores."""
    x = logit(scores)
    q = sigmoid(a + b * x)
    design = np.stack([np.ones_like(x), x], axis=1)
    covariance = np.linalg.inv((design * (q * (1 - q))[:, None]).T @ design)
    gradient = np.array([-1.0 / b, -(float(logit(p)) - a) / b**2])  # d x* / d (a, b)
    t = float(sigmoid((float(logit(p)) - a) / b))
    return t * (1 - t) * float(np.sqrt(gradient @ covariance @ gradient))


def test_the_true_threshold_is_what_the_definition_says():
    assert TRUE_THRESHOLD == pytest.approx(0.7561, abs=1e-4)
    assert float(sigmoid(A + B * logit(TRUE_THRESHOLD))) == pytest.approx(PRECISION)


def test_one_draw_recovers_the_threshold_within_three_standard_errors():
    scores, outcomes = draw(400, seed=11)
    fit = fit_logistic(logit(scores), outcomes)
    se = threshold_se(scores)
    assert 0.02 < se < 0.04
    assert abs(fit.threshold(PRECISION) - TRUE_THRESHOLD) <= 3 * se


def test_the_estimate_is_unbiased_and_its_error_as_small_as_the_theory_says():
    errors, inside = [], 0
    for seed in range(300):
        scores, outcomes = draw(200, seed=1000 + seed)
        estimate = fit_logistic(logit(scores), outcomes).threshold(PRECISION)
        errors.append(estimate - TRUE_THRESHOLD)
        inside += abs(estimate - TRUE_THRESHOLD) <= 2 * threshold_se(scores)
    errors = np.array(errors)
    assert inside / len(errors) >= 0.90
    assert abs(errors.mean()) <= 3 * errors.std() / np.sqrt(len(errors))


def test_the_fit_solves_the_likelihood_equations():
    # At the maximum the score equations hold: sum(y - p) = 0 and sum((y - p) x) = 0.
    scores, outcomes = draw(300, seed=5)
    x = logit(scores)
    fit = fit_logistic(x, outcomes)
    residual = outcomes - sigmoid(fit.intercept + fit.slope * x)
    assert abs(residual.sum()) < 1e-8
    assert abs((residual * x).sum()) < 1e-8
    assert fit.log_likelihood > fit.null_log_likelihood
    # Nudging either coefficient lowers the likelihood.
    def ll(a, b):
        eta = a + b * x
        return float(np.sum(outcomes * eta - np.logaddexp(0, eta)))
    for da, db in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        assert ll(fit.intercept + da, fit.slope + db) < fit.log_likelihood


def test_a_large_sample_converges_on_the_truth():
    scores, outcomes = draw(40_000, seed=3)
    fit = fit_logistic(logit(scores), outcomes)
    assert fit.intercept == pytest.approx(A, abs=0.06)
    assert fit.slope == pytest.approx(B, abs=0.06)
    assert fit.threshold(PRECISION) == pytest.approx(TRUE_THRESHOLD, abs=0.01)


def verdicts(scores, outcomes, label="wren", fp="fp1"):
    return [Verdict(fp, label, float(s), "correct" if y else "wrong") for s, y in zip(scores, outcomes)]


NOW = datetime(2024, 7, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("scores, outcomes, status", [
    ([0.2, 0.5, 0.9, 0.95], [1, 1, 1, 1], "one_outcome"),
    ([0.2, 0.3, 0.4, 0.8, 0.9, 0.95], [0, 0, 0, 1, 1, 1], "separated"),
    ([0.2, 0.3, 0.5, 0.5, 0.9, 0.95], [0, 0, 0, 1, 1, 1], "separated"),  # quasi-complete
    ([0.2, 0.3, 0.4, 0.6, 0.8, 0.9], [1, 1, 0, 1, 0, 0], "not_increasing"),
])
def test_verdicts_that_admit_no_threshold_say_why(scores, outcomes, status):
    row = calibrate_species("fp1", "wren", verdicts(scores, outcomes), precision=0.9,
                            min_reviews=4, now=NOW)
    assert (row.status, row.threshold) == (status, None)


def test_too_few_reviews_and_unsure_verdicts():
    scores, outcomes = draw(40, seed=2)
    vs = verdicts(scores, outcomes) + [Verdict("fp1", "wren", 0.5, "unsure")] * 3
    row = calibrate_species("fp1", "wren", vs, precision=0.9, min_reviews=41, now=NOW)
    assert (row.status, row.n_reviewed, row.n_unsure, row.threshold) == ("too_few_reviews", 40, 3, None)
    row = calibrate_species("fp1", "wren", vs, precision=0.9, min_reviews=40, now=NOW)
    assert (row.status, row.n_reviewed, row.n_correct) == ("calibrated", 40, int(outcomes.sum()))
    # "other species" is wrong for the label the model gave.
    other = calibrate_species("fp1", "wren", [Verdict("fp1", "wren", s, "other") for s in scores]
                              + verdicts(scores, outcomes), precision=0.9, min_reviews=2, now=NOW)
    assert other.n_correct == int(outcomes.sum()) and other.n_reviewed == 80


def test_no_fit_without_two_outcomes():
    with pytest.raises(NoFit, match="all 3 verdicts are wrong"):
        fit_logistic(logit(np.array([0.1, 0.5, 0.9])), np.array([0, 0, 0]))


# ------------------------------------------------------------------------ through the catalog


def catalog_with_verdicts(tmp_path, n_wren: int, n_robin: int, seed: int = 21):
    """wren: n_wren windows reviewed from the known curve; robin: n_robin reviewed; both also
    have windows nobody reviewed, at scores either side of the thresholds."""
    rng = np.random.default_rng(seed)
    rec = recording_row("rec-1", str(tmp_path / "a.wav"), 10.0 * (n_wren + n_robin + 4))
    wren_scores = rng.uniform(0.1, 1.0, n_wren)
    wren_outcomes = rng.random(n_wren) < sigmoid(A + B * logit(wren_scores))
    windows = [window_row(rec, i, "fp1") for i in range(n_wren + n_robin + 4)]
    predictions, reviews = [], []
    now = datetime(2024, 7, 1, tzinfo=timezone.utc)
    for i, (s, y) in enumerate(zip(wren_scores, wren_outcomes)):
        predictions.append(prediction_row(windows[i], "wren", float(s)))
        reviews.append(("wren", windows[i], float(s), "correct" if y else "wrong"))
    for j in range(n_robin):
        w = windows[n_wren + j]
        predictions.append(prediction_row(w, "robin", 0.3 + 0.6 * j / max(1, n_robin)))
        reviews.append(("robin", w, predictions[-1].score, "correct" if j % 2 else "wrong"))
    probe = windows[n_wren + n_robin:]
    # Unreviewed detections: wren at 0.6 (below its calibrated threshold, above the default 0.5)
    # and 0.9 (above both); robin at 0.6 and 0.45.
    predictions += [prediction_row(probe[0], "wren", 0.6), prediction_row(probe[1], "wren", 0.9),
                    prediction_row(probe[2], "robin", 0.6), prediction_row(probe[3], "robin", 0.45)]
    results = tmp_path / "results"
    with Catalog(results) as catalog:
        catalog.register_recordings([rec], [])
        catalog.commit_unit(windows, predictions)
        catalog.add_reviews([ReviewRow(
            review_id=uuid.uuid4().hex, reviewed_at=now + timedelta(seconds=k), reviewer="ana",
            recording_id=w.recording_id, config_fingerprint=w.config_fingerprint, channel=w.channel,
            window_index=w.window_index, deployment_id=w.deployment_id, label=label, score=score,
            verdict=verdict, corrected_label=None, via="page")
            for k, (label, w, score, verdict) in enumerate(reviews)])
    return results, probe


def detections(results, threshold=None):
    with CatalogReader(results, threshold=threshold) as reader:
        return reader.query("select label, window_index, score, threshold, threshold_source "
                            "from detections order by label, score").to_pylist()


def test_detections_switch_to_the_calibrated_threshold_and_others_keep_the_default(tmp_path):
    results, probe = catalog_with_verdicts(tmp_path, n_wren=400, n_robin=10)
    before = detections(results)
    assert {d["threshold_source"] for d in before} == {"default"}
    rows = {r.label: r for r in calibrate(str(results), precision=PRECISION, min_reviews=30)}
    wren, robin = rows["wren"], rows["robin"]
    assert robin.status == "too_few_reviews" and robin.threshold is None
    assert wren.status == "calibrated"
    assert abs(wren.threshold - TRUE_THRESHOLD) <= 3 * 0.030  # 3 SE at 400 verdicts (see top)
    with CatalogReader(results) as reader:
        stored = reader.query("select * from thresholds order by label").to_pylist()
    assert [(s["label"], s["status"], s["n_reviewed"]) for s in stored] == [
        ("robin", "too_few_reviews", 10), ("wren", "calibrated", 400)]
    after = detections(results)
    wren_rows = [d for d in after if d["label"] == "wren"]
    robin_rows = [d for d in after if d["label"] == "robin"]
    assert wren_rows and all(d["threshold_source"] == "calibrated" for d in wren_rows)
    assert all(d["score"] >= wren.threshold and d["threshold"] == wren.threshold for d in wren_rows)
    probe_wren = {d["window_index"] for d in wren_rows} & {probe[0].window_index, probe[1].window_index}
    assert probe_wren == {probe[1].window_index}  # 0.6 passed the default, not the calibrated
    assert all(d["threshold_source"] == "default" and d["threshold"] == 0.5 and d["score"] >= 0.5
               for d in robin_rows)
    assert probe[2].window_index in {d["window_index"] for d in robin_rows}
    # Exports read the same view and say which threshold each detection passed.
    from flows.outputs.exports import export

    export("csv", str(results), tmp_path / "csv")
    with open(tmp_path / "csv" / "detections.csv", newline="", encoding="utf-8") as fh:
        exported = list(csv.DictReader(fh))
    assert {(r["Common name"], r["threshold_source"]) for r in exported} == {
        ("wren", "calibrated"), ("robin", "default")}
    assert {float(r["threshold"]) for r in exported if r["Common name"] == "wren"} == {wren.threshold}
    # A query's own threshold applies to every species, and says so.
    query = detections(results, threshold=0.55)
    assert {d["threshold_source"] for d in query} == {"query"}
    assert {d["threshold"] for d in query} == {0.55}
    assert probe[0].window_index in {d["window_index"] for d in query if d["label"] == "wren"}


def test_calibrating_again_replaces_a_species_threshold(tmp_path):
    results, _ = catalog_with_verdicts(tmp_path, n_wren=200, n_robin=0)
    first = {r.label: r for r in calibrate(str(results), precision=0.9, min_reviews=30)}
    second = {r.label: r for r in calibrate(str(results), precision=0.95, min_reviews=30)}
    assert second["wren"].threshold > first["wren"].threshold
    with CatalogReader(results) as reader:
        stored = reader.query("select label, target_precision, threshold from thresholds").to_pylist()
    assert stored == [{"label": "wren", "target_precision": 0.95,
                       "threshold": second["wren"].threshold}]


def test_the_newest_verdict_counts(tmp_path):
    results, _ = catalog_with_verdicts(tmp_path, n_wren=0, n_robin=4)
    with CatalogReader(results) as reader:
        first = reader.query("select * from reviews order by reviewed_at limit 1").to_pylist()[0]
    changed = ReviewRow(**{**first, "review_id": uuid.uuid4().hex,
                           "reviewed_at": first["reviewed_at"] + timedelta(days=1),
                           "verdict": "unsure"})
    with Catalog(results) as catalog:
        catalog.add_review(changed)
    rows = calibrate(str(results), precision=0.9, min_reviews=2)
    assert (rows[0].n_reviewed, rows[0].n_unsure) == (3, 1)


def test_bad_arguments_are_config_errors(tmp_path):
    from connectors.errors import ConfigError

    for kwargs in ({"precision": 1.0}, {"precision": 0.0}, {"min_reviews": 1}):
        with pytest.raises(ConfigError):
            calibrate(str(tmp_path), **kwargs)


def test_thresholds_must_be_consistent_with_their_status(tmp_path):
    row = ThresholdRow(config_fingerprint="fp", label="x", target_precision=0.9, threshold=None,
                       status="calibrated", n_reviewed=1, n_correct=1, n_unsure=0, min_reviews=1,
                       intercept=None, slope=None, slope_se=None, log_likelihood=None,
                       null_log_likelihood=None, iterations=None, score_min=None, score_max=None,
                       calibrated_at=NOW)
    with Catalog(tmp_path / "r") as catalog, pytest.raises(ValueError, match="status calibrated"):
        catalog.replace_thresholds([row])
