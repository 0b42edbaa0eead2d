"""Marking any window as an example in a real browser (Debian's headless Chromium through selenium):

- `dawnchorus similar --review LABEL` (the real command, in its own process) serves the page on
  its hits; each hit is marked yes or no by clicking, and `learn` learns from the marks;
- the round trip: a classifier trained from a Raven table equals one trained from the same
  windows marked by clicking in the page (same weights, bias and digest);
- `review --retrain-every N`: the Nth verdict retrains without a click and the page says so.

The catalog has planted embeddings and no audio (`tests/support/learn_catalog.py`), so the
spectrogram and playback requests fail (404) and only those console errors are allowed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from connectors.catalog import Catalog, CatalogReader
from flows.outputs.learn import learn
from flows.review.server import ReviewServer
from flows.review.service import ReviewService, ReviewSettings
from tests.support.browser import console_errors
from tests.support.learn_catalog import FP, planted_catalog, raven_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a browser and a real server

WAIT_S = 120
LABEL = "Knocker"
REPO = Path(__file__).resolve().parents[3]


def current_key(browser) -> str | None:
    """The key of the window on the page; None while the page reloads (or when none is left)."""
    try:
        items = browser.find_elements(By.ID, "item")
        return items[0].get_attribute("data-key") if items else None
    except StaleElementReferenceException:  # the page reloaded between the two calls
        return None


def set_reviewer(browser, name: str) -> None:
    reviewer = browser.find_element(By.ID, "reviewer")
    reviewer.clear()
    reviewer.send_keys(name, Keys.TAB)  # the change event keeps the name
    browser.execute_script("document.activeElement.blur()")  # keys go to the page


def click_mark(browser, mark: str) -> str:
    """Click the item's yes / no / unsure button and wait for the next window (or the end)."""
    key = current_key(browser)
    browser.find_element(By.CSS_SELECTOR, f'#item button[data-mark="{mark}"]').click()
    WebDriverWait(browser, WAIT_S).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
        and (current_key(b) not in (None, key) or bool(b.find_elements(By.ID, "done"))),
        message="the page did not move on")
    return key


def page_errors(browser) -> list[str]:
    return [e for e in console_errors(browser)
            if "/api/spectrogram.png" not in e and "/api/audio.wav" not in e]


def marks_in_catalog(root: Path) -> list[dict]:
    with CatalogReader(root) as reader:
        return reader.query("select recording_id, config_fingerprint, window_index, label, "
                            "verdict, score, reviewer, via from reviews order by window_index"
                            ).to_pylist()


def test_similar_review_serves_its_hits_to_mark_and_learn_learns_from_the_marks(browser, tmp_path):
    root = tmp_path / "res"
    _, calls = planted_catalog(root, recordings=2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "flows.cli", "similar", "--results", str(root),
               "--window", "rec0:3", "--top", "14", "--review", LABEL, "--port", "0",
               "--reviewer", "cli-default"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        printed, url = [], None
        deadline = time.monotonic() + WAIT_S
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line)
            found = re.search(r"Reviewing .* at (http://\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(printed)
        assert "?mark=Knocker&windows=" in url
        hits = url.split("windows=", 1)[1].split(",")
        assert len(hits) == 14 and f"rec0.{FP}.0.3" not in hits  # the query window is left out

        browser.get(url)
        WebDriverWait(browser, WAIT_S).until(lambda b: current_key(b) is not None)
        assert "Marking windows as examples of Knocker" in browser.find_element(
            By.CSS_SELECTOR, "#marking h2").text
        rows = browser.find_elements(By.CSS_SELECTOR, "#marks tbody tr")
        assert [r.get_attribute("data-key") for r in rows] == hits  # the hits, best first
        set_reviewer(browser, "tester")
        truth = {}
        for _ in hits:
            key = current_key(browser)
            recording_id, _, _, window = key.split(".")
            truth[key] = (recording_id, int(window)) in calls
            assert click_mark(browser, "positive" if truth[key] else "negative") == key
        assert browser.find_elements(By.ID, "done")  # every hit is marked
        assert browser.find_element(By.ID, "n-marked-positive").text == str(sum(truth.values()))
        assert [r.get_attribute("data-mark") for r in browser.find_elements(
            By.CSS_SELECTOR, "#marks tbody tr")] == [
            "positive" if truth[k] else "negative" for k in hits]
        assert page_errors(browser) == []
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert 0 < sum(truth.values()) < len(hits)  # the hits hold calls and other windows
    marks = marks_in_catalog(root)
    assert {(m["recording_id"], m["window_index"]) for m in marks} == {
        (k.split(".")[0], int(k.split(".")[3])) for k in hits}
    assert {(m["config_fingerprint"], m["label"], m["reviewer"], m["via"]) for m in marks} == {
        (FP, LABEL, "tester", "page")}
    assert all(m["score"] == 0.0 for m in marks)  # no model scored Knocker in these windows

    result = learn(str(root), LABEL, by="ana", weak_negatives=30)  # from the marks alone
    c = result.classifier
    assert (c.n_positive, c.n_negative) == (sum(truth.values()), len(hits) - sum(truth.values()))
    assert result.mapped.problems == [] and result.applied.windows == 80


def test_a_classifier_from_a_raven_table_equals_one_from_the_same_windows_marked_in_the_browser(
        browser, tmp_path):
    """Round trip: the same windows as table selections (Knocker = positive, wind = negative) or
    marked yes / no by clicking in the page give the same weights, so the same digest."""
    positives, negatives = (3, 10, 17, 24), (5, 12)
    root = tmp_path / "res"
    recs, _ = planted_catalog(root, recordings=2)
    rows = ([(recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, LABEL) for i in positives]
            + [(recs[0].uri, i * 3 + 0.5, i * 3 + 2.5, "wind") for i in negatives])
    from_table = learn(str(root), LABEL, name="table", by="ana", weak_negatives=30, apply=False,
                       examples=[str(raven_table(tmp_path / "t.txt", rows))]).classifier
    windows = [f"rec0.{FP}.0.{i}" for i in positives + negatives]
    service = ReviewService(ReviewSettings(results=str(root), reviewer="page-default"))
    try:
        with ReviewServer(service, port=0) as server:
            browser.get(server.url + f"?mark={LABEL}&windows={quote(','.join(windows), safe=',')}")
            WebDriverWait(browser, WAIT_S).until(lambda b: current_key(b) is not None)
            set_reviewer(browser, "tester")
            for key in windows:
                assert current_key(browser) == key  # the list's order
                positive = int(key.split(".")[3]) in positives
                if positive:  # by click and by keyboard alike
                    click_mark(browser, "positive")
                else:
                    ActionChains(browser).send_keys("n").perform()
                    WebDriverWait(browser, WAIT_S).until(
                        lambda b: current_key(b) not in (None, key) or bool(b.find_elements(By.ID, "done")))
            assert browser.find_elements(By.ID, "done")
            assert page_errors(browser) == []
    finally:
        service.close()
    from_page = learn(str(root), LABEL, name="page", by="ana", weak_negatives=30,
                      apply=False).classifier
    assert (from_page.n_positive, from_page.n_negative) == (from_table.n_positive,
                                                            from_table.n_negative) == (4, 2)
    assert from_page.weights == from_table.weights and from_page.bias == from_table.bias
    assert from_page.digest == from_table.digest
    assert from_page.model_id.split("@sha256:")[1] == from_table.model_id.split("@sha256:")[1]


def test_retrain_every_n_verdicts_retrains_without_a_click_and_the_page_says_so(browser, tmp_path):
    root = tmp_path / "res"
    recs, calls = planted_catalog(root, recordings=2)
    table = raven_table(tmp_path / "ex.txt", [(recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, LABEL)
                                               for i in (3, 10, 17)])
    learn(str(root), LABEL, examples=[str(table)], by="ana", weak_negatives=30)
    service = ReviewService(ReviewSettings(results=str(root), reviewer="page-default",
                                           retrain_every=3))
    try:
        with ReviewServer(service, port=0) as server:
            browser.get(server.url + f"?classifier={LABEL}")
            WebDriverWait(browser, WAIT_S).until(lambda b: current_key(b) is not None)
            assert "when the verdicts since this version reach 3" in browser.find_element(
                By.ID, "auto-retrain").text
            set_reviewer(browser, "tester")
            for n in range(1, 4):
                key = current_key(browser)
                recording_id, _, _, window = key.split(".")
                ActionChains(browser).send_keys(
                    "c" if (recording_id, int(window)) in calls else "w").perform()
                WebDriverWait(browser, WAIT_S).until(
                    lambda b: b.execute_script("return document.readyState") == "complete"
                    and current_key(b) not in (None, key),
                    message="the page did not move on")
                if n < 3:  # not yet: the page counts, nothing is retrained
                    assert browser.find_element(By.ID, "new-verdicts").text == str(n)
                    assert f"{LABEL}@1" in browser.find_element(By.CSS_SELECTOR, "#learning h2").text
            # the third verdict retrained: the page is on version 2 and says it was automatic
            assert f"{LABEL}@2" in browser.find_element(By.CSS_SELECTOR, "#learning h2").text
            assert browser.find_element(By.ID, "new-verdicts").text == "0"
            said = browser.find_element(By.ID, "auto-retrain").text
            assert "the last automatic retrain, after 3 verdicts on Knocker@1: stored" in said, said
            assert browser.find_element(By.ID, "auto-retrained").text == f"{LABEL}@2"
            assert page_errors(browser) == []
    finally:
        service.close()
    with Catalog(root) as catalog:
        versions = {c.version: c for c in catalog.classifiers()}
    assert sorted(versions) == [1, 2] and versions[2].created_by == "tester"
    assert versions[2].n_positive + versions[2].n_negative == 3 + 3
