"""`dawnchorus learn`: teach the catalog a new sound from a few examples, then find it all season.

Find → label → train → apply, without touching the audio again:

1. **Examples** (`flows.outputs.examples`): Raven selection tables and the catalog's verdicts,
   mapped onto the stored windows of one embedding fingerprint.
2. **Train**: scikit-learn's `LogisticRegression` (L2, lbfgs) on the stored vectors scaled to unit
   length (the geometry `similar` searches in; applying needs only numpy). Positives are
   the examples; negatives the windows labelled as other sounds or judged wrong; and unlabelled
   windows drawn at random as **weak negatives** with a small weight — perch-hoplite's agile
   modelling scheme (its `weak_neg_weight`): most windows of a season do not hold the sound, so
   unlabelled ones are cheap negatives, and the small weight keeps the few that do hold it from
   pulling the classifier down. Class weights make positives and negatives weigh the same in all.
3. **Cross-validate**: stratified k-fold over the labelled and weak-negative windows, reporting
   precision and recall at 0.5 and ROC AUC from the out-of-fold probabilities. Weak negatives
   count as negatives there, so precision is a lower bound when unlabelled windows hold the sound.
4. **Store** a `classifiers` row (name, version, weights, embedding fingerprint, examples,
   metrics, who and when); retraining adds a version and the old one's rows stay.
5. **Apply**: score every stored embedding of the fingerprint and write `predictions` (task
   classify, label NAME, score = the probability) and `windows` rows under the classifier's own
   fingerprint, recording by recording, several per transaction: the rows of a recording's
   windows commit together or not at all, and a re-run scores only the windows that have no row
   under the classifier's fingerprint yet (the pipeline's exactly-once journal). A nightly run
   applies the latest version of every classifier on its fingerprint to the windows it added.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import PackageNotFoundError, version

import getpass
import hashlib
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from connectors.catalog import Catalog, CatalogReader, ClassifierTodo, reads
from connectors.catalog.locks import run_lock
from connectors.catalog.vectors import as_float32
from connectors.errors import ConfigError
from connectors.location import ResultsLocation
from connectors.tables import PREDICTIONS, WINDOWS, ClassifierRow, RunRow, replace
from flows.outputs.examples import (
    Example,
    LabelledWindow,
    MappedExamples,
    WindowIndex,
    WindowKey,
    from_verdict,
    map_examples,
    read_raven_examples,
    review_examples,
)
from flows.outputs.similar import EmbeddedRun, choose_run, embedded_runs, vector_matrix

log = logging.getLogger(__name__)

#: Unlabelled windows drawn as weak negatives (all of them when the season has fewer).
WEAK_NEGATIVES = 2000
#: A weak negative's weight beside a labelled negative's 1 (perch-hoplite's weak_neg_weight).
WEAK_NEGATIVE_WEIGHT = 0.05
#: Inverse L2 strength (scikit-learn's C) with the sample weights summing to twice the positives
#: (so the penalty weighs against the labelled evidence, however many weak negatives there are).
#: Chosen on BirdNET embeddings of planted calls (tests/flows/outputs/test_learn_audio.py, five
#: examples): unseen calls scored >= 0.60 at C = 1, >= 0.79 at C = 30, the background <= 0.45 and
#: <= 0.14. Standardised features instead of unit vectors fitted the five examples' particulars
#: (unseen calls under 0.05 at every C tried).
REGULARISATION_C = 30.0
MAX_FOLDS = 5
SEED = 0
#: Windows scored per transaction when applying (about 4 MB of 1024-d float32 per 1000).
APPLY_BATCH_WINDOWS = 100_000
LEARN_FLOW = "learn"


@dataclass(frozen=True)
class TrainingSet:
    keys: list[str]  # 'recording|channel|window' per row
    vectors: np.ndarray  # (N, D) float32
    target: np.ndarray  # (N,) 1 = positive
    weak: np.ndarray  # (N,) True for weak negatives
    sources: list[str]


@dataclass(frozen=True)
class Fit:
    weights: np.ndarray  # (D,) float64, on raw vectors
    bias: float
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ApplyResult:
    windows: int
    above_half: int
    batches: int


@dataclass(frozen=True)
class LearnResult:
    classifier: ClassifierRow
    new_version: bool
    mapped: MappedExamples
    skipped: list[str]
    applied: ApplyResult | None


# ------------------------------------------------------------------------------- training


def sample_weights(target: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Weak negatives weigh WEAK_NEGATIVE_WEIGHT of a labelled negative; both classes weigh the
    same in all (class weights); each positive weighs 1 (see REGULARISATION_C)."""
    weights = np.where(weak, WEAK_NEGATIVE_WEIGHT, 1.0)
    positive = target == 1
    negatives = weights[~positive].sum()
    weights[~positive] *= positive.sum() / max(negatives, 1e-12)
    weights[positive] = 1.0
    return weights


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, D) float64 rows scaled to unit length (a zero row stays zero)."""
    x = vectors.astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    norms[norms == 0] = 1.0
    x /= norms
    return x


def fit_logistic(vectors: np.ndarray, target: np.ndarray, weak: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights, bias) of a logistic regression on the unit-length vectors."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=REGULARISATION_C, max_iter=5000)
    model.fit(unit_rows(vectors), target, sample_weight=sample_weights(target, weak))
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


def probabilities(vectors: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """P(label) per row: the logistic of weights . (vector / |vector|) + bias, in float64,
    finite in [0, 1]."""
    # A season's matrix is gigabytes: score it in float32 and divide by the norms after,
    # instead of copying it to unit float64 rows (1e-6 in z, 20 times faster). Stored float16
    # (schema version 12) is converted to one float32 matrix first: scoring it block by block
    # took twice as long (100 k x 1024: 0.96 s against 0.46 s).
    x = as_float32(vectors) if vectors.dtype == np.float16 else np.asarray(vectors, np.float32)
    # Squared norms without np.linalg.norm's full-size temporary (x * x: another copy of the
    # batch, whose fresh pages cost more than the arithmetic).
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))  # (N,)
    norms[norms == 0] = 1.0
    z = (x @ np.asarray(weights, np.float32)).astype(np.float64) / norms + bias  # (N,)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic, without overflow for large |z|


def cross_validate(data: TrainingSet) -> dict[str, Any]:
    """Stratified k-fold precision, recall (at 0.5) and ROC AUC, out of fold."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    n_pos = int(data.target.sum())
    n_neg = int(len(data.target) - n_pos)
    folds = min(MAX_FOLDS, n_pos, n_neg)
    counts = {"positives": n_pos, "negatives": n_neg - int(data.weak.sum()),
              "weak_negatives": int(data.weak.sum())}
    if folds < 2:
        return {"folds": None, "why": f"too few examples to cross-validate ({n_pos} positive, "
                                      f"{n_neg} negative windows)", **counts}
    scores = np.zeros(len(data.target))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for train, test in splitter.split(data.vectors, data.target):
        weights, bias = fit_logistic(data.vectors[train], data.target[train], data.weak[train])
        scores[test] = probabilities(data.vectors[test], weights, bias)
    said = (scores >= 0.5).astype(int)
    return {
        "folds": folds, "threshold": 0.5,
        "precision": float(precision_score(data.target, said, zero_division=0.0)),
        "recall": float(recall_score(data.target, said, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(data.target, scores)),
        "weak_negatives_scored_as": "negatives", **counts,
    }


def train(data: TrainingSet) -> Fit:
    metrics = cross_validate(data)
    weights, bias = fit_logistic(data.vectors, data.target, data.weak)
    return Fit(weights, bias, metrics)


# ------------------------------------------------------------------------------- the data


def training_set(reader: CatalogReader, run: EmbeddedRun, index: WindowIndex,
                 mapped: MappedExamples, weak_negatives: int) -> TrainingSet:
    """The labelled windows' vectors, and `weak_negatives` unlabelled windows drawn at random."""
    labelled = sorted({index.position(w.key) for w in mapped.windows} - {None})
    unlabelled = np.delete(np.arange(index.size), labelled)  # row positions, in the rows' order
    rng = np.random.default_rng(SEED)
    picks = rng.choice(len(unlabelled), size=min(weak_negatives, len(unlabelled)), replace=False)
    weak_keys = [index.key(int(unlabelled[i])) for i in sorted(picks.tolist())]
    keys = [w.key.text for w in mapped.windows] + [k.text for k in weak_keys]
    table = reads.learn_vectors(reader, config_fingerprint=run.fingerprint, keys=keys)
    row_of = {k: i for i, k in enumerate(table.column("key").to_pylist())}
    matrix = vector_matrix(table, run.dim)
    vectors = matrix[[row_of[k] for k in keys]]  # (N, D), in `keys` order
    target = np.array([int(w.positive) for w in mapped.windows] + [0] * len(weak_keys))
    weak = np.array([False] * len(mapped.windows) + [True] * len(weak_keys))
    sources = [w.source for w in mapped.windows] + ["weak negative"] * len(weak_keys)
    return TrainingSet(keys, vectors, target, weak, sources)


def classifier_row(name: str, version: int, label: str, run: EmbeddedRun, fit: Fit,
                   mapped: MappedExamples, data: TrainingSet, by: str, now: datetime) -> ClassifierRow:
    weights = np.asarray(fit.weights, dtype="<f8")
    digest = hashlib.sha256(json.dumps([label, run.fingerprint]).encode() + weights.tobytes()
                            + np.asarray([fit.bias], "<f8").tobytes()).hexdigest()
    fingerprint = hashlib.sha256(json.dumps({
        "classifier_digest": digest, "embedding_fingerprint": run.fingerprint, "task": "classify",
    }, sort_keys=True).encode()).hexdigest()[:16]
    m = fit.metrics
    return ClassifierRow(
        classifier_id=f"{name}@{version}", name=name, version=version, label=label,
        model_id=f"classifier:{name}@sha256:{digest[:12]}", config_fingerprint=fingerprint,
        digest=digest, embedding_fingerprint=run.fingerprint, embedding_model_id=run.model_id,
        weights=weights.tolist(), bias=fit.bias,
        scheme=json.dumps({
            "estimator": "sklearn.linear_model.LogisticRegression", "penalty": "l2",
            "C": REGULARISATION_C, "features": "unit-length vectors",
            "class_weights": "balanced (weighted); each positive weighs 1",
            "negatives": "labelled negatives + unlabelled windows as weak negatives",
            "weak_negative_weight": WEAK_NEGATIVE_WEIGHT, "seed": SEED,
        }, sort_keys=True),
        examples=json.dumps([{"recording_id": w.key.recording_id, "channel": w.key.channel,
                              "window_index": w.key.window_index, "positive": w.positive,
                              "source": w.source} for w in mapped.windows]),
        n_positive=mapped.positives, n_negative=mapped.negatives,
        n_weak_negative=int(data.weak.sum()), cv_folds=m.get("folds"),
        cv_precision=m.get("precision"), cv_recall=m.get("recall"), cv_roc_auc=m.get("roc_auc"),
        metrics=json.dumps(m, sort_keys=True), created_at=now, created_by=by,
    )


# ------------------------------------------------------------------------------- applying


def apply_classifier(catalog: Catalog, classifier: ClassifierRow, run_id: str, *,
                     batch_windows: int = APPLY_BATCH_WINDOWS,
                     progress: Callable[[int], None] | None = None) -> ApplyResult:
    """Score the embedded windows `classifier` has not scored yet, in whole recordings per
    transaction (see the module docstring). Call it holding the catalog's run lock."""
    emb_fp, clf_fp = classifier.embedding_fingerprint, classifier.config_fingerprint
    weights = np.asarray(classifier.weights, dtype=np.float64)
    todo = catalog.classifier_todo(emb_fp, clf_fp)
    # Whole recordings per batch, in partition order (deployment, date): a batch reads only the
    # partitions its recordings lie in, so the season's vectors are read about once in all.
    batches: list[list[ClassifierTodo]] = []
    size = 0
    for recording in todo:
        if not batches or size + recording.windows > batch_windows:
            batches.append([])
            size = 0
        batches[-1].append(recording)
        size += recording.windows
    scored = above = 0
    for recordings in batches:
        table = catalog.classifier_batch(emb_fp, clf_fp, recordings)
        if table.num_rows == 0:
            continue
        scores = probabilities(vector_matrix(table, weights.size, copy=False), weights,
                               classifier.bias)
        windows, predictions = _rows(table, scores, classifier, run_id)
        catalog.commit_tables(windows, predictions)
        scored += table.num_rows
        above += int((scores >= 0.5).sum())
        if progress:
            progress(table.num_rows)
    return ApplyResult(scored, above, len(batches))


def _rows(table: pa.Table, scores: np.ndarray, c: ClassifierRow, run_id: str
          ) -> tuple[pa.Table, pa.Table]:
    n = table.num_rows

    def same(value: Any, typ: pa.DataType) -> pa.Array:
        return pa.array([value] * n, typ)

    col = table.column
    # `conform`: columns a later migration adds, and nothing here knows of, stay null rather
    # than breaking every apply (as the windows' band and the predictions' call box once did)
    windows = WINDOWS.conform({
        "run_id": same(run_id, pa.string()), "config_fingerprint": same(c.config_fingerprint, pa.string()),
        "recording_id": col("recording_id"), "deployment_id": col("deployment_id"),
        "channel": col("channel"), "window_index": col("window_index"), "offset_s": col("offset_s"),
        "window_s": col("window_s"), "duration_s": col("duration_s"), "start_utc": col("start_utc"),
        "start_local": col("start_local"), "date": col("date"), "status": same("ok", pa.string()),
        "padded": col("padded"), "error": same(None, pa.string()),
        # the audio's quality (docs/effort.md) and the band its model analysed are the embedded
        # window's: the classifier scores the same samples
        **{name: col(name) for name in ("rms_dbfs", "peak_dbfs", "clipped_fraction", "zero_run_s",
                                        "qc", "band_low_hz", "band_high_hz")},
    })
    predictions = PREDICTIONS.conform({
        "run_id": same(run_id, pa.string()), "model_id": same(c.model_id, pa.string()),
        "config_fingerprint": same(c.config_fingerprint, pa.string()),
        "recording_id": col("recording_id"), "deployment_id": col("deployment_id"),
        "channel": col("channel"), "window_index": col("window_index"), "offset_s": col("offset_s"),
        "start_utc": col("start_utc"), "start_local": col("start_local"), "date": col("date"),
        "task": same("classify", pa.string()), "prompt_id": same(c.classifier_id, pa.string()),
        "rank": same(1, pa.int32()), "answer_text": same(c.label, pa.string()),
        "label": same(c.label, pa.string()), "scientific_name": same(None, pa.string()),
        "score": pa.array(scores, pa.float64()),
    })
    return windows, predictions


def new_run_id() -> str:
    """A run id in the pipeline's form (`flows.pipeline.run.new_run_id`: YYYYMMDDTHHMMSSZ-xxxxxxxx),
    made here so that learning never imports Prefect."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def apply_recorded(location: ResultsLocation, classifier: ClassifierRow, run_id: str,
                   progress: Callable[[int], None] | None = None) -> ApplyResult:
    """`apply_classifier` recorded in `runs` (flow learn) as the pipeline records its runs."""
    started = datetime.now(timezone.utc)
    run = RunRow(run_id=run_id, flow=LEARN_FLOW, started_at=started, finished_at=None,
                 status="running", parameters=json.dumps({
                     "classifier_id": classifier.classifier_id, "label": classifier.label,
                     "embedding_fingerprint": classifier.embedding_fingerprint}),
                 config_fingerprint=classifier.config_fingerprint, model_id=classifier.model_id,
                 code_version=_code_version(), counts=None, host=socket.gethostname(),
                 pid=os.getpid(), interrupted_at=None)
    with Catalog(location) as catalog:
        catalog.start_run(run)
        try:
            result = apply_classifier(catalog, classifier, run_id, progress=progress)
        except BaseException:
            catalog.finish_run(replace(run, status="failed", finished_at=datetime.now(timezone.utc)))
            raise
        catalog.finish_run(replace(run, status="completed", finished_at=datetime.now(timezone.utc),
                                   counts=json.dumps({"windows": result.windows,
                                                      "predictions": result.windows})))
    return result


def _code_version() -> str:

    try:
        return version("dawnchorus")
    except PackageNotFoundError:
        return "unknown"


def latest_classifiers(catalog: Catalog, embedding_fingerprint: str) -> list[ClassifierRow]:
    """The newest version of every classifier reading this embedding fingerprint."""
    newest: dict[str, ClassifierRow] = {}
    for c in catalog.classifiers():
        if c.embedding_fingerprint == embedding_fingerprint:
            if c.name not in newest or c.version > newest[c.name].version:
                newest[c.name] = c
    return list(newest.values())


def apply_stored_classifiers(location: ResultsLocation, embedding_fingerprint: str,
                             run_id: str) -> dict[str, int]:
    """What a nightly run does after committing: every stored classifier on its fingerprint
    (newest version of each) scores the windows it has not scored. {classifier_id: windows}."""
    with Catalog(location) as catalog:
        classifiers = latest_classifiers(catalog, embedding_fingerprint)
        out = {}
        for c in classifiers:
            out[c.classifier_id] = apply_classifier(catalog, c, run_id).windows
    return out


# ------------------------------------------------------------------------------- learn


def learn(results: str | ResultsLocation, label: str, *, examples: Sequence[str] = (),
          name: str | None = None, config_fingerprint: str | None = None, by: str | None = None,
          annotation_column: str | None = None, weak_negatives: int = WEAK_NEGATIVES,
          apply: bool = True, keep_examples: bool = False, now: datetime | None = None,
          progress: Callable[[int], None] | None = None) -> LearnResult:
    """Train a classifier for `label` (see the module docstring), store it, and apply it.

    `keep_examples`: also the examples of the newest version of `name` that did not come from
    verdicts (a Raven table's windows), so retraining from new verdicts keeps the table's
    examples without naming the table again (the review page's retrain does this)."""
    label = label.strip()
    if not label:
        raise ConfigError("--label: expected the name of the sound")
    name = (name or label).strip()
    location = ResultsLocation.resolve(results)
    found: list[Example] = []
    skipped: list[str] = []
    for path in examples:
        rows, bad = read_raven_examples(path, label, annotation_column=annotation_column)
        found += rows
        skipped += bad
    with CatalogReader(location) as reader:
        run = choose_run(embedded_runs(reader), config_fingerprint, location.describe())
        # Verdicts on the label always count (a verdict in the review page is a new example:
        # learning again after judging a classifier's detections is the active-learning loop).
        verdicts = [dataclasses.asdict(r) for r in reads.latest_reviews(reader)]
        found += review_examples(verdicts, label)
        kept = kept_examples(reads.classifiers(reader), name, run.fingerprint) if keep_examples else []
        if not found and not kept:
            raise ConfigError(f"no verdicts on {label!r} in the catalog: give --examples "
                              "TABLE.txt, or judge detections in the review page first")
        index = WindowIndex(reads.learn_embedded_windows(reader, config_fingerprint=run.fingerprint))
        mapped = with_kept(map_examples(found, index, run.fingerprint), kept, index)
        if mapped.positives == 0:
            raise ConfigError(f"no example of {label!r} maps to a stored window of fingerprint "
                              f"{run.fingerprint}" + (f" ({mapped.problems[0]})" if mapped.problems else ""))
        data = training_set(reader, run, index, mapped, weak_negatives)
    fit = train(data)
    now = now or datetime.now(timezone.utc)
    who = by or _whoami()
    run_id = new_run_id()
    with run_lock(location, run_id):
        with Catalog(location) as catalog:
            versions = [c for c in catalog.classifiers() if c.name == name]
            row = classifier_row(name, max((c.version for c in versions), default=0) + 1, label,
                                 run, fit, mapped, data, who, now)
            same = [c for c in versions if c.digest == row.digest]
            if same:  # the same examples again: the same classifier, not a new version
                row = same[0]
            else:
                catalog.add_classifier(row)
        applied = apply_recorded(location, row, run_id, progress) if apply else None
    return LearnResult(row, not same, mapped, skipped, applied)


def kept_examples(classifiers: Sequence[ClassifierRow], name: str, embedding_fingerprint: str
                  ) -> list[LabelledWindow]:
    """The newest version of `name`'s labelled windows that did not come from verdicts (those
    are read afresh, as they stand now); none when it reads another embedding fingerprint."""
    versions = [c for c in classifiers if c.name == name]
    if not versions:
        return []
    newest = max(versions, key=lambda c: c.version)
    if newest.embedding_fingerprint != embedding_fingerprint:
        return []
    return [LabelledWindow(WindowKey(e["recording_id"], int(e["channel"]), int(e["window_index"])),
                           bool(e["positive"]), e["source"])
            for e in json.loads(newest.examples) if not from_verdict(str(e["source"]))]


def with_kept(mapped: MappedExamples, kept: Sequence[LabelledWindow], index: WindowIndex
              ) -> MappedExamples:
    """`mapped` plus the kept windows still stored (a positive wins over a negative, as in
    `map_examples`), in `map_examples`' order."""
    if not kept:
        return mapped
    labels = {w.key: w for w in mapped.windows}
    problems = list(mapped.problems)
    for w in kept:
        if index.position(w.key) is None:
            problems.append(f"{w.source} (kept from the previous version): window {w.key.text} "
                            "is no longer stored")
        elif w.key not in labels or (w.positive and not labels[w.key].positive):
            labels[w.key] = w
    ordered = sorted(labels.values(), key=lambda w: (not w.positive, w.key.recording_id,
                                                      w.key.channel, w.key.window_index))
    return MappedExamples(ordered, problems)


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container): the host says who
        return f"unknown@{socket.gethostname()}"
