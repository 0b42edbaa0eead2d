"""Audio headers, window planning and streaming window decode, on synthetic audio."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import fsspec
import numpy as np
import pytest
import soundfile as sf
import soxr
from scipy.signal import resample_poly

from connectors import audio
from connectors.audio import WindowSpec, iter_windows, plan_windows, plan_windows_frames, read_header
from connectors.errors import InputError
from tests.support.synth_audio import fade, hostile_wav, noise, place, tone, truncate_wav, write_wav, zero_byte_file

LOCAL = fsspec.filesystem("file")


def _peak_freq_hz(x: np.ndarray, sample_rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sample_rate_hz)[np.argmax(spectrum)])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _decode(path: Path, windows, window_s: float, target_rate_hz: int, channel_policy: str = "mean"):
    header = read_header(LOCAL, str(path))
    return list(iter_windows(LOCAL, str(path), header, windows, window_s, target_rate_hz, channel_policy))


class _CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes handed out, for proving what a reader touches."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer)
        self.bytes_read += count
        return count

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


class _CountingFS:
    """Just enough of an fsspec filesystem (``open``) to count what the readers read."""

    def __init__(self) -> None:
        self.opened: list[_CountingFile] = []

    def open(self, path: str, mode: str = "rb", **kwargs) -> _CountingFile:
        assert mode == "rb"
        handle = _CountingFile(path)
        self.opened.append(handle)
        return handle

    @property
    def bytes_read(self) -> int:
        return sum(handle.bytes_read for handle in self.opened)


# --- headers --------------------------------------------------------------------------------------


AUDIOMOTH_COMMENT = (
    "Recorded at 21:00:00 19/11/2023 (UTC+10:30) by AudioMoth 24E1440360379295 at medium gain "
    "while battery was 4.2V and temperature was 18.5C."
)


def test_header_of_audiomoth_wav_with_comment(tmp_path: Path) -> None:
    path = write_wav(
        tmp_path / "20231119_210000.WAV",
        noise(1.5, 48000, seed=1),
        48000,
        comment=AUDIOMOTH_COMMENT,
        artist="AudioMoth 24E1440360379295",
    )
    header = read_header(LOCAL, str(path))
    assert header.comment == AUDIOMOTH_COMMENT
    assert (header.frames, header.sample_rate_hz, header.channels) == (72000, 48000, 1)
    assert header.duration_s == pytest.approx(1.5)
    assert (header.format, header.subtype) == ("WAV", "PCM_16")
    assert header.guano is None
    assert header.truncated is False


def test_header_reads_metadata_after_data_without_reading_samples(tmp_path: Path) -> None:
    # GUANO usually sits after the data chunk; reaching it must seek over ~5.8 MB of samples.
    path = write_wav(
        tmp_path / "long.wav",
        noise(60.0, 48000, seed=2),
        48000,
        guano={"Make": "Wildlife Acoustics", "Timestamp": "2019-05-22T06:00:00"},
    )
    fs = _CountingFS()
    header = read_header(fs, str(path))
    assert header.guano is not None and header.guano["Make"] == "Wildlife Acoustics"
    assert header.frames == 60 * 48000
    assert fs.bytes_read < 64 * 1024
    assert path.stat().st_size > 5_000_000


def test_header_zero_byte_file(tmp_path: Path) -> None:
    path = zero_byte_file(tmp_path / "20240101_000000.WAV")
    with pytest.raises(InputError) as excinfo:
        read_header(LOCAL, str(path), uri="s3://bucket/dep1/20240101_000000.WAV")
    assert excinfo.value.uri == "s3://bucket/dep1/20240101_000000.WAV"
    assert "20240101_000000.WAV" in str(excinfo.value)
    assert "empty file (0 bytes)" in str(excinfo.value)


def test_header_random_bytes_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"JUNK" + np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError) as excinfo:
        read_header(LOCAL, str(path))
    assert "garbage.wav" in str(excinfo.value)
    assert "not a recognised audio format" in excinfo.value.reason


def test_header_cut_inside_the_header(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "short.wav", noise(1.0, 16000), 16000)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(InputError, match="short.wav"):
        read_header(LOCAL, str(path))


@pytest.mark.parametrize(
    ("fmt", "subtype", "ext"),
    [("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")],
)
def test_header_compressed_formats(tmp_path: Path, fmt: str, subtype: str, ext: str) -> None:
    path = tmp_path / f"clip.{ext.upper()}"
    stereo = np.stack([tone(440, 3.0, 44100), tone(880, 3.0, 44100)], axis=1)  # (S, 2)
    sf.write(path, stereo, 44100, format=fmt, subtype=subtype)
    header = read_header(LOCAL, str(path))
    assert (header.format, header.subtype) == (fmt, subtype)
    assert (header.sample_rate_hz, header.channels) == (44100, 2)
    # MP3 frame counts are estimates from the encoder's padding; allow a few codec frames.
    assert header.duration_s == pytest.approx(3.0, abs=0.1 if fmt == "MP3" else 1e-6)


def test_header_works_on_a_non_local_filesystem(tmp_path: Path) -> None:
    memory = fsspec.filesystem("memory")
    source = write_wav(tmp_path / "a.wav", tone(1000, 2.0, 16000), 16000, comment=AUDIOMOTH_COMMENT)
    memory.pipe("/bucket/dep/a.wav", source.read_bytes())
    header = read_header(memory, "/bucket/dep/a.wav")
    assert (header.frames, header.comment) == (32000, AUDIOMOTH_COMMENT)
    windows = list(iter_windows(memory, "/bucket/dep/a.wav", header, plan_windows(2.0, 1.0), 1.0, 16000))
    assert [w.status for w in windows] == ["ok", "ok"]
    memory.rm("/bucket", recursive=True)


# --- window planning ------------------------------------------------------------------------------


def _starts(windows: list[WindowSpec]) -> list[float]:
    return [w.offset_s for w in windows]


def test_plan_pad() -> None:
    assert _starts(plan_windows(30.0, 10.0)) == [0.0, 10.0, 20.0]
    assert not any(w.padded for w in plan_windows(30.0, 10.0))
    tail = plan_windows(25.0, 10.0)
    assert _starts(tail) == [0.0, 10.0, 20.0]
    assert (tail[-1].padded, tail[-1].duration_s) == (True, 5.0)
    short = plan_windows(4.0, 10.0)
    assert [(w.offset_s, w.duration_s, w.padded) for w in short] == [(0.0, 4.0, True)]
    assert plan_windows(0.0, 10.0) == []


def test_plan_pad_with_overlap() -> None:
    # 25 s, 10 s windows every 5 s: the window at 15 s ends exactly at 25 s, nothing to pad.
    exact = plan_windows(25.0, 10.0, hop_s=5.0)
    assert _starts(exact) == [0.0, 5.0, 10.0, 15.0]
    assert not any(w.padded for w in exact)
    over = plan_windows(27.0, 10.0, hop_s=5.0)
    assert _starts(over) == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert [w.padded for w in over] == [False, False, False, False, True]
    assert over[-1].duration_s == pytest.approx(7.0)
    assert [w.index for w in over] == [0, 1, 2, 3, 4]


def test_plan_drop() -> None:
    assert _starts(plan_windows(25.0, 10.0, tail="drop")) == [0.0, 10.0]
    assert _starts(plan_windows(27.0, 10.0, hop_s=5.0, tail="drop")) == [0.0, 5.0, 10.0, 15.0]
    assert plan_windows(9.9, 10.0, tail="drop") == []
    assert all(not w.padded and w.duration_s == 10.0 for w in plan_windows(95.0, 10.0, tail="drop"))


def test_plan_shift() -> None:
    shifted = plan_windows(25.0, 10.0, tail="shift")
    assert _starts(shifted) == [0.0, 10.0, 15.0]
    assert [(w.duration_s, w.padded) for w in shifted] == [(10.0, False)] * 3
    assert _starts(plan_windows(30.0, 10.0, tail="shift")) == [0.0, 10.0, 20.0]
    assert _starts(plan_windows(27.0, 10.0, hop_s=5.0, tail="shift")) == [0.0, 5.0, 10.0, 15.0, 17.0]
    assert plan_windows(5.0, 10.0, tail="shift") == []


def test_plan_has_no_float_drift() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in floating point; the plan must still see 3 windows.
    assert len(plan_windows(0.3, 0.1, tail="pad")) == 3
    assert len(plan_windows(0.3, 0.1, tail="drop")) == 3
    in_frames = plan_windows_frames(3 * 44100, 44100, window_s=1.0, hop_s=0.1, tail="drop")
    assert len(in_frames) == 21
    assert all(round(w.offset_s * 44100) == w.index * 4410 for w in in_frames)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"window_s": 0.0}, "window_s"),
        ({"window_s": float("nan")}, "window_s"),
        ({"hop_s": 0.0}, "hop_s"),
        ({"hop_s": -1.0}, "hop_s"),
        ({"tail": "wrap"}, "tail"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        plan_windows(30.0, **kwargs)


# --- decoding -------------------------------------------------------------------------------------


def test_tone_burst_lands_in_the_right_window(tmp_path: Path) -> None:
    rate_hz = 48000
    burst = fade(tone(2000, 1.0, rate_hz), 0.01, rate_hz)
    signal = place(noise(30.0, rate_hz, level_dbfs=-60), burst, offset_s=12.0, sample_rate_hz=rate_hz)
    path = write_wav(tmp_path / "burst.wav", signal, rate_hz)
    decoded = _decode(path, plan_windows(30.0, 10.0), 10.0, 16000)
    assert [w.index for w in decoded] == [0, 1, 2]
    energy = [_rms(w.samples) for w in decoded]
    assert energy[1] > 30 * max(energy[0], energy[2])
    # Within window 1 the burst starts 2.0 s in: locate its onset in 10 ms frames at 16 kHz.
    frames = decoded[1].samples.reshape(-1, 160)  # (1000, 160): 10 ms frames
    loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > 0.1)
    assert loud[0] == pytest.approx(200, abs=2)
    assert loud[-1] == pytest.approx(299, abs=2)


@pytest.mark.parametrize("target_rate_hz", [48000, 16000])
def test_resampling_keeps_the_tone_frequency(tmp_path: Path, target_rate_hz: int) -> None:
    path = write_wav(tmp_path / "tone.wav", tone(3000, 4.0, 44100), 44100)
    (window,) = _decode(path, plan_windows(4.0, 4.0), 4.0, target_rate_hz)
    assert window.samples.dtype == np.float32
    assert len(window.samples) == 4 * target_rate_hz
    assert window.valid_samples == 4 * target_rate_hz
    assert _peak_freq_hz(window.samples, target_rate_hz) == pytest.approx(3000, abs=1)
    # Amplitude survives resampling (0.5 peak => RMS 0.354), away from the file edges.
    middle = window.samples[target_rate_hz : 3 * target_rate_hz]
    assert _rms(middle) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_stereo_mean_and_each_channel(tmp_path: Path) -> None:
    rate_hz = 16000
    left, right = tone(1000, 3.0, rate_hz, amplitude=0.6), tone(2500, 3.0, rate_hz, amplitude=0.2)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), rate_hz, subtype="PCM_24")
    stored, _ = sf.read(path, dtype="float32")  # (S, 2) as quantised on disk
    windows = plan_windows(3.0, 1.0)

    mean = _decode(path, windows, 1.0, rate_hz, "mean")
    assert [(w.index, w.channel) for w in mean] == [(0, 0), (1, 0), (2, 0)]
    np.testing.assert_allclose(mean[1].samples, stored[16000:32000].mean(axis=1), atol=1e-6)

    each = _decode(path, windows, 1.0, rate_hz, "each")
    assert [(w.index, w.channel) for w in each] == [(i, c) for i in range(3) for c in (1, 2)]
    by_key = {(w.index, w.channel): w.samples for w in each}
    np.testing.assert_allclose(by_key[(1, 1)], stored[16000:32000, 0], atol=1e-6)
    np.testing.assert_allclose(by_key[(1, 2)], stored[16000:32000, 1], atol=1e-6)

    resampled = _decode(path, windows, 1.0, 48000, "each")
    assert _peak_freq_hz(resampled[2].samples, 48000) == pytest.approx(1000, abs=2)
    assert _peak_freq_hz(resampled[3].samples, 48000) == pytest.approx(2500, abs=2)


def test_window_is_the_same_whichever_request_it_is_in(tmp_path: Path) -> None:
    rate_hz = 44100
    signal = noise(40.0, rate_hz, level_dbfs=-20, seed=5) + tone(1234, 40.0, rate_hz, amplitude=0.1)
    path = write_wav(tmp_path / "mix.wav", signal, rate_hz)
    plan = plan_windows(40.0, 10.0, hop_s=5.0)
    alone = _decode(path, [plan[3]], 10.0, 16000)
    together = {w.index: w for w in _decode(path, plan, 10.0, 16000)}
    assert len(together) == len(plan)
    np.testing.assert_allclose(alone[0].samples, together[3].samples, rtol=0, atol=1e-7)
    # And it is the whole file resampled at once, cut at the window (up to filter edge effects).
    stored, _ = sf.read(path, dtype="float32")
    whole = soxr.resample(stored, rate_hz, 16000)
    reference = whole[15 * 16000 : 25 * 16000]
    assert np.max(np.abs(alone[0].samples - reference)) < 1e-5 * np.max(np.abs(reference))


@pytest.mark.parametrize("native_hz", [384_000, 500_000, 312_500])
def test_polyphase_windows_are_the_whole_file_through_resample_poly(tmp_path: Path, native_hz: int) -> None:
    """BatDetect2's resampling (librosa "polyphase" = scipy's resample_poly over the whole file):
    a window decoded with resampler="polyphase" is that, cut at the window, and not soxr's."""
    signal = noise(3.0, native_hz, level_dbfs=-20, seed=6) + tone(45_000, 3.0, native_hz, amplitude=0.1)
    path = write_wav(tmp_path / "bat.wav", signal, native_hz)
    target = 256_000
    plan = plan_windows(3.0, 1.0)
    header = read_header(fsspec.filesystem("file"), str(path))
    (window,) = list(iter_windows(fsspec.filesystem("file"), str(path), header, [plan[1]], 1.0,
                                  target, resampler="polyphase"))
    stored, _ = sf.read(path, dtype="float32")
    g = np.gcd(native_hz, target)
    whole = resample_poly(stored, target // g, native_hz // g)
    reference = whole[target : 2 * target]
    assert np.max(np.abs(window.samples - reference)) < 1e-5 * np.max(np.abs(reference))
    soxr_window = soxr.resample(stored, native_hz, target)[target : 2 * target]
    assert np.max(np.abs(soxr_window - reference)) > 1e-3 * np.max(np.abs(reference))
    with pytest.raises(ValueError, match="resampler"):
        list(iter_windows(fsspec.filesystem("file"), str(path), header, [plan[1]], 1.0, target,
                          resampler="linear"))


def test_last_partial_window_is_zero_padded(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "partial.wav", noise(25.0, 44100, level_dbfs=-20), 44100)
    decoded = _decode(path, plan_windows(25.0, 10.0), 10.0, 16000)
    last = decoded[-1]
    assert len(last.samples) == 160000
    assert last.valid_samples == 5 * 16000
    assert np.all(last.samples[80000:] == 0)
    assert _rms(last.samples[79000:80000]) > 0.05
    assert [w.valid_samples for w in decoded[:2]] == [160000, 160000]
    assert all(w.status == "ok" for w in decoded)


def test_truncated_wav_gives_empty_trailing_windows(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "cut.wav", noise(30.0, 16000, level_dbfs=-20), 16000)
    truncate_wav(path, keep_fraction=0.5)  # 15 s remain; the header still says 30 s
    header = read_header(LOCAL, str(path))
    assert header.truncated is True
    assert header.duration_s == pytest.approx(30.0)
    decoded = list(iter_windows(LOCAL, str(path), header, plan_windows(header.duration_s, 10.0), 10.0, 16000))
    assert [w.status for w in decoded] == ["ok", "ok", "empty"]
    assert [w.valid_samples for w in decoded] == [160000, 80000, 0]
    assert np.all(decoded[1].samples[80000:] == 0)
    assert np.all(decoded[2].samples == 0)


def test_digital_silence_is_empty(tmp_path: Path) -> None:
    signal = np.zeros(3 * 16000, dtype=np.float32)
    signal[16000 + 100] = 0.25  # one click in the middle second
    path = write_wav(tmp_path / "silence.wav", signal, 16000)
    decoded = _decode(path, plan_windows(3.0, 1.0), 1.0, 16000)
    assert [w.status for w in decoded] == ["empty", "ok", "empty"]
    assert [w.valid_samples for w in decoded] == [16000] * 3


def test_decode_error_names_the_window(tmp_path: Path, monkeypatch) -> None:
    path = write_wav(tmp_path / "bad.wav", noise(30.0, 16000), 16000)
    header = read_header(LOCAL, str(path))

    def failing_read(self, *args, **kwargs):
        raise sf.LibsndfileError(1, "simulated decoder failure")

    monkeypatch.setattr(audio.sf.SoundFile, "read", failing_read)
    with pytest.raises(InputError) as excinfo:
        third = plan_windows(30.0, 10.0)[2]
        list(iter_windows(LOCAL, str(path), header, [third], 10.0, 16000, uri="s3://b/bad.wav"))
    assert str(excinfo.value).startswith("s3://b/bad.wav: ")
    assert "offset 20.000 s" in excinfo.value.reason


def test_one_window_of_a_long_file_reads_only_that_window(tmp_path: Path) -> None:
    rate_hz, minutes = 48000, 20
    path = tmp_path / "long.wav"
    one_minute = noise(60.0, rate_hz, level_dbfs=-20)
    with sf.SoundFile(path, "w", samplerate=rate_hz, channels=1, subtype="PCM_16") as out:
        for _ in range(minutes):
            out.write(one_minute)
    size_bytes = path.stat().st_size
    assert size_bytes > 100_000_000
    header = read_header(LOCAL, str(path))
    window = plan_windows(header.duration_s, 10.0)[60]  # 10:00-10:10

    fs = _CountingFS()
    tracemalloc.start()
    try:
        (decoded,) = iter_windows(fs, str(path), header, [window], 10.0, 16000)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.status == "ok" and decoded.valid_samples == 160000
    window_bytes = 10 * rate_hz * 2  # 10 s of 16-bit mono on disk
    # The window plus its resampling margins (0.1 s each side) and the header.
    assert fs.bytes_read < 1.1 * window_bytes
    assert peak_bytes < 10 * window_bytes < size_bytes / 10


# --- headers that lie -----------------------------------------------------------------------------


def test_a_144_byte_wav_claiming_1_hz_and_a_4_gb_data_chunk_fails_with_its_reason(tmp_path: Path) -> None:
    path = hostile_wav(tmp_path / "20240501_070000.WAV")  # 1 Hz, data chunk 0xFFFFFFF0 bytes
    assert path.stat().st_size == 144
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as excinfo:
            read_header(LOCAL, str(path))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "sample rate 1 Hz" in excinfo.value.reason
    assert peak_bytes < 1024 * 1024


@pytest.mark.parametrize("rate_hz, channels, reason", [
    (50, 1, "sample rate 50 Hz"),
    (3_000_000, 1, "sample rate 3000000 Hz"),
    (16_000, 200, "200 channels"),
])
def test_header_values_outside_sane_ranges_fail(tmp_path: Path, rate_hz: int, channels: int, reason: str) -> None:
    path = hostile_wav(tmp_path / "x.wav", sample_rate_hz=rate_hz, channels=channels, data_size=2 * channels * 100,
                       total_bytes=44 + 2 * channels * 100)
    with pytest.raises(InputError, match=reason):
        read_header(LOCAL, str(path))


def test_a_truncated_header_may_not_claim_more_than_the_longest_recording(tmp_path: Path) -> None:
    # 100 Hz, 8-bit mono: 0xFFFFFFF0 bytes would be 497 days of audio in a 144-byte file.
    path = hostile_wav(tmp_path / "long.wav", sample_rate_hz=100, bits=8)
    with pytest.raises(InputError) as excinfo:
        read_header(LOCAL, str(path))
    assert "497 days" in excinfo.value.reason and "144 bytes" in excinfo.value.reason
    # A real truncated file well within the bound keeps its declared length (the tail is empty).
    ok = hostile_wav(tmp_path / "ok.wav", sample_rate_hz=16_000, data_size=2 * 16_000 * 60, total_bytes=1044)
    header = read_header(LOCAL, str(ok))
    assert header.truncated and header.duration_s == pytest.approx(60.0)


def test_a_window_too_large_for_memory_fails_before_it_is_allocated(tmp_path: Path) -> None:
    # 2 MHz x 64 channels: one 10 s window and its 0.1 s margins would be 4.9 GiB of float32.
    path = hostile_wav(tmp_path / "wide.wav", sample_rate_hz=2_000_000, channels=64, data_size=128 * 1000,
                       total_bytes=44 + 128 * 1000)
    header = read_header(LOCAL, str(path))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"needs 4\.9 GiB"):
            list(iter_windows(LOCAL, str(path), header, plan_windows(10.0, 10.0), 10.0, 48_000))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 64 * 1024 * 1024
