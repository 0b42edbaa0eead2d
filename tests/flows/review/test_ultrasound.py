"""Bat windows on the review page, without a server: which windows play time-expanded, what the
slowed WAV holds, and the spectrogram's frequency axis at the window's band."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from connectors.clips import Span, wav_bytes
from flows.review.spectrogram import spectrogram_figure, stft_db
from flows.review.ultrasound import TIME_EXPANSION, listening
from tests.support.synth_audio import noise, place, tone

BAT_RATE_HZ = 384_000


@pytest.mark.parametrize("band, rate, slower, shown", [
    ((10_000.0, 120_000.0), 384_000, 10, (10_000.0, 120_000.0)),  # a bat model's band
    ((0.0, 15_000.0), 384_000, 1, (0.0, 15_000.0)),  # a bird model over ultrasonic audio
    ((0.0, 24_000.0), 48_000, 1, (0.0, 24_000.0)),  # a bird model at 48 kHz
    ((None, None), 384_000, 10, None),  # band not recorded (older catalogs): the recording's
    ((None, None), 48_000, 1, None),
])
def test_a_window_plays_slowed_only_when_its_band_is_ultrasonic(band, rate, slower, shown):
    got = listening(band[0], band[1], rate)
    assert got.slower == slower
    assert got.band_hz == shown


def test_the_slowed_wav_is_the_same_samples_ten_times_longer():
    samples = noise(0.5, BAT_RATE_HZ, level_dbfs=-20, seed=1)
    span = Span(samples=samples, sample_rate_hz=BAT_RATE_HZ, start_s=2.0, channel=0)
    as_recorded, rate = sf.read(io.BytesIO(wav_bytes(span)), dtype="float64")
    slowed, slow_rate = sf.read(io.BytesIO(wav_bytes(span, TIME_EXPANSION)), dtype="float64")
    assert rate == BAT_RATE_HZ and slow_rate == BAT_RATE_HZ // 10
    np.testing.assert_array_equal(slowed, as_recorded)
    assert len(slowed) / slow_rate == pytest.approx(10 * len(as_recorded) / rate)
    with pytest.raises(ValueError, match="slower"):
        wav_bytes(span, 0)


def test_the_spectrogram_spans_the_band_and_shows_a_short_call_where_it_is():
    # A 5 ms call at 45 kHz in 1 s of quiet noise.
    audio = place(noise(1.0, BAT_RATE_HZ, level_dbfs=-70, seed=2), tone(45_000, 0.005, BAT_RATE_HZ),
                  0.4, BAT_RATE_HZ)
    span = Span(samples=audio, sample_rate_hz=BAT_RATE_HZ, start_s=10.0, channel=0)
    figure = spectrogram_figure(span, 10.2, 10.7, listen=listening(10_000, 120_000, BAT_RATE_HZ))
    axes = figure.axes[0]
    low, high = axes.get_ylim()
    assert low == pytest.approx(10.0, abs=0.8) and high == pytest.approx(120.0, abs=0.8)  # kHz
    image = axes.images[0].get_array()
    row, column = np.unravel_index(np.argmax(image), image.shape)
    kHz = low + (row + 0.5) * (high - low) / image.shape[0]
    seconds = 10.0 + (column + 0.5) / image.shape[1]
    assert kHz == pytest.approx(45.0, abs=1.0)
    assert seconds == pytest.approx(10.4025, abs=0.003)  # within a frame of the call's middle
    # The page's 20 ms frames for birds would smear the call over 8 ms either side; bat frames
    # are about 1 ms, so the call shows in a handful of columns.
    _, times_s, _ = stft_db(audio, BAT_RATE_HZ, 0.001)
    assert times_s[1] - times_s[0] <= 0.0004


def test_a_bird_window_keeps_the_page_as_it_was():
    audio = place(noise(2.0, 48_000, level_dbfs=-60), tone(3000, 0.5, 48_000), 0.5, 48_000)
    span = Span(samples=audio, sample_rate_hz=48_000, start_s=0.0, channel=0)
    figure = spectrogram_figure(span, 0.0, 2.0, listen=listening(None, None, 48_000))
    low, high = figure.axes[0].get_ylim()
    assert low == pytest.approx(0.0) and high == pytest.approx(24.0, abs=0.1)
