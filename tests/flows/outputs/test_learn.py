"""`dawnchorus learn` on a real DuckLake catalog with planted embeddings: Raven examples mapped to
windows (and the ones that map to none reported), the fit's weights equal to scikit-learn's own
model, the classifier stored and applied like any model, versions, and exactly-once apply
(a SIGKILL mid-apply, then a re-run, gives the rows of an uninterrupted apply)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from connectors.catalog import Catalog, CatalogReader
from connectors.errors import ConfigError, InputError
from connectors.tables import ClassifierRow
from flows.outputs.examples import Example, WindowIndex, map_examples, read_raven_examples
from flows.outputs.learn import (
    REGULARISATION_C,
    apply_classifier,
    fit_logistic,
    learn,
    probabilities,
    sample_weights,
)
from tests.support.learn_catalog import DIM, FP, planted_catalog, raven_table

# ------------------------------------------------------------------------------- examples


def test_a_raven_table_gives_positives_negatives_and_says_what_it_skipped(tmp_path):
    table = raven_table(tmp_path / "t.txt", [
        ("/a/x.wav", 1.0, 2.0, "Knocker"), ("/a/x.wav", 5.0, 6.0, "knocker"),
        ("/a/x.wav", 8.0, 9.0, "wind"), ("/a/x.wav", 12.0, 13.0, "")])
    examples, skipped = read_raven_examples(table, "Knocker")
    assert [(e.begin_s, e.end_s, e.positive) for e in examples] == [
        (1.0, 2.0, True), (5.0, 6.0, True), (8.0, 9.0, False)]
    assert skipped == [f"{table}: selection 4: empty Annotation"]


def test_hand_drawn_selections_without_annotation_or_confidence_are_positives(tmp_path):
    table = tmp_path / "hand.txt"
    table.write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tBegin File\n"
                     "1\tSpectrogram 1\t1\t4.5\t5.25\tx.wav\n", encoding="utf-8")
    examples, skipped = read_raven_examples(table, "knocker")
    assert examples == [Example(f"{table}: selection 1", "x.wav", 4.5, 5.25, 1, True)]
    assert skipped == []


@pytest.mark.parametrize("text, reason", [
    ("Selection\tBegin Time (s)\n1\t2\n", "no End Time \\(s\\) column"),
    ("Selection\tBegin Time (s)\tEnd Time (s)\n1\t2\t3\n", "no Begin Path or Begin File"),
    ("Selection\tBegin Time (s)\tEnd Time (s)\tBegin File\n1\t5\t3\tx.wav\n", "before Begin Time"),
    ("Selection\tBegin Time (s)\tEnd Time (s)\tBegin File\n1\tsoon\t3\tx.wav\n", "'soon' is not a number"),
])
def test_a_bad_table_is_one_error_naming_the_file(tmp_path, text, reason):
    table = tmp_path / "bad.txt"
    table.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=f"bad.txt.*{reason}"):
        read_raven_examples(table, "knocker")


def test_examples_map_to_the_windows_they_overlap_and_the_rest_are_reported():
    rows = [{"recording_id": rid, "channel": 0, "window_index": i, "deployment_id": "d",
             "offset_s": i * 3.0, "window_s": 3.0, "uri": f"s3://b/{dep}/20240501_040000.WAV",
             "object_key": f"{dep}/20240501_040000.WAV"}
            for rid, dep in (("ra", "dep-a"), ("rb", "dep-b")) for i in range(5)]
    index = WindowIndex(pa.Table.from_pylist(rows))
    examples = [
        Example("s1", "/home/me/dep-a/20240501_040000.WAV", 3.5, 4.5, 1, True),  # inside window 1
        Example("s2", "s3://b/dep-b/20240501_040000.WAV", 5.5, 7.0, 1, True),  # 0.5 s in 1, 1 s in 2
        Example("s3", "/x/dep-a/20240501_040000.WAV", 2.5, 9.5, 1, False),  # long: windows 1, 2
        Example("s4", "20240501_040000.WAV", 1.0, 2.0, None, True),  # two recordings of that name
        Example("s5", "/x/dep-a/20240501_040000.WAV", 20.0, 21.0, 1, True),  # past the last window
        Example("s6", "/x/dep-c/other.WAV", 1.0, 2.0, 1, True),
    ]
    mapped = map_examples(examples, index, "fpx")
    got = {(w.key.recording_id, w.key.window_index): w.positive for w in mapped.windows}
    # Window 1 of ra is positive (s1) though the long negative s3 covers it too.
    assert got == {("ra", 1): True, ("rb", 2): True, ("ra", 2): False}
    assert [p.split(":")[0] for p in mapped.problems] == ["s4", "s5", "s6"]
    assert "2 analysed recordings end in 20240501_040000.WAV" in mapped.problems[0]
    assert "overlaps no analysed window of fingerprint fpx" in mapped.problems[1]
    assert "no analysed recording named other.WAV" in mapped.problems[2]


# ------------------------------------------------------------------------------- training


def test_class_weights_make_both_classes_weigh_the_same():
    target = np.array([1, 1, 0, 0, 0, 0, 0])
    weak = np.array([False, False, False, True, True, True, True])
    w = sample_weights(target, weak)
    assert w[target == 1].sum() == pytest.approx(w[target == 0].sum()) == pytest.approx(2.0)
    assert w[3] == pytest.approx(0.05 * w[2])  # a weak negative counts for little


def test_stored_weights_score_as_scikit_learns_own_model():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((300, 8)) * [1, 2, 3, 4, 5, 6, 7, 8] + 10).astype(np.float32)
    target = (x[:, 0] - 10 + 0.3 * rng.standard_normal(300) > 0).astype(int)
    weak = rng.random(300) < 0.5
    weights, bias = fit_logistic(x, target, weak)
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    model = LogisticRegression(C=REGULARISATION_C, max_iter=5000).fit(
        unit, target, sample_weight=sample_weights(target, weak))
    expected = model.predict_proba(unit)[:, 1]
    # lbfgs stops at its tolerance: two fits of one problem agree to about 1e-7.
    np.testing.assert_allclose(probabilities(x, weights, bias), expected, atol=1e-6)
    # The length of a vector does not change its score (cosine geometry, as `similar`).
    np.testing.assert_allclose(probabilities(3 * x, weights, bias),
                               probabilities(x, weights, bias), rtol=1e-5)


def test_probabilities_stay_finite_for_huge_margins():
    p = probabilities(np.array([[2.0], [-2.0], [0.0]], np.float32), np.array([1e6]), 0.0)
    assert p.tolist() == [1.0, 0.0, 0.5]  # a zero vector is no evidence either way


# ------------------------------------------------------------------------------- the catalog


def _detections(root: Path, fingerprint: str) -> set[tuple[str, int]]:
    with CatalogReader(root) as reader:
        rows = reader.query("select recording_id, window_index from detections "
                            "where config_fingerprint = ?", [fingerprint]).to_pylist()
    return {(r["recording_id"], r["window_index"]) for r in rows}


def test_learn_stores_applies_and_versions_a_classifier(tmp_path):
    root = tmp_path / "res"
    recs, calls = planted_catalog(root)
    uri = {r.recording_id: r.uri for r in recs}
    # Five calls of rec0 (windows 3, 10, 17, 24, 31), as hand-drawn 1-s selections, and one
    # selection that lies past the recording's end.
    table = raven_table(tmp_path / "ex.txt", [
        (uri["rec0"], i * 3 + 1.0, i * 3 + 2.0, "Knocker") for i in (3, 10, 17, 24, 31)
    ] + [(uri["rec0"], 500.0, 501.0, "Knocker")])
    result = learn(str(root), "Knocker", examples=[str(table)], by="tester", weak_negatives=60)
    c = result.classifier
    assert (c.classifier_id, c.label, c.created_by, c.n_positive) == ("Knocker@1", "Knocker", "tester", 5)
    assert c.n_weak_negative == 60 and c.embedding_fingerprint == FP
    assert len(result.mapped.problems) == 1 and "500-501 s" in result.mapped.problems[0]
    # Cross-validation scores the weak negatives as negatives, and about one in nine of them is
    # an unlabelled call: those score high, so the AUC is a lower bound near 8/9.
    assert c.cv_folds == 5 and 0.8 < c.cv_roc_auc <= 1.0
    assert c.model_id.startswith("classifier:Knocker@sha256:") and c.digest[:12] in c.model_id
    # Applied to every stored embedding: one window row and one prediction per window.
    assert result.applied.windows == 4 * 40
    with CatalogReader(root) as reader:
        counts = reader.query(
            "select count(*) as n, count(distinct run_id) as runs, min(task) as task, "
            "min(label) as label, min(model_id) as model from predictions "
            "where config_fingerprint = ?", [c.config_fingerprint]).to_pylist()[0]
        effort = reader.query("select sum(windows_ok) as n from effort where config_fingerprint = ?",
                              [c.config_fingerprint]).to_pylist()[0]
        run = reader.query("select flow, status, model_id from runs where config_fingerprint = ?",
                           [c.config_fingerprint]).to_pylist()
        stored = reader.query("select classifier_id, len(weights) as dim from classifiers").to_pylist()
    assert counts == {"n": 160, "runs": 1, "task": "classify", "label": "Knocker", "model": c.model_id}
    assert effort == {"n": 160}
    assert run == [{"flow": "learn", "status": "completed", "model_id": c.model_id}]
    assert stored == [{"classifier_id": "Knocker@1", "dim": DIM}]
    # The detections view sees it like any model: the planted calls of the other recordings.
    found = _detections(root, c.config_fingerprint)
    others = {k for k in calls if k[0] != "rec0"}
    assert len(found & others) / len(others) >= 0.8
    assert len(found & calls) / len(found) >= 0.9

    # The same examples again: the same classifier, nothing new written.
    again = learn(str(root), "Knocker", examples=[str(table)], by="tester", weak_negatives=60)
    assert not again.new_version and again.classifier == c and again.applied.windows == 0
    # Other examples: version 2 under its own fingerprint; version 1's rows stay.
    fewer = raven_table(tmp_path / "ex2.txt", [(uri["rec0"], i * 3 + 1.0, i * 3 + 2.0, "Knocker")
                                                for i in (3, 10, 17)])
    v2 = learn(str(root), "Knocker", examples=[str(fewer)], by="tester", weak_negatives=60)
    assert v2.classifier.classifier_id == "Knocker@2"
    assert v2.classifier.config_fingerprint != c.config_fingerprint
    with CatalogReader(root) as reader:
        per_fp = {r["config_fingerprint"]: r["n"] for r in reader.query(
            "select config_fingerprint, count(*) as n from predictions group by all").to_pylist()}
    assert per_fp == {c.config_fingerprint: 160, v2.classifier.config_fingerprint: 160}


def test_learn_from_the_catalogs_verdicts(tmp_path):
    from datetime import datetime, timezone

    from connectors.tables import ReviewRow

    root = tmp_path / "res"
    recs, calls = planted_catalog(root, recordings=2)
    verdicts = [ReviewRow(review_id=f"r{i}", reviewed_at=datetime(2024, 7, 1, tzinfo=timezone.utc),
                          reviewer="ana", recording_id="rec0", config_fingerprint=FP, channel=0,
                          window_index=i, deployment_id="dep0", label="Knocker", score=0.5,
                          verdict="correct" if i % 7 == 3 else "wrong", corrected_label=None,
                          via="page")
                for i in range(0, 40, 2)]
    with Catalog(root) as catalog:
        catalog.add_reviews(verdicts)
    result = learn(str(root), "knocker", by="ana", weak_negatives=20, apply=False)
    c = result.classifier
    assert (c.n_positive, c.n_negative) == (sum(i % 7 == 3 for i in range(0, 40, 2)),
                                            sum(i % 7 != 3 for i in range(0, 40, 2)))
    assert result.applied is None
    with pytest.raises(ConfigError, match="no verdicts on 'frog'"):
        learn(str(root), "frog", by="ana")


def test_learn_needs_embeddings_and_a_mapped_positive(tmp_path):
    root = tmp_path / "res"
    planted_catalog(root, recordings=1)
    table = raven_table(tmp_path / "ex.txt", [("/nowhere/else.wav", 1.0, 2.0, "Knocker")])
    with pytest.raises(ConfigError, match="no example of 'Knocker' maps.*else.wav"):
        learn(str(root), "Knocker", examples=[str(table)], by="me")


def test_two_rounds_of_verdicts_on_a_classifiers_detections_improve_recall_on_a_harder_sound(tmp_path):
    """Active learning: judge the ten most uncertain and the ten top-scoring unjudged windows of
    the newest version (an always-right reviewer), learn again; twice."""
    from datetime import datetime, timezone

    from connectors.tables import ReviewRow

    root = tmp_path / "res"
    recs, calls = planted_catalog(root, recordings=6, noise=2.0, strength=1.5)
    table = raven_table(tmp_path / "ex.txt", [(recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, "Knocker")
                                               for i in (3, 10, 17)])
    others = {k for k in calls if k[0] != "rec0"}
    c = learn(str(root), "Knocker", examples=[str(table)], by="ana", weak_negatives=200).classifier
    recalls, versions = [], []
    for _ in range(3):
        with CatalogReader(root) as reader:
            rows = reader.query("select recording_id, window_index, score from predictions "
                                "where config_fingerprint = ?", [c.config_fingerprint]).to_pylist()
            judged = {(r["recording_id"], r["window_index"]) for r in reader.query(
                "select recording_id, window_index from reviews").to_pylist()}
        said = {(r["recording_id"], r["window_index"]) for r in rows if r["score"] >= 0.5}
        recalls.append(len(said & others) / len(others))
        versions.append((c.version, c.n_positive, c.n_negative))
        if len(recalls) == 3:
            break
        todo = sorted((r for r in rows if (r["recording_id"], r["window_index"]) not in judged),
                      key=lambda r: (r["recording_id"], r["window_index"]))
        uncertain = sorted(todo, key=lambda r: abs(r["score"] - 0.5))[:10]
        top = sorted((r for r in todo if r not in uncertain), key=lambda r: -r["score"])[:10]
        now = datetime.now(timezone.utc)
        with Catalog(root) as catalog:
            catalog.add_reviews([ReviewRow(
                review_id=f"{c.version}-{r['recording_id']}-{r['window_index']}", reviewed_at=now,
                reviewer="ana", recording_id=r["recording_id"], config_fingerprint=c.config_fingerprint,
                channel=0, window_index=r["window_index"],
                deployment_id=f"dep{int(r['recording_id'][3:]) % 2}", label="Knocker",
                score=r["score"], verdict="correct" if (r["recording_id"], r["window_index"]) in calls
                else "wrong", corrected_label=None, via="page") for r in uncertain + top])
        c = learn(str(root), "Knocker", examples=[str(table)], by="ana", weak_negatives=200).classifier
    assert recalls[0] < recalls[1] < recalls[2] and recalls[2] >= 0.95, recalls
    assert [v[0] for v in versions] == [1, 2, 3]
    assert versions[0][1] < versions[1][1] < versions[2][1]  # verdicts became examples


# ------------------------------------------------------------------------------- exactly once

KILLABLE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from connectors.catalog import Catalog
    from connectors.location import ResultsLocation
    import flows.outputs.learn as learn

    root, marker = sys.argv[1], Path(sys.argv[2])
    with Catalog(root) as catalog:
        classifier = catalog.classifiers()[0]
    done = []
    def progress(n):
        done.append(n)
        marker.write_text(str(len(done)))
        time.sleep(60)  # killed here, between two committed batches
    with Catalog(root) as catalog:
        learn.apply_classifier(catalog, classifier, "run-killed", batch_windows=50, progress=progress)
""")


def _classifier_rows(root: Path, fingerprint: str) -> list[tuple]:
    with CatalogReader(root) as reader:
        preds = reader.query(
            "select recording_id, channel, window_index, offset_s, start_utc, label, score, "
            "model_id, task from predictions where config_fingerprint = ? order by all",
            [fingerprint]).to_pylist()
        windows = reader.query(
            "select recording_id, channel, window_index, offset_s, duration_s, status "
            "from windows where config_fingerprint = ? order by all", [fingerprint]).to_pylist()
    return [tuple(p.values()) for p in preds] + [tuple(w.values()) for w in windows]


def trained_not_applied(tmp_path: Path, **planted) -> tuple[Path, Path, ClassifierRow]:
    """A planted catalog with a classifier trained (three table examples) but not applied, and a
    copy of that catalog to apply it to another way."""
    root = tmp_path / "res"
    recs, _ = planted_catalog(root, **planted)
    table = raven_table(tmp_path / "ex.txt", [(recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, "Knocker")
                                               for i in (3, 10, 17)])
    c = learn(str(root), "Knocker", examples=[str(table)], by="me", weak_negatives=40,
              apply=False).classifier
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    return root, copy, c


def test_a_sigkill_during_apply_then_a_rerun_gives_the_rows_of_an_uninterrupted_apply(tmp_path):
    root, copy, c = trained_not_applied(tmp_path, recordings=4)

    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(root), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the apply never committed a batch"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = _classifier_rows(root, c.config_fingerprint)
    assert len(partial) == 2 * 40  # one recording's windows and predictions in, not all

    with Catalog(root) as catalog:
        rest = apply_classifier(catalog, c, "run-again", batch_windows=50)
    with Catalog(copy) as catalog:
        whole = apply_classifier(catalog, c, "run-whole")
    assert rest.windows + len(partial) // 2 == whole.windows == 160
    assert _classifier_rows(root, c.config_fingerprint) == _classifier_rows(copy, c.config_fingerprint)


def test_apply_batches_by_partition_and_scores_every_window_once_undated_ones_too(tmp_path):
    """Batches of whole recordings in partition order (deployment, date) read only their
    partitions: one recording per batch gives the rows of one batch for all, and the windows of
    a recording without a start time (no date, no partition date) are scored as well."""
    root, copy, c = trained_not_applied(tmp_path, recordings=6, undated=1)
    with Catalog(root) as catalog:
        todo = catalog.classifier_todo(c.embedding_fingerprint, c.config_fingerprint)
        small = apply_classifier(catalog, c, "run-small", batch_windows=40)
    with Catalog(copy) as catalog:
        whole = apply_classifier(catalog, c, "run-whole")
    # partition order: deployment, then first date, the undated recording last in its deployment
    assert [(t.deployment_id, t.undated) for t in todo] == [
        ("dep0", False), ("dep0", False), ("dep0", False), ("dep1", False), ("dep1", False),
        ("dep1", True)]
    assert (small.batches, whole.batches) == (6, 1)
    assert small.windows == whole.windows == 6 * 40
    assert _classifier_rows(root, c.config_fingerprint) == _classifier_rows(copy, c.config_fingerprint)
    with CatalogReader(root) as reader:
        per_recording = reader.query(
            "select recording_id, count(*) as n, count(date) as dated from windows "
            "where config_fingerprint = ? group by all order by all", [c.config_fingerprint]).to_pylist()
    assert [(r["n"], r["dated"]) for r in per_recording] == [(40, 40)] * 5 + [(40, 0)]


# ------------------------------------------------------------------------------- team catalog


@pytest.mark.slow
def test_learn_and_density_on_every_catalog_kind(lake, tmp_path):
    """The same loop on the embedded default and on a Postgres catalog with its data on S3."""
    from flows.outputs.density import density

    location = lake("learn")
    recs, calls = planted_catalog(location, recordings=2)
    table = raven_table(tmp_path / "ex.txt", [
        (recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, "Knocker") for i in (3, 10, 17)])
    result = learn(location, "Knocker", examples=[str(table)], by="team", weak_negatives=30)
    assert result.applied.windows == 80
    with CatalogReader(location) as reader:
        n = reader.query("select count(*) as n from detections where config_fingerprint = ?",
                         [result.classifier.config_fingerprint]).to_pylist()[0]["n"]
    assert n >= 0.8 * len({k for k in calls if k[0] == "rec1"})
    estimate = density(location, "Knocker", per_bin=5)
    assert {r.group for r in estimate.rows} == {"all", "dep0", "dep1"}
    assert 0 < len(estimate.sample) <= 2 * 5 * (len(estimate.bounds) - 1)
    assert all(r.density is None for r in estimate.rows)  # no verdicts yet
