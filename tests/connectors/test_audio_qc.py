"""Quality per window: silent, clipped, dropout and normal recordings (written here) get the right
verdicts through the real decode path, measured on the native samples before resampling."""

from __future__ import annotations

import time
from pathlib import Path

import fsspec
import numpy as np
import pytest

from connectors.audio import iter_windows, plan_windows, read_header
from connectors.audio_qc import (
    CLIPPED_MIN_FRACTION,
    DROPOUT_MIN_S,
    SILENT_BELOW_DBFS,
    full_scale,
    measure,
    quality_columns,
    quality_fields,
)
from tests.support.synth_audio import noise, place, tone, write_wav

LOCAL = fsspec.filesystem("file")
RATE_HZ = 48000
WINDOW_S = 3.0


def decode(path: Path, target_rate_hz: int = RATE_HZ, channel_policy: str = "mean"):
    header = read_header(LOCAL, str(path))
    return list(iter_windows(LOCAL, str(path), header, plan_windows(header.duration_s, WINDOW_S),
                             WINDOW_S, target_rate_hz, channel_policy))


def field(duration_s: float = 9.0, level_dbfs: float = -50.0, seed: int = 0) -> np.ndarray:
    """Field noise with a song in it: what a working recorder hears."""
    x = noise(duration_s, RATE_HZ, level_dbfs=level_dbfs, seed=seed)
    return place(x, tone(3000, 0.5, RATE_HZ, amplitude=0.2), 1.0, RATE_HZ)


def verdicts(path: Path, **kw) -> list[str | None]:
    return [w.quality.qc if w.quality else None for w in decode(path, **kw)]


def test_a_working_recorder_is_ok(tmp_path):
    path = write_wav(tmp_path / "ok.wav", field(), RATE_HZ)
    windows = decode(path)
    assert [w.quality.qc for w in windows] == ["ok", "ok", "ok"]
    q = windows[1].quality
    assert q.rms_dbfs == pytest.approx(-50.0, abs=0.5)  # the noise alone (the song is in window 0)
    assert q.clipped_fraction == 0.0 and q.zero_run_s < 0.001
    assert windows[0].quality.peak_dbfs == pytest.approx(20 * np.log10(0.2), abs=0.5)


def test_a_dead_microphone_is_silent(tmp_path):
    # An unplugged input: only the converter's own noise, far below any field noise floor.
    path = write_wav(tmp_path / "dead.wav", noise(9.0, RATE_HZ, level_dbfs=-95.0), RATE_HZ,
                     subtype="PCM_24")
    windows = decode(path)
    assert [w.status for w in windows] == ["ok"] * 3  # audio was there: analysed, but
    assert [w.quality.qc for w in windows] == ["silent"] * 3
    assert all(w.quality.rms_dbfs < SILENT_BELOW_DBFS for w in windows)


def test_wind_on_the_microphone_is_clipped(tmp_path):
    gusts = np.clip(field() + tone(80, 9.0, RATE_HZ, amplitude=3.0), -1.0, 1.0)
    path = write_wav(tmp_path / "wind.wav", gusts, RATE_HZ)
    windows = decode(path)
    assert [w.quality.qc for w in windows] == ["clipped"] * 3
    assert windows[1].quality.clipped_fraction > 0.5
    assert windows[1].quality.peak_dbfs == pytest.approx(0.0, abs=0.01)


def test_a_loud_call_clipping_a_few_peaks_is_ok(tmp_path):
    x = field()
    x[RATE_HZ * 4 : RATE_HZ * 4 + 100] = 1.0  # 100 frames at the rail: 0.07 % of a window
    path = write_wav(tmp_path / "loud.wav", x, RATE_HZ)
    windows = decode(path)
    assert windows[1].quality.qc == "ok"
    assert 0 < windows[1].quality.clipped_fraction < CLIPPED_MIN_FRACTION


def test_a_card_error_is_a_dropout(tmp_path):
    x = field()
    x[round(RATE_HZ * 4.0) : round(RATE_HZ * 4.2)] = 0.0  # 200 ms the card never wrote
    path = write_wav(tmp_path / "drop.wav", x, RATE_HZ)
    windows = decode(path)
    assert [w.quality.qc for w in windows] == ["ok", "dropout", "ok"]
    assert windows[1].quality.zero_run_s == pytest.approx(0.2)


def test_a_gap_shorter_than_the_minimum_is_ok(tmp_path):
    x = field()
    gap = round(RATE_HZ * DROPOUT_MIN_S) - 1
    x[RATE_HZ * 4 : RATE_HZ * 4 + gap] = 0.0
    windows = decode(write_wav(tmp_path / "short.wav", x, RATE_HZ))
    assert windows[1].quality.qc == "ok"
    assert windows[1].quality.zero_run_s == pytest.approx(gap / RATE_HZ)


def test_zeros_that_start_or_end_the_recording_are_not_a_dropout(tmp_path):
    # MP3 priming and padding: the shared clips' MP3s start with up to 52 ms of exact zeros.
    x = field()
    x[: round(RATE_HZ * 0.1)] = 0.0
    x[-round(RATE_HZ * 0.1) :] = 0.0
    windows = decode(write_wav(tmp_path / "edges.wav", x, RATE_HZ))
    assert [w.quality.qc for w in windows] == ["ok", "ok", "ok"]
    assert windows[0].quality.zero_run_s < 0.001


def test_measured_at_the_native_rate_whatever_the_model_rate(tmp_path):
    x = field()
    x[round(RATE_HZ * 4.0) : round(RATE_HZ * 4.2)] = 0.0
    path = write_wav(tmp_path / "drop.wav", x, RATE_HZ)
    native = [w.quality for w in decode(path)]
    assert [w.quality for w in decode(path, target_rate_hz=16000)] == native


def test_clipping_is_relative_to_the_format(tmp_path):
    # 8-bit PCM's positive rail is 127/128: 0.999 of 1.0 is never reached there.
    assert full_scale("PCM_U8") == pytest.approx(127 / 128)
    assert full_scale("PCM_16") == pytest.approx(1 - 2**-15)
    assert full_scale("FLOAT") == full_scale("MPEG_LAYER_III") == 1.0
    gusts = np.clip(field() + tone(80, 9.0, RATE_HZ, amplitude=3.0), -1.0, 1.0)
    path = write_wav(tmp_path / "u8.wav", gusts, RATE_HZ, subtype="PCM_U8")
    assert verdicts(path) == ["clipped"] * 3


def test_channels_mixed_or_apart(tmp_path):
    left = np.clip(field() + tone(80, 9.0, RATE_HZ, amplitude=3.0), -1.0, 1.0)  # wind on one side
    right = field(seed=1)
    right[round(RATE_HZ * 4.0) : round(RATE_HZ * 4.2)] = 0.0  # a gap in one channel only
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), RATE_HZ)
    # The mix: a frame is clipped if any channel is; zero only if every channel is.
    assert verdicts(path) == ["clipped"] * 3
    each = decode(path, channel_policy="each")
    assert [(w.channel, w.quality.qc) for w in each if w.index == 1] == [
        (1, "clipped"), (2, "dropout")]


def test_windows_without_audio_are_not_measured(tmp_path):
    x = field()
    x[RATE_HZ * 3 : RATE_HZ * 6] = 0.0  # a whole window of digital silence: status empty
    windows = decode(write_wav(tmp_path / "zeros.wav", x, RATE_HZ))
    assert [w.status for w in windows] == ["ok", "empty", "ok"]
    assert windows[1].quality is None


def test_it_is_cheap():
    """Measured per audio hour on one core: a small fraction of decoding (printed for the docs)."""
    frames = (noise(WINDOW_S, RATE_HZ, level_dbfs=-40.0)[:, None]).astype(np.float32)  # (F, 1)
    n = 200
    started = time.perf_counter()
    for _ in range(n):
        measure(frames, frames, RATE_HZ, 1.0, at_start=False, at_end=False)
    per_hour_s = (time.perf_counter() - started) / n * (3600 / WINDOW_S)
    print(f"quality measures: {per_hour_s:.2f} s per audio hour at {RATE_HZ} Hz mono")
    assert per_hour_s < 5.0


def test_a_gap_across_a_window_edge_counts_inside_the_recording():
    frames = noise(WINDOW_S, RATE_HZ, level_dbfs=-40.0)[:, None].copy()  # (F, 1)
    frames[: RATE_HZ // 10] = 0.0  # the window opens inside a gap the window before also holds
    frames[-RATE_HZ // 20 :] = 0.0
    (inside,) = measure(frames, frames, RATE_HZ, 1.0, at_start=False, at_end=False)
    assert (inside.qc, inside.zero_run_s) == ("dropout", pytest.approx(0.1))
    (edges,) = measure(frames, frames, RATE_HZ, 1.0, at_start=True, at_end=True)
    assert edges.qc == "ok"


def test_a_row_through_the_engine_keeps_its_measures_and_drops_what_is_not_one():
    measured = measure(field()[:, None], field()[:, None], RATE_HZ, 1.0, True, True)[0]
    assert quality_fields(quality_columns(measured)) == quality_columns(measured)
    # Ray turns an all-None column into NaN; a row from before has none of the columns.
    nan = dict.fromkeys(("rms_dbfs", "peak_dbfs", "clipped_fraction", "zero_run_s"), float("nan"))
    assert quality_fields({**nan, "qc": float("nan")}) == quality_columns(None)
    assert quality_fields({}) == quality_columns(None)
