"""The report people open: a run's folder holds everything its page needs (no network), and the
page leads with a card per species, each best detection with a spectrogram thumbnail and a
playable audio element of the window; counters are tables, never a dict's text; empty states say
why. Opened in a real browser (Debian's chromium); a screenshot is kept as a test artifact."""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import soundfile as sf

from tests.support.browser import console_errors
from flows.cli.main import main
from flows.outputs.report_cards import BEST_PER_SPECIES, CLIP_RATE_HZ, THUMB_PX
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

START = datetime(2024, 5, 15, 9, 30, tzinfo=timezone.utc)  # 05:30 in New York
#: Where screenshots go (CI keeps the folder as an artifact); default: the test's tmp folder.
ARTIFACTS = os.environ.get("DAWNCHORUS_TEST_ARTIFACTS")


def _run(tmp_path: Path, events: dict) -> Path:
    source, results = tmp_path / "source", tmp_path / "results"
    # placeholder model: a tone of f Hz is the species "tone f Hz" at a score near 1
    make_deployment(source, "dep-a", [START, START.replace(day=16)], 60.0, 16_000, events=events)
    (source / "deployments.csv").write_text(
        "deployment_id,site_id,timezone\ndep-a,marsh,America/New_York\n", encoding="utf-8")
    code = main(["run", "--source", str(source), "--results", str(results), "--model",
                 "placeholder"])
    assert code == 0
    reports = list((results / "reports").iterdir())
    assert len(reports) == 1
    return reports[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cards")
    # Four windows with a 2000 Hz tone, one with 3000 Hz; two mornings.
    events = {0: [(1.0, 4.0, 2000.0), (21.0, 4.0, 2000.0), (41.0, 4.0, 3000.0)],
              1: [(11.0, 4.0, 2000.0), (31.0, 4.0, 2000.0)]}
    return _run(tmp, events)


def test_the_folder_is_self_contained(report):
    page = (report / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "a URL outside the folder"
    assert "http://" not in page and "https://" not in page
    for ref in re.findall(r"""(?:src|href)="([^"]+)\"""", page):
        assert (report / ref).is_file(), f"the page refers to {ref}, which is not in the folder"


def test_species_cards_with_thumbnails_and_playable_audio(report, browser, tmp_path):
    # The folder works anywhere and offline: open a copy, with the network off.
    copy = tmp_path / "copied-report"
    shutil.copytree(report, copy)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    try:
        browser.get((copy / "index.html").as_uri())
        cards = browser.find_elements("css selector", "article.card")
        assert [c.find_element("tag name", "h3").text for c in cards] == ["tone 2000 Hz",
                                                                         "tone 3000 Hz"]
        first = cards[0]
        assert "4 detections" in first.text and "first 2024-05-15 05:30" in first.text, first.text
        clips = first.find_elements("css selector", "figure.clip")
        assert len(clips) == BEST_PER_SPECIES
        for clip in clips:
            image = clip.find_element("tag name", "img")
            loaded = browser.execute_script(
                "return [arguments[0].complete, arguments[0].naturalWidth, arguments[0].naturalHeight]",
                image)
            assert loaded == [True, *THUMB_PX], loaded
            audio = clip.find_element("tag name", "audio")
            state = browser.execute_async_script(
                """const [audio, done] = arguments;
                   const report = () => done([audio.readyState, audio.duration, audio.error && audio.error.code]);
                   if (audio.readyState >= 1) { report(); return; }
                   audio.addEventListener('loadedmetadata', report);
                   audio.addEventListener('error', report);
                   audio.load();""", audio)
            assert state[0] >= 1 and state[2] is None, state
            assert 9.0 < state[1] <= 10.01, state  # the placeholder's 10-s window
        text = browser.find_element("tag name", "body").text
        assert "{'" not in text and '{"' not in text, "raw dict text on the page"
        assert "Catalog maintenance" in text and "before" in text  # a table, not a dict
        assert console_errors(browser) == []
        shot = Path(ARTIFACTS) if ARTIFACTS else tmp_path
        shot.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(shot / "report-species-cards.png"))
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    clip_files = sorted((report / "clips").glob("*.wav"))
    assert len(clip_files) == 4  # 3 best of the 2000 Hz tone, 1 of the 3000 Hz tone
    info = sf.info(clip_files[0])
    assert (info.samplerate, info.channels, info.subtype) == (min(16_000, CLIP_RATE_HZ), 1, "PCM_16")


def test_an_empty_state_says_why(tmp_path, browser):
    report = _run(tmp_path, events={})  # noise only: every answer below the threshold
    browser.get((report / "index.html").as_uri())
    heard = browser.find_element("id", "heard").text
    match = re.search(r"no detections above the threshold of 0\.5; (\d+) below it", heard)
    assert match and int(match.group(1)) > 0, heard
    assert browser.find_elements("css selector", "article.card") == []
