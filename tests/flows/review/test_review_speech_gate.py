"""The privacy gate on the review server (docs/privacy.md): a real uvicorn server refuses the
audio and the spectrogram of a window marked as human speech (and of its neighbour, whose second
of context overlaps it) with 451 and the reason; other windows play; the queue says which items
are withheld, so the page shows the reason instead of a player; turning the gate off serves them."""

from __future__ import annotations

import pytest

from flows.review.server import ReviewServer
from flows.review.service import Filters, ReviewService, ReviewSettings
from tests.flows.review.test_review_api import call, key
from tests.support.review_catalog import build, window_row
from tests.support.speech_marks import commit_marks

pytestmark = pytest.mark.e2e  # a real uvicorn server on 127.0.0.1

MARKED = 2  # rec-mono's window at 20-30 s


def gate(service: ReviewService, on: bool) -> None:
    """What a run with --speech-gate / --no-speech-gate records, through the server's own writer
    (a second writer on one SQLite catalog would wait on it)."""
    with service._write_lock:
        service.writer.change_settings({"speech_gate": "on" if on else "off"}, changed_by="test")


@pytest.fixture
def gated(tmp_path):
    built = build(tmp_path)
    commit_marks(built.results, [window_row(built.recordings["rec-mono"], MARKED, "fp1")])
    service = ReviewService(ReviewSettings(results=str(built.results), reviewer="ana"))
    with ReviewServer(service, port=0) as running:
        yield built, service, running
    service.close()


def test_a_marked_windows_audio_and_spectrogram_are_refused_with_the_reason(gated):
    built, service, server = gated
    for path in ("/api/audio.wav", "/api/spectrogram.png"):
        for index in (MARKED, MARKED + 1):  # the next window's second of context overlaps it
            reply = call(server, f"{path}?key={key('rec-mono', index)}")
            assert reply.status == 451, (path, index, reply.body)
            detail = reply.json()["detail"]
            assert "human speech" in detail and "--no-speech-gate" in detail
            assert "rec-mono, 20.0-30.0 s" in detail
        assert call(server, f"{path}?key={key('rec-mono', 5)}").status == 200
        assert call(server, f"{path}?key={key('rec-stereo', MARKED, channel=2)}").status == 200
    queue = {r["key"]: r["withheld"] for r in service.queue(Filters(label="wren"), limit=50)}
    assert queue[key("rec-mono", MARKED)].startswith("Audio withheld")
    assert queue[key("rec-mono", 5)] is None


def test_turning_the_gate_off_serves_the_marked_window(gated):
    built, service, server = gated
    gate(service, on=False)
    for path in ("/api/audio.wav", "/api/spectrogram.png"):
        assert call(server, f"{path}?key={key('rec-mono', MARKED)}").status == 200
    queue = {r["key"]: r["withheld"] for r in service.queue(Filters(label="wren"), limit=50)}
    assert queue[key("rec-mono", MARKED)] is None
    gate(service, on=True)
    assert call(server, f"/api/audio.wav?key={key('rec-mono', MARKED)}").status == 451
