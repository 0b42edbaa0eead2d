"""The synthetic-audio helpers produce what they promise: signals, metadata chunks, broken files."""

from __future__ import annotations

import csv
import struct
from datetime import datetime, timedelta, timezone

import guano
import numpy as np
import pytest
import soundfile as sf

from tests.support.synth_audio import (
    audiomoth_comment,
    audiomoth_name,
    chirp,
    corrupt_file,
    deployment_events,
    make_deployment,
    noise,
    place,
    read_chunks,
    read_info,
    tone,
    truncate_wav,
    write_deployments_csv,
    write_wav,
    zero_byte_file,
)

SR_HZ = 16000


def _peak_freq_hz(x: np.ndarray, sample_rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sample_rate_hz)[np.argmax(spectrum)])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- signals --------------------------------------------------------------------------------------


def test_tone_has_its_frequency_amplitude_and_length():
    x = tone(1000, 0.5, SR_HZ, amplitude=0.25)
    assert x.dtype == np.float32 and x.shape == (8000,)
    assert abs(_peak_freq_hz(x, SR_HZ) - 1000) <= 2
    assert np.max(np.abs(x)) == pytest.approx(0.25, rel=1e-3)


def test_tone_above_nyquist_is_refused():
    with pytest.raises(ValueError, match="Nyquist"):
        tone(9000, 0.1, SR_HZ)


def test_chirp_sweeps_from_start_to_end_frequency():
    x = chirp(1000, 5000, 2.0, SR_HZ)
    head, tail = x[: SR_HZ // 10], x[-SR_HZ // 10 :]
    # the first and last 100 ms sit near the sweep's ends (+-200 Hz of the 1-5 kHz sweep)
    assert abs(_peak_freq_hz(head, SR_HZ) - 1100) < 200
    assert abs(_peak_freq_hz(tail, SR_HZ) - 4900) < 200


def test_noise_level_and_seeding():
    a = noise(2.0, SR_HZ, level_dbfs=-40, seed=3)
    assert 20 * np.log10(_rms(a)) == pytest.approx(-40, abs=0.2)
    np.testing.assert_array_equal(a, noise(2.0, SR_HZ, level_dbfs=-40, seed=3))
    assert not np.array_equal(a, noise(2.0, SR_HZ, level_dbfs=-40, seed=4))


def test_place_adds_the_event_at_its_offset_only():
    background = np.zeros((SR_HZ * 3, 2), dtype=np.float32)  # stereo silence
    out = place(background, np.ones(SR_HZ // 2, dtype=np.float32), offset_s=1.25, sample_rate_hz=SR_HZ)
    start, stop = int(1.25 * SR_HZ), int(1.75 * SR_HZ)
    assert np.all(out[start:stop] == 1.0)  # both channels
    assert np.all(out[:start] == 0) and np.all(out[stop:] == 0)
    assert np.all(background == 0), "place must not modify its input"


def test_place_past_the_end_is_refused():
    with pytest.raises(ValueError, match="ends past"):
        place(np.zeros(SR_HZ), np.ones(SR_HZ // 2), offset_s=0.75, sample_rate_hz=SR_HZ)


# --- WAV metadata ---------------------------------------------------------------------------------


def test_write_wav_comment_and_guano_are_readable_and_audio_intact(tmp_path):
    x = tone(440, 1.0, SR_HZ)
    comment = "Recorded at 04:00:00 15/05/2024 (UTC) by AudioMoth 24E1440360379295 at medium gain"
    guano_fields = {"Make": "Wildlife Acoustics", "Samplerate": SR_HZ}
    path = write_wav(tmp_path / "a.wav", x, SR_HZ, comment=comment, guano=guano_fields)
    with sf.SoundFile(path) as f:
        assert f.comment == comment
        np.testing.assert_allclose(f.read(dtype="float32"), x, atol=1 / 2**14)
    assert read_info(path)["ICMT"] == comment
    # guano-py is an independent reader of the guan chunk
    g = guano.GuanoFile(str(path))
    assert g["Make"] == "Wildlife Acoustics" and int(g["Samplerate"]) == SR_HZ
    data = path.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8, "RIFF size must cover the whole file"
    ids = [chunk_id for chunk_id, _ in read_chunks(path)]
    assert ids.index("LIST") < ids.index("data") < ids.index("guan")  # AudioMoth / GUANO placement
    guan_payload = dict(read_chunks(path))["guan"]
    assert guan_payload.startswith(b"GUANO|Version: 1.0\n") and len(guan_payload) % 2 == 0


def test_write_wav_multichannel_and_float_subtype(tmp_path):
    x = np.stack([tone(500, 0.5, SR_HZ), tone(1500, 0.5, SR_HZ)], axis=1)  # (S, 2)
    path = write_wav(tmp_path / "s.wav", x, SR_HZ, subtype="FLOAT", comment="odd-length")
    y, sr = sf.read(path, dtype="float32")
    assert sr == SR_HZ and y.shape == (8000, 2)
    np.testing.assert_array_equal(y, x)
    assert sf.SoundFile(path).comment == "odd-length"


@pytest.mark.parametrize(
    ("offset", "expected_zone"),
    [
        (timedelta(0), "(UTC)"),
        (timedelta(hours=8), "(UTC+8)"),
        (timedelta(hours=-5), "(UTC-5)"),
        (timedelta(hours=10, minutes=30), "(UTC+10:30)"),
        (timedelta(hours=-3, minutes=-30), "(UTC-3:30)"),
    ],
)
def test_audiomoth_comment_format(offset, expected_zone):
    start = datetime(2024, 5, 15, 5, 6, 7, tzinfo=timezone(offset))
    assert audiomoth_comment(start, serial="24E1440360379295") == (
        f"Recorded at 05:06:07 15/05/2024 {expected_zone} by AudioMoth 24E1440360379295 "
        "at medium gain while battery was 4.2V and temperature was 12.5C."
    )


def test_audiomoth_comment_needs_an_aware_time():
    with pytest.raises(ValueError, match="aware"):
        audiomoth_comment(datetime(2024, 5, 15, 5, 0))


def test_audiomoth_name():
    assert audiomoth_name(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "20240102_030405.WAV"


# --- broken files ---------------------------------------------------------------------------------


def test_zero_byte_and_corrupt_files_do_not_open(tmp_path):
    empty = zero_byte_file(tmp_path / "20240101_000000.WAV")
    assert empty.stat().st_size == 0
    garbled = write_wav(tmp_path / "g.wav", tone(440, 0.5, SR_HZ), SR_HZ)
    size = garbled.stat().st_size
    corrupt_file(garbled)
    assert garbled.stat().st_size == size
    for path in (empty, garbled):
        with pytest.raises(sf.LibsndfileError):
            sf.info(path)


def test_truncate_wav_keeps_a_header_that_claims_the_full_length(tmp_path):
    path = write_wav(tmp_path / "t.wav", tone(440, 1.0, SR_HZ), SR_HZ, comment="c")
    full_bytes = SR_HZ * 2  # 1 s of mono 16-bit
    truncate_wav(path, keep_fraction=0.25)
    data = path.read_bytes()
    data_at = data.index(b"data")
    assert struct.unpack("<I", data[data_at + 4 : data_at + 8])[0] == full_bytes
    assert len(data) - (data_at + 8) == full_bytes // 4
    y, _ = sf.read(path)
    assert len(y) <= SR_HZ // 4  # whatever a reader recovers, it is not the claimed second


# --- deployments ----------------------------------------------------------------------------------


def test_make_deployment_names_comments_and_events(tmp_path):
    starts = [datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc), datetime(2024, 5, 15, 4, 10)]
    events = {1: [(2.0, 1.0, 3000.0)]}
    paths = make_deployment(tmp_path, "dep1", starts, duration_s=5.0, sample_rate_hz=SR_HZ, events=events)
    assert [p.name for p in paths] == ["20240515_040000.WAV", "20240515_041000.WAV"]
    assert all(p.parent == tmp_path / "dep1" for p in paths)
    assert sf.SoundFile(paths[1]).comment.startswith("Recorded at 04:10:00 15/05/2024 (UTC) by AudioMoth ")
    y, sr = sf.read(paths[1])
    assert sr == SR_HZ and len(y) == 5 * SR_HZ
    inside, before = y[int(2.1 * SR_HZ) : int(2.9 * SR_HZ)], y[: int(1.9 * SR_HZ)]
    assert abs(_peak_freq_hz(inside, SR_HZ) - 3000) < 5
    assert _rms(inside) > 100 * _rms(before)  # a 0.5-amplitude tone over -50 dBFS noise
    quiet, _ = sf.read(paths[0])
    assert 20 * np.log10(_rms(quiet)) == pytest.approx(-50, abs=1)
    [event] = deployment_events(paths, events)
    assert (event.file, event.offset_s, event.duration_s, event.freq_hz) == (paths[1], 2.0, 1.0, 3000.0)


def test_make_deployment_local_zone_and_channels(tmp_path):
    start = datetime(2024, 1, 10, 20, 0, tzinfo=timezone.utc)
    [path] = make_deployment(
        tmp_path, "au", [start], duration_s=1.0, sample_rate_hz=SR_HZ, channels=2, tz="Australia/Adelaide"
    )
    # Adelaide is UTC+10:30 in January (daylight saving): the recorder's clock reads 06:30 next day
    assert path.name == "20240111_063000.WAV"
    assert "Recorded at 06:30:00 11/01/2024 (UTC+10:30)" in sf.SoundFile(path).comment
    y, _ = sf.read(path)
    assert y.shape == (SR_HZ, 2) and not np.array_equal(y[:, 0], y[:, 1])


def test_make_deployment_is_reproducible(tmp_path):
    start = [datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc)]
    [a] = make_deployment(tmp_path / "a", "d", start, 1.0, SR_HZ, events={0: [(0.2, 0.3, 2000.0)]})
    [b] = make_deployment(tmp_path / "b", "d", start, 1.0, SR_HZ, events={0: [(0.2, 0.3, 2000.0)]})
    assert a.read_bytes() == b.read_bytes()


def test_make_deployment_rejects_events_for_missing_recordings(tmp_path):
    with pytest.raises(ValueError, match=r"recordings \[3\]"):
        make_deployment(tmp_path, "d", [datetime(2024, 5, 15)], 1.0, SR_HZ, events={3: [(0.1, 0.1, 1000.0)]})


def test_write_deployments_csv_round_trip(tmp_path):
    rows = [
        {"deployment_id": "d1", "site_id": "s1", "latitude": 51.77, "longitude": -1.34,
         "recorder": "AudioMoth 1.2", "timezone": "Europe/London"},
        {"deployment_id": "d2", "site_id": "s2"},
    ]
    path = write_deployments_csv(tmp_path, rows)
    with path.open(newline="") as f:
        parsed = list(csv.DictReader(f))
    assert list(parsed[0]) == ["deployment_id", "site_id", "latitude", "longitude", "recorder", "timezone"]
    assert parsed[0]["timezone"] == "Europe/London" and float(parsed[0]["longitude"]) == -1.34
    assert parsed[1]["latitude"] == ""
    with pytest.raises(ValueError, match="unknown columns"):
        write_deployments_csv(tmp_path, [{"deployment_id": "d3", "lat": 1.0}])
