"""Active learning in a real browser (Debian's headless Chromium through selenium): the page opened
on a classifier's queue, windows marked with the keyboard, the Retrain button pressed; the page
comes back on the new version with the verdicts counted as its examples. The catalog has planted
embeddings and no audio (`tests/support/learn_catalog.py`), so the spectrogram and playback
requests fail (404) and only those console errors are allowed."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from connectors.catalog import Catalog
from flows.outputs.learn import learn
from flows.review.server import ReviewServer
from flows.review.service import ReviewService, ReviewSettings
from tests.support.browser import console_errors
from tests.support.learn_catalog import planted_catalog, raven_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a browser and a real server

WAIT_S = 120
LABEL = "Knocker"


def current_key(browser) -> str | None:
    items = browser.find_elements(By.ID, "item")
    return items[0].get_attribute("data-key") if items else None


def test_mark_windows_of_a_classifiers_queue_and_retrain_in_the_browser(browser, tmp_path):
    root = tmp_path / "res"
    recs, calls = planted_catalog(root, recordings=2)
    table = raven_table(tmp_path / "ex.txt", [(recs[0].uri, i * 3 + 1.0, i * 3 + 2.0, LABEL)
                                               for i in (3, 10, 17)])
    learn(str(root), LABEL, examples=[str(table)], by="ana", weak_negatives=30)
    service = ReviewService(ReviewSettings(results=str(root), reviewer="page-default"))
    try:
        with ReviewServer(service, port=0) as server:
            browser.get(server.url + f"?classifier={LABEL}")
            WebDriverWait(browser, WAIT_S).until(lambda b: current_key(b) is not None)
            learning = browser.find_element(By.ID, "learning")
            assert f"{LABEL}@1" in learning.find_element(By.TAG_NAME, "h2").text
            assert browser.find_element(By.ID, "n-positive").text == "3"
            assert browser.find_element(By.ID, "cv-roc-auc").text  # the metrics are shown
            reviewer = browser.find_element(By.ID, "reviewer")
            reviewer.clear()
            reviewer.send_keys("tester", Keys.TAB)  # the change event keeps the name
            browser.execute_script("document.activeElement.blur()")  # keys go to the page

            marked = []
            for _ in range(4):
                key = current_key(browser)
                recording_id, _, _, window = key.split(".")
                right = (recording_id, int(window)) in calls
                marked.append(right)
                ActionChains(browser).send_keys("c" if right else "w").perform()
                WebDriverWait(browser, WAIT_S).until(
                    lambda b: b.execute_script("return document.readyState") == "complete"
                    and current_key(b) not in (None, key),
                    message=browser.find_element(By.ID, "status").text)
            assert browser.find_element(By.ID, "new-verdicts").text == "4"

            browser.find_element(By.ID, "retrain").click()
            WebDriverWait(browser, WAIT_S).until(
                lambda b: f"{LABEL}@2" in b.find_element(By.CSS_SELECTOR, "#learning h2").text)
            assert browser.find_element(By.ID, "n-positive").text == str(3 + sum(marked))
            assert browser.find_element(By.ID, "n-negative").text == str(4 - sum(marked))
            assert browser.find_element(By.ID, "new-verdicts").text == "0"
            errors = [e for e in console_errors(browser)
                      if "/api/spectrogram.png" not in e and "/api/audio.wav" not in e]
            assert errors == []
    finally:
        service.close()
    with Catalog(root) as catalog:
        versions = {c.version: c for c in catalog.classifiers()}
    assert sorted(versions) == [1, 2] and versions[2].created_by == "tester"
