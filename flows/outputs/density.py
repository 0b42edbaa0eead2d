"""`dawnchorus density`: the fraction of analysed windows that hold a sound, with a 95 % interval,
from a small review sample stratified by score — the validation-based estimate of Navine et al.
(2024, "All thresholds barred"), as perch-hoplite's call-density tooling computes it.

1. Every analysed window of the fingerprint gets the label's score (0 where the model gave none).
2. The scores are cut into bins at quantiles (default 0, .5, .75, .875, .9375, 1 of all windows:
   finer where the sound is likelier). The strata are (deployment, score bin); a bin's weight in
   a group is the fraction of that group's windows in it.
3. The **sample**: in each stratum, the `--per-bin` windows with the smallest hash of their key
   (a random draw that is the same every time for the same windows, so nothing has to be
   stored); `--draw FILE` writes the unjudged ones as a review table (`dawnchorus review
   --import-raven` reads the verdicts back; the review page's verdicts count too).
4. Verdicts on sample windows (correct, or other naming the label = present; wrong or other =
   absent; unsure left out) give each stratum's P(present | bin) ~ Beta(present + 0.1,
   absent + 0.1). A deployment's density is the sum over bins of weight x P(present | bin): the
   point estimate from the observed fractions, the 95 % interval from the 2.5 and 97.5
   percentiles of 10 000 draws of the Betas; "all" is the deployments' estimates weighted by
   their windows (draws combined the same way). Verdicts on windows outside the sample
   (active learning's choices, not random) are left out and counted.

Why strata per deployment: P(present | score) depends on how common the sound is where the
score was given (the same score is likelier a call where calls are common), so one pooled
P(present | bin) biases every deployment towards the average (a test with rates of 20 % and 5 %
put the 20 % deployment's interval below its truth). Per night, the night's own bin weights are
used with its deployment's P(present | bin): nights share their deployment's sample, the
assumption being that a deployment's P(present | score) holds on each of its nights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from connectors.catalog import CatalogReader, reads
from connectors.errors import ConfigError
from connectors.location import ResultsLocation
from flows.outputs.exports.raven import write_selection_table
from flows.review.exchange import REVIEW_COLUMNS, _Row, _selections

QUANTILES = (0.0, 0.5, 0.75, 0.875, 0.9375, 1.0)
PER_BIN = 20
BETA_PRIOR = 0.1
DRAWS = 10_000
SEED = 0


@dataclass(frozen=True)
class DensityRow:
    group: str  # "all", a deployment id, or "deployment night"
    windows: int
    density: float | None  # None until every bin holding the group's windows has a verdict
    low: float | None
    high: float | None


@dataclass(frozen=True)
class DensityResult:
    fingerprint: str
    label: str
    bounds: list[float]
    sample: list[dict[str, Any]]  # the sample windows, with bin and verdict
    verdicts_per_bin: list[tuple[int, int]]  # (present, absent) per bin
    outside_sample: int  # verdicts on windows not in the sample (left out)
    rows: list[DensityRow]


def key_hash(row: dict[str, Any]) -> int:
    text = f"{SEED}|{row['recording_id']}|{row['channel']}|{row['window_index']}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def score_bins(scores: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> tuple[np.ndarray, list[float]]:
    """Bin index (0..B-1) of every score, and the bounds: score quantiles, ties merged."""
    bounds = np.unique(np.quantile(scores, quantiles)).tolist() if scores.size else [0.0, 1.0]
    if len(bounds) < 2:
        bounds = [bounds[0], bounds[0]]
    inner = np.asarray(bounds[1:-1])
    return np.searchsorted(inner, scores, side="right"), bounds


def draw_sample(rows: list[dict[str, Any]], strata: np.ndarray, per_bin: int) -> list[int]:
    """Row numbers of the sample: the `per_bin` smallest key hashes in each stratum."""
    chosen = []
    for s in np.unique(strata):
        members = sorted(np.flatnonzero(strata == s).tolist(), key=lambda i: key_hash(rows[i]))
        chosen += members[:per_bin]
    return sorted(chosen)


def bin_draws(weights: np.ndarray, present: np.ndarray, absent: np.ndarray,
              rng: np.random.Generator) -> tuple[float | None, np.ndarray | None]:
    """Point estimate of sum_b weights[b] * P(present | b) and DRAWS draws of it from the Betas;
    None, None while a bin holding windows (weight > 0) has no verdict."""
    used = weights > 0
    if np.any(used & (present + absent == 0)):
        return None, None
    point = float(np.sum(weights[used] * present[used] / (present[used] + absent[used])))
    draws = rng.beta(present[used] + BETA_PRIOR, absent[used] + BETA_PRIOR,
                     size=(DRAWS, int(used.sum())))  # (DRAWS, bins used)
    return point, draws @ weights[used]  # (DRAWS,)


def _row(name: str, windows: int, point: float | None, draws: np.ndarray | None) -> DensityRow:
    if point is None or draws is None:
        return DensityRow(name, windows, None, None, None)
    low, high = np.percentile(draws, [2.5, 97.5])
    return DensityRow(name, windows, point, float(low), float(high))


def density(results: str | ResultsLocation, label: str, *, config_fingerprint: str | None = None,
            per_bin: int = PER_BIN, by_night: bool = False) -> DensityResult:
    with CatalogReader(results) as reader:
        fingerprint = _fingerprint(reader, label, config_fingerprint)
        rows = reads.density_windows(reader, config_fingerprint=fingerprint, label=label)
    if not rows:
        raise ConfigError(f"no analysed windows under fingerprint {fingerprint}")
    scores = np.array([r["score"] for r in rows])
    bins, bounds = score_bins(scores)
    n_bins = len(bounds) - 1
    deployments = sorted({r["deployment_id"] for r in rows})
    dep_of = np.array([deployments.index(r["deployment_id"]) for r in rows])
    strata = dep_of * n_bins + bins  # (deployment, bin)
    sample = draw_sample(rows, strata, per_bin)
    in_sample = set(sample)
    present = np.zeros((len(deployments), n_bins))
    absent = np.zeros((len(deployments), n_bins))
    for i in sample:
        if rows[i]["present"] is not None:
            (present if rows[i]["present"] else absent)[dep_of[i], bins[i]] += 1
    outside = sum(1 for i, r in enumerate(rows) if r["present"] is not None and i not in in_sample)
    rng = np.random.default_rng(SEED)
    out, total_point, total_draws = [], 0.0, np.zeros(DRAWS)
    complete = True
    for d, deployment in enumerate(deployments):
        members = np.flatnonzero(dep_of == d)
        weights = np.bincount(bins[members], minlength=n_bins) / len(members)
        point, draws = bin_draws(weights, present[d], absent[d], rng)
        out.append(_row(deployment, len(members), point, draws))
        share = len(members) / len(rows)
        if point is None or draws is None:
            complete = False
        else:
            total_point += share * point
            total_draws += share * draws
        if by_night:
            for night in sorted({rows[i]["night_date"] for i in members}, key=str):
                nightly = [i for i in members if rows[i]["night_date"] == night]
                w = np.bincount(bins[nightly], minlength=n_bins) / len(nightly)
                point, draws = bin_draws(w, present[d], absent[d], rng)
                out.append(_row(f"{deployment} {night}", len(nightly), point, draws))
    out.insert(0, _row("all", len(rows), total_point if complete else None,
                       total_draws if complete else None))
    sample_rows = [{**rows[i], "bin": int(bins[i])} for i in sample]
    pooled = list(zip(present.sum(axis=0).astype(int).tolist(),
                      absent.sum(axis=0).astype(int).tolist()))
    return DensityResult(fingerprint, label, bounds, sample_rows, pooled, outside, out)


def _fingerprint(reader: CatalogReader, label: str, chosen: str | None) -> str:
    found = reads.label_fingerprints(reader, label=label)
    if chosen is not None:
        found = [f for f in found if f.startswith(chosen)]
    if len(found) != 1:
        raise ConfigError(f"{label!r}: predictions under {len(found)} fingerprints"
                          + (f" ({', '.join(found)}); choose one with --fingerprint"
                             if found else ""))
    return found[0]


def write_sample(results: str | ResultsLocation, result: DensityResult, path: Path) -> int:
    """The sample windows not yet judged, as a review table (`dawnchorus review --import-raven`)."""

    todo = {(r["recording_id"], r["channel"], r["window_index"]) for r in result.sample
            if r["present"] is None}
    if not todo:
        write_selection_table(path, [], REVIEW_COLUMNS)
        return 0
    with CatalogReader(results) as reader:
        rows = reads.density_sample(reader, config_fingerprint=result.fingerprint, label=result.label,
                                    keys=[f"{k[0]}|{k[1]}|{k[2]}" for k in sorted(todo)])
    write_selection_table(path, _selections([_Row(r) for r in rows]), REVIEW_COLUMNS)
    return len(rows)
