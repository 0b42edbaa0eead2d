"""Active learning in the review page, over HTTP against a real uvicorn server and a real DuckLake
catalog with planted embeddings (no run, no Ray, no audio: `tests/support/learn_catalog.py`).

The queue per classifier holds the windows its newest version scored that nobody has judged, the
most uncertain and the top-scoring in turn; each verdict leaves it and counts as an example; the
retrain action trains and applies a new version as `dawnchorus learn` does (keeping the Raven
table's examples) and is refused with the holder's name while a run holds the catalog; the page
shows the classifier's cross-validated metrics and example counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.catalog import Catalog, CatalogReader
from flows.outputs.learn import learn
from flows.review.server import ReviewServer
from flows.review.service import ReviewService, ReviewSettings
from tests.support.learn_catalog import planted_catalog, raven_table

pytestmark = pytest.mark.e2e  # a real uvicorn server on 127.0.0.1

LABEL = "Knocker"


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(server: ReviewServer, path: str, *, body: dict | None = None,
         token: str | None = None) -> Reply:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path.lstrip("/"), data=data,
                                     method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("X-Review-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read())


def _learned(root: Path, tmp: Path, *, windows: tuple[int, ...] = (3, 10, 17), weak: int = 60,
             **planted):
    recs, calls = planted_catalog(root, **planted)
    table = raven_table(tmp / "ex.txt", [(recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, LABEL)
                                         for i in windows])
    result = learn(str(root), LABEL, examples=[str(table)], by="ana", weak_negatives=weak)
    return recs, calls, result.classifier


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "res"
    recs, calls, classifier = _learned(root, tmp_path)
    service = ReviewService(ReviewSettings(results=str(root), reviewer="ana"))
    with ReviewServer(service, port=0) as server:
        yield root, calls, classifier, server
    service.close()


def _scores(root: Path, fingerprint: str) -> dict[tuple[str, int], float]:
    with CatalogReader(root) as reader:
        rows = reader.query("select recording_id, window_index, score from predictions "
                            "where config_fingerprint = ?", [fingerprint]).to_pylist()
    return {(r["recording_id"], r["window_index"]): r["score"] for r in rows}


def _judge(server: ReviewServer, item: dict, calls: set) -> None:
    truth = "correct" if (item["recording_id"], item["window_index"]) in calls else "wrong"
    reply = call(server, "/api/verdicts", token=server.token, body={
        "key": item["key"], "label": item["label"], "verdict": truth, "reviewer": "ana"})
    assert reply.status == 201, reply.body


def test_the_queue_is_the_unjudged_windows_most_uncertain_and_top_scoring_in_turn(served):
    root, calls, c, server = served
    reply = call(server, f"/api/learn/queue?classifier={LABEL}&limit=1000")
    assert reply.status == 200
    queue = reply.json()
    scores = _scores(root, c.config_fingerprint)
    examples = {("rec0", i) for i in (3, 10, 17)}
    got = [(q["recording_id"], q["window_index"]) for q in queue]
    # Every window the newest version scored, once, except the table's examples.
    assert len(got) == len(set(got)) and set(got) == set(scores) - examples
    assert {q["config_fingerprint"] for q in queue} == {c.config_fingerprint}
    # First the most uncertain window, then the top-scoring one; each kind in its own order.
    first, second = queue[0], queue[1]
    assert abs(first["score"] - 0.5) == min(abs(s - 0.5) for k, s in scores.items() if k not in examples)
    assert second["score"] == max(s for k, s in scores.items() if k not in examples)
    uncertain = [abs(q["score"] - 0.5) for q in queue if q["pick"] == "uncertain"]
    top = [q["score"] for q in queue if q["pick"] == "top"]
    assert uncertain == sorted(uncertain) and top == sorted(top, reverse=True)
    assert [q["pick"] for q in queue[:6]] == ["uncertain", "top"] * 3
    assert [q["turn"] for q in queue] == sorted(q["turn"] for q in queue)

    # A verdict takes the window out of the queue and is counted as new since this version.
    _judge(server, first, calls)
    after = call(server, f"/api/learn/queue?classifier={LABEL}&limit=1000").json()
    assert sorted(q["key"] for q in after) == sorted(q["key"] for q in queue[1:])
    # The ranks are over the windows still unjudged: the next most uncertain leads again.
    assert [q["key"] for q in after[:2]] == [queue[2]["key"], queue[1]["key"]]
    status = call(server, "/api/learn/classifiers").json()
    assert [(s["name"], s["version"], s["new_verdicts"]) for s in status] == [(LABEL, 1, 1)]


def test_the_page_shows_the_classifiers_metrics_examples_and_first_window(served):
    root, calls, c, server = served
    status = call(server, "/api/learn/classifiers").json()[0]
    assert (status["n_positive"], status["n_negative"], status["n_weak_negative"]) == (3, 0, 60)
    assert (status["cv_precision"], status["cv_recall"], status["cv_roc_auc"]) == (
        c.cv_precision, c.cv_recall, c.cv_roc_auc)
    page = call(server, f"/?classifier={LABEL}")
    assert page.status == 200
    html = page.body.decode()
    first = call(server, f"/api/learn/queue?classifier={LABEL}&limit=1").json()[0]
    assert f'data-key="{first["key"]}"' in html
    assert '<span id="n-positive">3</span>' in html and '<span id="n-negative">0</span>' in html
    for field, value in (("precision", c.cv_precision), ("recall", c.cv_recall),
                         ("roc-auc", c.cv_roc_auc)):
        assert f'<span id="cv-{field}">{value:.3f}</span>' in html
    assert '<span id="pick">uncertain</span>' in html
    # Without ?classifier the page is the stratified queue, offering the classifier to pick.
    assert 'id="learning"' not in call(server, "/").body.decode()
    assert f'<option value="{LABEL}">' in call(server, "/").body.decode()
    # Unknown classifiers and retrains without the page's token are refused with a reason.
    missing = call(server, "/api/learn/queue?classifier=frog")
    assert missing.status == 404 and "no classifier named 'frog'" in missing.json()["detail"]
    assert call(server, "/?classifier=frog").status == 404
    refused = call(server, "/api/learn/retrain", body={"classifier": LABEL, "reviewer": "ana"})
    assert refused.status == 403 and "X-Review-Token" in refused.json()["detail"]


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from connectors.catalog.locks import run_lock
    from connectors.location import ResultsLocation

    with run_lock(ResultsLocation.resolve(sys.argv[1]), "run-nightly"):
        Path(sys.argv[2]).write_text("held")
        time.sleep(120)
""")


def test_retrain_is_refused_while_a_run_holds_the_catalog(served, tmp_path):
    root, calls, c, server = served
    first = call(server, f"/api/learn/queue?classifier={LABEL}&limit=1").json()[0]
    _judge(server, first, calls)
    marker = tmp_path / "held"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and holder.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the lock holder never took the lock"
        reply = call(server, "/api/learn/retrain", token=server.token,
                     body={"classifier": LABEL, "reviewer": "ana"})
    finally:
        holder.kill()
        holder.wait()
    assert reply.status == 409
    assert reply.json()["detail"].startswith("retrain refused: ")
    assert "in use by run run-nightly" in reply.json()["detail"]
    with Catalog(root) as catalog:
        assert [v.classifier_id for v in catalog.classifiers()] == [f"{LABEL}@1"]
    # Once the run is gone, the same request trains and applies version 2.
    done = call(server, "/api/learn/retrain", token=server.token,
                body={"classifier": LABEL, "reviewer": "ana"})
    assert done.status == 200, done.body
    assert (done.json()["classifier_id"], done.json()["new_version"]) == (f"{LABEL}@2", True)
    assert done.json()["applied_windows"] == 4 * 40


def test_two_rounds_of_queue_verdicts_improve_recall_on_a_harder_planted_sound(tmp_path):
    """The loop as a reviewer drives it through the page's API: judge the first 20 windows of the
    queue (an always-right reviewer), press retrain; twice. Recall at 0.5 on the calls outside the
    Raven table's recording rises each round, and the table's examples are kept."""
    root = tmp_path / "res"
    recs, calls, c = _learned(root, tmp_path, weak=200, recordings=6, noise=2.0, strength=1.5)
    others = {k for k in calls if k[0] != "rec0"}
    service = ReviewService(ReviewSettings(results=str(root), reviewer="ana"))
    recalls, versions = [], []
    try:
        with ReviewServer(service, port=0) as server:
            for round_ in range(3):
                status = call(server, "/api/learn/classifiers").json()[0]
                said = {k for k, s in _scores(root, status["config_fingerprint"]).items() if s >= 0.5}
                recalls.append(len(said & others) / len(others))
                versions.append((status["version"], status["n_positive"], status["n_negative"]))
                if round_ == 2:
                    break
                queue = call(server, f"/api/learn/queue?classifier={LABEL}&limit=20").json()
                assert len(queue) == 20
                for item in queue:
                    _judge(server, item, calls)
                reply = call(server, "/api/learn/retrain", token=server.token,
                             body={"classifier": LABEL, "reviewer": "ana"})
                assert reply.status == 200, reply.body
                assert reply.json()["not_used"] == []
    finally:
        service.close()
    assert recalls[0] < recalls[1] < recalls[2] and recalls[2] >= 0.9, recalls
    assert [v[0] for v in versions] == [1, 2, 3]
    assert versions[0][1] < versions[1][1] < versions[2][1]  # verdicts became examples
    assert sum(versions[2][1:]) == 3 + 2 * 20  # the table's 3 windows kept, 40 verdicts added
    with Catalog(root) as catalog:
        newest = max(catalog.classifiers(), key=lambda v: v.version)
    assert sum("ex.txt: selection" in e for e in newest.examples.split('"source": ')) == 3


def test_a_classifier_from_a_raven_table_equals_one_from_the_same_examples_marked_in_the_page(tmp_path):
    """Round trip: the same windows as table selections (Knocker = positive, wind = negative) or as
    verdicts posted through the page (correct, wrong on a seed classifier's detections) give the
    same weights, so the same digest and model id."""
    positives, negatives = (3, 10, 17, 24), (5, 12)
    table_root, page_root = tmp_path / "table", tmp_path / "page"
    recs, _ = planted_catalog(table_root, recordings=2)
    planted_catalog(page_root, recordings=2)
    rows = ([(recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, LABEL) for i in positives]
            + [(recs[0].uri, i * 3 + 0.5, i * 3 + 2.5, "wind") for i in negatives])
    from_table = learn(str(table_root), LABEL, examples=[str(raven_table(tmp_path / "t.txt", rows))],
                       by="ana", weak_negatives=30, apply=False).classifier
    # A seed classifier from other windows gives every window a detection of the label to judge.
    seed = raven_table(tmp_path / "seed.txt", [(recs[1].uri, i * 3 + 1.0, i * 3 + 2.0, LABEL)
                                               for i in (3, 10)])
    c = learn(str(page_root), LABEL, name="seed", examples=[str(seed)], by="ana",
              weak_negatives=30).classifier
    service = ReviewService(ReviewSettings(results=str(page_root), reviewer="ana"))
    try:
        with ReviewServer(service, port=0) as server:
            for verdict, windows in (("correct", positives), ("wrong", negatives)):
                for i in windows:
                    reply = call(server, "/api/verdicts", token=server.token, body={
                        "key": f"rec0.{c.config_fingerprint}.0.{i}", "label": LABEL,
                        "verdict": verdict, "reviewer": "ana"})
                    assert reply.status == 201, reply.body
    finally:
        service.close()
    from_page = learn(str(page_root), LABEL, name="page", by="ana", weak_negatives=30,
                      apply=False).classifier
    assert (from_page.n_positive, from_page.n_negative) == (from_table.n_positive, from_table.n_negative) == (4, 2)
    assert from_page.digest == from_table.digest
    assert from_page.weights == from_table.weights and from_page.bias == from_table.bias


def test_a_window_marked_in_a_marking_list_leaves_the_classifiers_queue(served):
    """A mark is written under the embedding fingerprint's window, not the classifier's: the
    queue counts it as judged all the same, and the page counts it as a new verdict."""
    root, calls, classifier, server = served
    first = call(server, f"/api/learn/queue?classifier={LABEL}&limit=1").json()[0]
    key = f"{first['recording_id']}.{classifier.embedding_fingerprint}.{first['channel']}.{first['window_index']}"
    reply = call(server, "/api/examples", token=server.token, body={
        "key": key, "label": LABEL.lower(), "mark": "negative", "reviewer": "ana"})
    assert reply.status == 201, reply.body
    assert reply.json()["verdict"] == "wrong" and reply.json()["score"] == 0.0
    queue = call(server, f"/api/learn/queue?classifier={LABEL}&limit=1000").json()
    assert first["key"] not in {q["key"] for q in queue}
    assert call(server, "/api/learn/classifiers").json()[0]["new_verdicts"] == 1
    bad = call(server, "/api/examples", token=server.token, body={
        "key": key, "label": LABEL, "mark": "maybe", "reviewer": "ana"})
    assert bad.status == 400 and "expected one of positive, negative, unsure" in bad.json()["detail"]
