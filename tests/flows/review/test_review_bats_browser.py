"""A bat call on the review page in a real browser (headless Chromium) and over HTTP (a real
uvicorn server): a window analysed at an ultrasonic band plays ten times slower, and the browser
decodes and plays that audio; its spectrogram spans the band; a bird window of the same catalog
plays as recorded."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
import soundfile as sf
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from connectors.catalog import Catalog
from connectors.tables import DeploymentRow, replace
from flows.review.server import ReviewServer
from flows.review.service import ReviewService, ReviewSettings
from tests.flows.review.test_review_api import call
from tests.support.browser import console_errors
from tests.support.review_catalog import local_recording_row, prediction_row, window_row
from tests.support.synth_audio import chirp, fade, noise, place, write_wav

BAT_RATE_HZ = 384_000
DURATION_S = 3.0
WINDOW_S = 1.0
CALLS_S = (1.30, 1.45)  # two 5 ms sweeps, 50 -> 40 kHz, in window 1
WAIT_S = 60


@pytest.fixture(scope="module")
def bats(tmp_path_factory):
    """One 384 kHz recording, three 1-s windows a bat model analysed at 10-120 kHz, the calls'
    window answered with their boxes."""
    tmp = tmp_path_factory.mktemp("bats")
    audio = noise(DURATION_S, BAT_RATE_HZ, level_dbfs=-60, seed=4)
    for t_s in CALLS_S:
        audio = place(audio, fade(chirp(50_000, 40_000, 0.005, BAT_RATE_HZ), 0.0005, BAT_RATE_HZ),
                      t_s, BAT_RATE_HZ)
    path = tmp / "source" / "cave" / "20240601_220000.WAV"
    path.parent.mkdir(parents=True)
    write_wav(path, audio, BAT_RATE_HZ)
    recording = replace(local_recording_row("rec-bat", path, DURATION_S, deployment_id="cave"),
                        sample_rate_hz=BAT_RATE_HZ, frames=round(DURATION_S * BAT_RATE_HZ))
    windows = []
    for i in range(3):
        w = window_row(recording, i, "fp-bat")
        windows.append(replace(w, offset_s=i * WINDOW_S, window_s=WINDOW_S, duration_s=WINDOW_S,
                               start_utc=recording.start_utc + timedelta(seconds=i * WINDOW_S),
                               band_low_hz=10_000.0, band_high_hz=120_000.0))
    calls = [replace(prediction_row(windows[1], "Common Pipistrelle", 0.9 - 0.1 * n, rank=n + 1,
                                    scientific_name="Pipistrellus pipistrellus"),
                     call_start_s=t_s, call_end_s=t_s + 0.005, low_freq_hz=40_000.0,
                     high_freq_hz=50_000.0, detection_score=0.95)
             for n, t_s in enumerate(CALLS_S)]
    results = tmp / "results"
    with Catalog(results) as catalog:
        catalog.upsert_deployments([DeploymentRow(
            deployment_id="cave", site_id="cave-1", latitude=51.5, longitude=-0.1,
            recorder="AudioMoth 1.2", timezone="Europe/London", start_utc=None, end_utc=None,
            extra=None, updated_run_id="run-1", clock_timezone=None)])
        catalog.register_recordings([recording], [])
        catalog.commit_unit(windows, calls)
    service = ReviewService(ReviewSettings(results=str(results), reviewer="ana"))
    with ReviewServer(service, port=0) as server:
        yield server, audio
    service.close()


KEY = "rec-bat.fp-bat.0.1"


def test_the_audio_of_a_bat_window_comes_ten_times_slower_on_request(bats):
    server, audio = bats
    as_recorded = call(server, f"/api/audio.wav?key={KEY}")
    slowed = call(server, f"/api/audio.wav?key={KEY}&slower=10")
    assert as_recorded.status == slowed.status == 200
    samples, rate = sf.read(io.BytesIO(as_recorded.body), dtype="float64")
    slow_samples, slow_rate = sf.read(io.BytesIO(slowed.body), dtype="float64")
    assert (rate, slow_rate) == (BAT_RATE_HZ, BAT_RATE_HZ // 10)
    # The window (1-2 s) and a second each side, cut at the file's ends: 0-3 s.
    np.testing.assert_allclose(samples, audio[:round(DURATION_S * BAT_RATE_HZ)], atol=1.5 / 32768)
    np.testing.assert_array_equal(slow_samples, samples)
    assert call(server, f"/api/audio.wav?key={KEY}&slower=0").status == 400
    assert call(server, f"/api/audio.wav?key={KEY}&slower=100").status == 400


def test_the_page_plays_a_bat_call_slowed_in_a_real_browser(bats, browser):
    server, _ = bats
    browser.get(server.url)
    WebDriverWait(browser, WAIT_S).until(
        lambda b: b.find_elements(By.ID, "item") and b.find_element(By.ID, "item")
        .get_attribute("data-key") == KEY)
    player = browser.find_element(By.ID, "player")
    assert player.get_attribute("src").endswith("slower=10")
    assert "10 times slower" in browser.find_element(By.ID, "time-expansion").text
    # The browser decodes the time-expanded WAV: 3 s of audio lasts 30 s.
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(
        "return document.getElementById('player').readyState >= 1"))
    duration = browser.execute_script("return document.getElementById('player').duration")
    assert duration == pytest.approx(10 * DURATION_S, abs=0.01)
    # ... and plays it: the playhead moves.
    browser.execute_script("document.getElementById('player').play();")
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(
        "return document.getElementById('player').currentTime") > 0.2)
    browser.execute_script("document.getElementById('player').pause();")
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(
        "const i = document.getElementById('spectrogram'); return i.complete && i.naturalWidth > 0;"))
    assert console_errors(browser) == []
