"""Per-species thresholds from people's verdicts: `dawnchorus calibrate`.

The method is the BirdNET guidelines' (Wood & Kahl 2024, "Guidelines for appropriate use of
BirdNET scores and other detector outputs"): for one species under one fingerprint, a logistic
regression of the verified outcome (correct = 1; wrong or another species = 0; unsure left out)
on logit(score),

    P(correct | score) = sigmoid(intercept + slope * logit(score)),

and the threshold for a target precision p is the score at which that curve reaches p:

    threshold = sigmoid((logit(p) - intercept) / slope).

Why this definition of "threshold for a target precision", and not the empirical precision of the
reviewed detections above a threshold: the review queue samples detections stratified by score
(equal numbers per score bin), so the reviewed set over-represents rare low and high scores. The
regression of the outcome on the score is unaffected by sampling on the score (it models the
outcome given the score), whereas the precision of the reviewed items above a threshold would
describe the sample, not the species' detections, unless every item were re-weighted by its bin's
sampling fraction. The curve's threshold is also conservative: every detection above it has at
least probability p of being correct, so the detections above it, taken together, have a
precision of at least p.

The fit is Newton-Raphson on the exact log-likelihood (numpy; two parameters). A species gets no
threshold, and keeps the catalog default, when it has too few verdicts, when every verdict is the
same, when the scores separate the verdicts completely (no finite maximum-likelihood fit: review
more detections near the boundary), or when the fitted probability does not rise with the score.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

import numpy as np

from connectors.catalog import Catalog, CatalogReader
from connectors.catalog.reads import latest_reviews
from connectors.errors import ConfigError
from connectors.tables import ThresholdRow
from flows.review.defaults import DEFAULT_MIN_REVIEWS, DEFAULT_PRECISION

log = logging.getLogger(__name__)

#: Scores are clipped to [SCORE_EPS, 1 - SCORE_EPS] before the logit: models do emit 0 and 1.
SCORE_EPS = 1e-6
#: Verdicts as outcomes; unsure verdicts are left out of the fit.
OUTCOME = {"correct": 1, "wrong": 0, "other": 0}
MAX_NEWTON_STEPS = 100


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), SCORE_EPS, 1.0 - SCORE_EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


@dataclass(frozen=True)
class LogisticFit:
    """P(y = 1 | x) = sigmoid(intercept + slope * x), fitted by maximum likelihood."""

    intercept: float
    slope: float
    slope_se: float
    log_likelihood: float
    null_log_likelihood: float
    iterations: int

    def probability(self, score: np.ndarray | float) -> np.ndarray:
        """The fitted probability of being correct at `score`."""
        return sigmoid(self.intercept + self.slope * logit(score))

    def threshold(self, precision: float) -> float:
        """The score at which the fitted probability of being correct equals `precision`."""
        if not self.slope > 0:
            raise ValueError("the fitted probability does not rise with the score")
        return float(sigmoid((float(logit(precision)) - self.intercept) / self.slope))


class NoFit(ValueError):
    """The verdicts admit no finite logistic fit; `status` is the thresholds table's reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


def _log_likelihood(eta: np.ndarray, y: np.ndarray) -> float:
    # y * log(sigmoid(eta)) + (1 - y) * log(1 - sigmoid(eta)) = y * eta - log(1 + exp(eta))
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def fit_logistic(x: Sequence[float], y: Sequence[int]) -> LogisticFit:
    """Maximum-likelihood logistic regression of y (0/1) on x with an intercept.

    Raises NoFit when no finite maximum exists: every y the same (one_outcome), or x separating
    the outcomes completely or quasi-completely (separated).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and the same length, got {x.shape} and {y.shape}")
    n, k = len(y), float(y.sum())
    if k == 0 or k == n:
        raise NoFit("one_outcome", f"all {n} verdicts are {'correct' if k else 'wrong'}")
    x1, x0 = x[y == 1], x[y == 0]
    # In one dimension a finite maximum exists exactly when the two outcomes' ranges overlap.
    if not (x1.min() < x0.max() and x0.min() < x1.max()):
        raise NoFit("separated", "the scores separate correct from wrong verdicts completely; "
                                 "review more detections near the boundary")
    design = np.stack([np.ones_like(x), x], axis=1)  # (N, 2)
    beta = np.array([math.log(k / (n - k)), 0.0])
    null_ll = _log_likelihood(np.full(n, beta[0]), y)
    ll = null_ll
    for step in range(1, MAX_NEWTON_STEPS + 1):
        p = sigmoid(design @ beta)
        gradient = design.T @ (y - p)  # (2,)
        information = (design * (p * (1.0 - p))[:, None]).T @ design  # (2, 2)
        delta = np.linalg.solve(information, gradient)
        # Step halving keeps every step uphill (Newton can overshoot on very uneven designs).
        for _ in range(30):
            candidate = beta + delta
            new_ll = _log_likelihood(design @ candidate, y)
            if new_ll >= ll - 1e-12:
                break
            delta = delta / 2.0
        beta, improvement, ll = candidate, new_ll - ll, new_ll
        if np.max(np.abs(delta)) < 1e-10 or abs(improvement) < 1e-12:
            break
    else:
        raise NoFit("separated", f"the fit did not converge in {MAX_NEWTON_STEPS} steps")
    p = sigmoid(design @ beta)
    information = (design * (p * (1.0 - p))[:, None]).T @ design
    covariance = np.linalg.inv(information)
    return LogisticFit(intercept=float(beta[0]), slope=float(beta[1]),
                       slope_se=float(math.sqrt(covariance[1, 1])), log_likelihood=ll,
                       null_log_likelihood=null_ll, iterations=step)


@dataclass(frozen=True)
class Verdict:
    """One reviewed detection, as calibration sees it."""

    config_fingerprint: str
    label: str
    score: float
    verdict: str


def calibrate_species(config_fingerprint: str, label: str, verdicts: Iterable[Verdict], *,
                      precision: float, min_reviews: int, now: datetime) -> ThresholdRow:
    """The thresholds row of one fingerprint and species from its (newest) verdicts."""
    verdicts = list(verdicts)
    fitted = [v for v in verdicts if v.verdict in OUTCOME]
    scores = np.array([v.score for v in fitted], dtype=np.float64)
    outcomes = np.array([OUTCOME[v.verdict] for v in fitted], dtype=np.int64)
    row = dict(
        config_fingerprint=config_fingerprint, label=label, target_precision=precision,
        threshold=None, n_reviewed=len(fitted), n_correct=int(outcomes.sum()),
        n_unsure=sum(v.verdict == "unsure" for v in verdicts), min_reviews=min_reviews,
        intercept=None, slope=None, slope_se=None, log_likelihood=None,
        null_log_likelihood=None, iterations=None,
        score_min=float(scores.min()) if len(scores) else None,
        score_max=float(scores.max()) if len(scores) else None, calibrated_at=now,
    )
    if len(fitted) < min_reviews:
        return ThresholdRow(status="too_few_reviews", **row)
    try:
        fit = fit_logistic(logit(scores), outcomes)
    except NoFit as exc:
        log.info("%s (%s): no fit: %s", label, config_fingerprint, exc)
        return ThresholdRow(status=exc.status, **row)
    row.update(intercept=fit.intercept, slope=fit.slope, slope_se=fit.slope_se,
               log_likelihood=fit.log_likelihood, null_log_likelihood=fit.null_log_likelihood,
               iterations=fit.iterations)
    if not fit.slope > 0:
        return ThresholdRow(status="not_increasing", **row)
    row["threshold"] = fit.threshold(precision)
    return ThresholdRow(status="calibrated", **row)


def check_calibration_args(precision: float, min_reviews: int) -> None:
    if not (isinstance(precision, (int, float)) and 0.0 < precision < 1.0):
        raise ConfigError(f"--precision {precision}: expected a probability strictly between 0 and 1")
    if not (isinstance(min_reviews, int) and min_reviews >= 2):
        raise ConfigError(f"--min-reviews {min_reviews}: expected a whole number of at least 2")


def newest_verdicts(reader: CatalogReader, config_fingerprint: str | None = None) -> list[Verdict]:
    """The verdict that counts for every reviewed detection."""
    return [Verdict(r.config_fingerprint, r.label, r.score, r.verdict)
            for r in latest_reviews(reader, config_fingerprint=config_fingerprint)]


def calibrate(results: str, *, precision: float = DEFAULT_PRECISION,
              min_reviews: int = DEFAULT_MIN_REVIEWS, now: datetime | None = None
              ) -> list[ThresholdRow]:
    """Fit every reviewed fingerprint and species, write their thresholds in one transaction."""
    check_calibration_args(precision, min_reviews)
    now = now or datetime.now(timezone.utc)
    with CatalogReader(results) as reader:
        verdicts = newest_verdicts(reader)
    groups: dict[tuple[str, str], list[Verdict]] = defaultdict(list)
    for v in verdicts:
        groups[(v.config_fingerprint, v.label)].append(v)
    rows = [calibrate_species(fp, label, group, precision=precision, min_reviews=min_reviews,
                              now=now)
            for (fp, label), group in sorted(groups.items())]
    with Catalog(results) as catalog:
        catalog.replace_thresholds(rows)
    return rows
