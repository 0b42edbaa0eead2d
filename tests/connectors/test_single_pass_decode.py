"""Single-pass decode: a unit's windows read in one forward pass hand the model exactly the samples
that one seek + read per window gives, and fetch about the audio's bytes from S3, once."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pytest
import soundfile as sf

from connectors.audio import WindowSpec, iter_windows, plan_windows, read_header
from tests.support.synth_audio import noise, place, tone

LOCAL = fsspec.filesystem("file")


def write(path: Path, rate_hz: int, channels: int, duration_s: float, fmt: str) -> Path:
    """Noise (which compresses like field audio: barely) with a tone every few seconds."""
    columns = []
    for c in range(channels):
        x = noise(duration_s, rate_hz, level_dbfs=-30, seed=c)
        for k, at_s in enumerate(np.arange(0.5 + c, duration_s - 1, 4.0)):
            x = place(x, tone(1000.0 + 300 * (k % 20), 0.4, rate_hz, amplitude=0.3), float(at_s), rate_hz)
        columns.append(x)
    sf.write(path, np.stack(columns, axis=1), rate_hz, format=fmt, subtype="PCM_16")
    return path


def decode(fs, path: str, windows, window_s: float, target_hz: int, policy: str, mode: str):
    header = read_header(fs, path)
    return list(iter_windows(fs, path, header, windows, window_s, target_hz, policy, read_mode=mode))


def assert_same(sequential, seek):
    assert len(sequential) == len(seek) > 0
    for a, b in zip(sequential, seek):
        assert (a.index, a.channel, a.status, a.valid_samples, a.padded) == \
               (b.index, b.channel, b.status, b.valid_samples, b.padded)
        assert a.duration_s == b.duration_s
        np.testing.assert_array_equal(a.samples, b.samples)


def gappy(windows: list[WindowSpec]) -> list[WindowSpec]:
    """What a resumed unit asks for: some windows already committed, one gap longer than 10 s."""
    keep = set(range(len(windows))) - {1, 2, 5, 6, 7, 8, 9, 10}
    return [w for w in windows if w.index in keep]


@pytest.mark.parametrize("fmt, suffix, rate_hz, channels, target_hz, policy", [
    ("WAV", "wav", 48_000, 1, 48_000, "mean"),     # AudioMoth at BirdNET's rate: no resampling
    ("WAV", "wav", 44_100, 2, 16_000, "mean"),     # mixed and resampled
    ("FLAC", "flac", 44_100, 2, 48_000, "each"),   # compressed, per channel, resampled
    ("FLAC", "flac", 48_000, 1, 16_000, "mean"),
    ("OGG", "ogg", 48_000, 1, 48_000, "mean"),
])
@pytest.mark.parametrize("window_s, hop_s, pick", [
    (3.0, None, "all"), (10.0, 4.0, "all"), (3.0, None, "gappy"),
])
def test_one_pass_gives_the_samples_of_one_seek_per_window(tmp_path, fmt, suffix, rate_hz, channels,
                                                          target_hz, policy, window_s, hop_s, pick):
    if fmt == "OGG":
        path = tmp_path / f"a.{suffix}"
        x = noise(41.3, rate_hz, level_dbfs=-30)[:, None]
        sf.write(path, x, rate_hz, format="OGG", subtype="VORBIS")
    else:
        path = write(tmp_path / f"a.{suffix}", rate_hz, channels, 41.3, fmt)  # a padded tail
    header = read_header(LOCAL, str(path))
    windows = plan_windows(header.duration_s, window_s, hop_s, tail="pad")
    if pick == "gappy":
        windows = gappy(windows)
    args = (LOCAL, str(path), windows, window_s, target_hz, policy)
    assert_same(decode(*args, mode="sequential"), decode(*args, mode="seek"))


def test_one_pass_over_a_truncated_file_matches_seeking(tmp_path):
    from tests.support.synth_audio import truncate_wav

    path = write(tmp_path / "t.wav", 16_000, 1, 30.0, "WAV")
    truncate_wav(path, 0.5)  # the header still declares 30 s
    header = read_header(LOCAL, str(path))
    assert header.truncated
    windows = plan_windows(header.duration_s, 3.0, tail="pad")
    args = (LOCAL, str(path), windows, 3.0, 48_000, "mean")
    sequential = decode(*args, mode="sequential")
    assert_same(sequential, decode(*args, mode="seek"))
    assert {w.status for w in sequential[6:]} == {"empty"}  # past the real end


def test_unknown_read_mode_is_refused(tmp_path):
    path = write(tmp_path / "a.wav", 16_000, 1, 2.0, "WAV")
    with pytest.raises(ValueError, match="read_mode"):
        decode(LOCAL, str(path), plan_windows(2.0, 1.0), 1.0, 16_000, "mean", "jump")


# ------------------------------------------------------------------ bytes fetched from S3


class FetchCounter:
    def __init__(self):
        self.bytes = 0


@pytest.fixture
def counted_s3(s3_server, monkeypatch):
    """An s3fs filesystem on the moto server; every ranged GET's bytes are counted."""
    import s3fs.core

    counter = FetchCounter()
    real = s3fs.core.S3File._fetch_range

    def counting(self, start, end):
        data = real(self, start, end)
        counter.bytes += len(data)
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    return s3_server.filesystem(), counter


@pytest.mark.slow
@pytest.mark.parametrize("fmt, suffix, rate_hz, channels, duration_s", [
    ("FLAC", "flac", 48_000, 1, 600.0),   # AudioMoth-like
    ("FLAC", "flac", 44_100, 2, 360.0),
    ("WAV", "wav", 48_000, 1, 600.0),
])
def test_a_recording_is_fetched_from_s3_about_once(tmp_path, counted_s3, s3_server, fmt, suffix,
                                                   rate_hz, channels, duration_s):
    fs, counter = counted_s3
    path = write(tmp_path / f"r.{suffix}", rate_hz, channels, duration_s, fmt)
    bucket = s3_server.make_bucket(f"audio-{suffix}-{rate_hz}")
    key = f"{bucket[5:]}/r.{suffix}"
    fs.put_file(str(path), key)
    size = path.stat().st_size
    header = read_header(fs, key)
    windows = plan_windows(header.duration_s, 3.0, tail="pad")
    fetched = {}
    for mode in ("sequential", "seek"):
        counter.bytes = 0
        # As the pipeline decodes it by default: units of 5 minutes (100 BirdNET windows), each
        # its own task opening the file and seeking to its first window.
        for first in range(0, len(windows), 100):
            for _ in iter_windows(fs, key, header, windows[first : first + 100], 3.0, rate_hz,
                                  read_mode=mode):
                pass
        fetched[mode] = counter.bytes / size
    assert fetched["sequential"] <= 1.05, fetched
    assert fetched["sequential"] <= fetched["seek"], fetched
