"""The review page in a real browser (Debian's headless Chromium through selenium) on a catalog
made by a real run (Prefect server, local Ray, the placeholder backend): the page shows a
spectrogram image and an audio element whose source answers 200 with audio/wav; items are
marked with the buttons and with the keyboard; each verdict is a `reviews` row in the catalog."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timezone

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import console_errors
from flows.pipeline.prefect_flows import nightly
from flows.review.server import ReviewServer
from flows.review.service import ReviewService, ReviewSettings
from flows.pipeline.settings import RunSettings
from tests.support.review_catalog import reviews_rows
from tests.support.synth_audio import make_deployment, write_deployments_csv

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]

START = datetime(2024, 5, 31, 22, 0, 0, tzinfo=timezone.utc)
#: Three windows hold a tone (the placeholder names it, scoring ~1); the fourth is quiet noise.
TONES = [(2.0, 3.0, 2000.0), (13.0, 3.0, 3000.0), (24.0, 3.0, 1000.0)]
WAIT_S = 60


@pytest.fixture(scope="module")
def run_results(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    make_deployment(source, "dep-a", [START], 40.0, 16_000, events={0: TONES}, level_dbfs=-60)
    write_deployments_csv(source, [{"deployment_id": "dep-a", "site_id": "marsh-1",
                                    "latitude": 51.5, "longitude": -0.1,
                                    "timezone": "Europe/London"}])
    results = tmp_path_factory.mktemp("results")
    summary = nightly(RunSettings(source=str(source), results=str(results), model="placeholder",
                                  windows_per_unit=2, batch_size=4))
    assert summary["status"] == "completed"
    return results


@pytest.fixture
def page(run_results):
    service = ReviewService(ReviewSettings(results=str(run_results), reviewer="page-default"))
    with ReviewServer(service, port=0) as server:
        yield server
    service.close()


def current_key(browser) -> str | None:
    items = browser.find_elements(By.ID, "item")
    return items[0].get_attribute("data-key") if items else None


def wait_for_next(browser, old_key: str) -> None:
    """The verdict was saved and the page reloaded with another detection (or none left)."""
    WebDriverWait(browser, WAIT_S).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
        and current_key(b) != old_key)


def test_review_in_the_browser_with_buttons_and_keys(browser, page, run_results):
    browser.get(page.url)
    WebDriverWait(browser, WAIT_S).until(lambda b: current_key(b) is not None)
    # The spectrogram image loaded (the browser decoded a real PNG).
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(
        "const i = document.getElementById('spectrogram'); return i.complete && i.naturalWidth > 0;"))
    assert browser.execute_script("return document.getElementById('spectrogram').naturalWidth") == 900
    # The audio element's source answers 200 with audio/wav, and the browser decodes it: the
    # window (10 s) plus one second after it (the first window has nothing before it).
    src = browser.find_element(By.ID, "player").get_attribute("src")
    with urllib.request.urlopen(src, timeout=60) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/wav"
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(
        "return document.getElementById('player').readyState >= 1"))
    duration = browser.execute_script("return document.getElementById('player').duration")
    assert duration == pytest.approx(11.0, abs=0.01) or duration == pytest.approx(12.0, abs=0.01)
    label = browser.find_element(By.ID, "label").text
    assert label.startswith("tone ") and label.endswith(" Hz")
    assert browser.find_element(By.ID, "site").text.startswith("marsh-1")

    reviewer = browser.find_element(By.ID, "reviewer")
    reviewer.clear()
    reviewer.send_keys("tester", Keys.TAB)  # the change event keeps it for the next pages

    seen = []
    # 1: the Correct button.
    seen.append((current_key(browser), "correct"))
    browser.find_element(By.CSS_SELECTOR, "button[data-verdict='correct']").click()
    wait_for_next(browser, seen[-1][0])
    # 2: the W key.
    seen.append((current_key(browser), "wrong"))
    ActionChains(browser).send_keys("w").perform()
    wait_for_next(browser, seen[-1][0])
    # 3: O, then the species with completion from the label list, then Enter.
    seen.append((current_key(browser), "other"))
    ActionChains(browser).send_keys("o").perform()
    WebDriverWait(browser, WAIT_S).until(
        lambda b: b.switch_to.active_element.get_attribute("id") == "other-label")
    ActionChains(browser).send_keys("Eurasian Wren", Keys.ENTER).perform()
    wait_for_next(browser, seen[-1][0])
    # Three tones, three verdicts: nothing is left to review (the quiet window scores < 0.1).
    assert current_key(browser) is None
    assert browser.find_element(By.ID, "done").is_displayed()
    # "Other species" completes from the label list: the run's labels and corrected labels.
    completions = {o.get_attribute("value")
                   for o in browser.find_elements(By.CSS_SELECTOR, "#labels option")}
    assert {"tone 1000 Hz", "tone 2000 Hz", "tone 3000 Hz", "Eurasian Wren"} <= completions
    progress = browser.find_element(By.ID, "progress").text
    assert "tone 2000 Hz" in progress
    assert console_errors(browser) == []

    rows = reviews_rows(run_results)
    got = [(f"{r['recording_id']}.{r['config_fingerprint']}.{r['channel']}.{r['window_index']}",
            r["verdict"]) for r in rows]
    assert got == seen
    assert [r["reviewer"] for r in rows] == ["tester"] * 3
    assert [r["corrected_label"] for r in rows] == [None, None, "Eurasian Wren"]
    assert all(r["via"] == "page" and r["score"] > 0.9 for r in rows)
    # The window keys are the catalog's windows, and the labels the run's answers.
    assert {r["label"] for r in rows} == {"tone 1000 Hz", "tone 2000 Hz", "tone 3000 Hz"}
