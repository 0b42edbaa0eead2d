"""Start times from file names, AudioMoth comments and GUANO, and the zone rule that joins them.

Expected UTC times are worked out by hand from the offsets (e.g. 21:00 at UTC+09:30 is 11:30 UTC).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import fsspec
import numpy as np
import pytest

from connectors.audio import read_header
from connectors.errors import ConfigError
from connectors.timeparse import (
    parse_audiomoth_comment,
    parse_filename_time,
    parse_guano_timestamp,
    resolve_start_time,
)
from tests.synth_audio import write_wav

UTC = timezone.utc


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


# --- file names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "pattern"),
    [
        ("20231119_210000.WAV", datetime(2023, 11, 19, 21, 0, 0), "audiomoth"),
        ("dep1/card2/20240101_000501.wav", datetime(2024, 1, 1, 0, 5, 1), "audiomoth"),
        ("20230322_172000_selec2.wav", datetime(2023, 3, 22, 17, 20, 0), "audiomoth"),
        ("S4A03895_20190522_060000.wav", datetime(2019, 5, 22, 6, 0, 0), "songmeter"),
        ("SMM09889_20230625_211402_suffix.wav", datetime(2023, 6, 25, 21, 14, 2), "songmeter"),
        ("SM3BAT_0_20190522$060000.wav", datetime(2019, 5, 22, 6, 0, 0), "songmeter"),
    ],
)
def test_parse_filename_naive_patterns(name: str, expected: datetime, pattern: str) -> None:
    assert parse_filename_time(name) == (expected, pattern)


@pytest.mark.parametrize(
    ("name", "expected_utc"),
    [
        ("20231119T210000+0930_REC_-13.64526+134.30475.flac", utc(2023, 11, 19, 11, 30)),
        ("site_0277/20210428T100000+1000_Five-Rivers-Dry-A_909057.flac", utc(2021, 4, 28, 0, 0)),
        ("20231119T210000Z.wav", utc(2023, 11, 19, 21, 0)),
        ("2023-11-19T21:00:00+09:30.wav", utc(2023, 11, 19, 11, 30)),
        ("rec_20230101T020000-0500.wav", utc(2023, 1, 1, 7, 0)),
    ],
)
def test_parse_filename_iso_with_offset(name: str, expected_utc: datetime) -> None:
    parsed = parse_filename_time(name)
    assert parsed is not None
    value, pattern = parsed
    assert pattern == "iso"
    assert value.tzinfo is not None
    assert value == expected_utc


@pytest.mark.parametrize(
    "name",
    [
        "20231319_210000.WAV",  # month 13
        "20231119_250000.WAV",  # hour 25
        "20230230_120000.wav",  # 30 February
        "20231119T216000+0930.wav",  # minute 60
        "00012345_123456.wav",  # a counter, not a year
        "123420231119_210000.wav",  # the date would start inside a longer digit run
        "x20231119_210000.wav",  # glued to a word
        "20231119_2100001.wav",  # seven-digit time
        "21100_36_48.wav",
        "10160435.wav",  # Batlogger: device + counter, no time
        "BirdVox-full-night_unit03_00-19-45_01min.flac",
        "recording.wav",
    ],
)
def test_parse_filename_rejects_non_dates(name: str) -> None:
    assert parse_filename_time(name) is None


# --- AudioMoth comment ----------------------------------------------------------------------------


AUDIOMOTH_COMMENT_UTC8 = (
    "Recorded at 22:08:00 20/09/2022 (UTC+8) by AudioMoth 24E1440360379295 at low gain "
    "while battery was 4.2V and temperature was 21.3C."
)


@pytest.mark.parametrize(
    ("comment", "expected_utc", "offset"),
    [
        (AUDIOMOTH_COMMENT_UTC8, utc(2022, 9, 20, 14, 8), timedelta(hours=8)),
        (
            "Recorded at 23:30:00 31/12/2022 (UTC-5) by AudioMoth 0FE081F80FE081F0 at medium gain setting",
            utc(2023, 1, 1, 4, 30),
            timedelta(hours=-5),
        ),
        (
            "Recorded at 09:32:00 04/05/2018 (UTC) by AudioMoth 0FE081F80FE081F0 at gain setting 2",
            utc(2018, 5, 4, 9, 32),
            timedelta(0),
        ),
        (
            "Recorded at 06:00:00 01/02/2024 (UTC+10:30) by AudioMoth 24E1440360379295 at medium gain",
            utc(2024, 1, 31, 19, 30),
            timedelta(hours=10, minutes=30),
        ),
    ],
)
def test_parse_audiomoth_comment(comment: str, expected_utc: datetime, offset: timedelta) -> None:
    value = parse_audiomoth_comment(comment)
    assert value is not None
    assert value.utcoffset() == offset
    assert value == expected_utc


@pytest.mark.parametrize(
    "comment",
    ["", "Processed by SoX", "Recorded at 22:08:00 31/02/2022 (UTC+8) by AudioMoth 24E1440360379295"],
)
def test_parse_audiomoth_comment_rejects(comment: str) -> None:
    assert parse_audiomoth_comment(comment) is None


# --- GUANO ----------------------------------------------------------------------------------------


def _wav_with_guano(path: Path, timestamp: str) -> Path:
    samples = np.zeros(4800, dtype=np.float32)
    return write_wav(path, samples, 48000, guano={"Make": "Elekon", "Timestamp": timestamp})


def test_guano_timestamp_read_from_wav_header(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    naive_path = _wav_with_guano(tmp_path / "10160435.wav", "2019-01-21T22:14:29")
    header = read_header(fs, str(naive_path))
    assert header.guano is not None
    assert parse_guano_timestamp(header.guano) == datetime(2019, 1, 21, 22, 14, 29)

    aware_path = _wav_with_guano(tmp_path / "10160436.wav", "2019-01-21T22:14:29-05:00")
    value = parse_guano_timestamp(read_header(fs, str(aware_path)).guano)
    assert value == utc(2019, 1, 22, 3, 14, 29)

    # No time in the name, so the GUANO time is used; its naive clock takes the deployment zone.
    start = resolve_start_time(naive_path.name, None, read_header(fs, str(naive_path)).guano, "America/New_York")
    assert (start.time_source, start.tz_source) == ("guano", "deployment")
    assert start.start_utc == utc(2019, 1, 22, 3, 14, 29)  # EST, UTC-5, in January


def test_parse_guano_timestamp_text_forms() -> None:
    assert parse_guano_timestamp({"Timestamp": "2020-06-01 05:00:00Z"}) == utc(2020, 6, 1, 5, 0)
    assert parse_guano_timestamp({"Timestamp": "2020-06-01T05:00:00.250+02:00"}) == utc(2020, 6, 1, 3, 0, 0, 250000)
    assert parse_guano_timestamp({"Timestamp": "yesterday"}) is None
    assert parse_guano_timestamp({"Make": "Wildlife Acoustics"}) is None


# --- the combined rule ----------------------------------------------------------------------------


def test_filename_time_takes_precedence_over_comment_time() -> None:
    comment = "Recorded at 05:00:00 01/01/2020 (UTC) by AudioMoth 24E1440360379295 at medium gain"
    start = resolve_start_time("20231119_210000.WAV", comment, None, None)
    assert start.time_source == "filename"
    assert start.start_utc == utc(2023, 11, 19, 21, 0)


def test_comment_offset_applies_to_naive_filename_time() -> None:
    # An AudioMoth set to local time (UTC+8) names its files by that clock too.
    comment = "Recorded at 21:00:00 19/11/2023 (UTC+8) by AudioMoth 24E1440360379295 at medium gain"
    start = resolve_start_time("20231119_210000.WAV", comment, None, "Australia/Perth")
    assert start.start_utc == utc(2023, 11, 19, 13, 0)
    assert (start.time_source, start.tz_source) == ("filename", "audiomoth_comment")
    assert start.tz_name == "Australia/Perth"

    without_deployment = resolve_start_time("20231119_210000.WAV", comment, None, None)
    assert without_deployment.tz_name == "UTC+08:00"


def test_comment_used_when_name_has_no_time() -> None:
    start = resolve_start_time("perch_fish_oink.wav", AUDIOMOTH_COMMENT_UTC8, None, None)
    assert start.start_utc == utc(2022, 9, 20, 14, 8)
    assert (start.time_source, start.tz_source, start.tz_name) == ("audiomoth_comment", "audiomoth_comment", "UTC+08:00")


@pytest.mark.parametrize(
    ("name", "expected_utc"),
    [
        ("20230701_120000.WAV", utc(2023, 7, 1, 10, 0)),  # CEST, UTC+2
        ("20230115_120000.WAV", utc(2023, 1, 15, 11, 0)),  # CET, UTC+1
        ("20230326_013000.WAV", utc(2023, 3, 26, 0, 30)),  # half an hour before the spring change
        ("20230326_033000.WAV", utc(2023, 3, 26, 1, 30)),  # an hour after it
    ],
)
def test_deployment_zone_is_dst_correct(name: str, expected_utc: datetime) -> None:
    start = resolve_start_time(name, None, None, "Europe/Berlin")
    assert start.start_utc == expected_utc
    assert (start.time_source, start.tz_source, start.tz_name) == ("filename", "deployment", "Europe/Berlin")


def test_explicit_offset_in_name_beats_deployment_zone() -> None:
    start = resolve_start_time("20231119T210000+0930_REC.flac", None, None, "Europe/Berlin")
    assert start.start_utc == utc(2023, 11, 19, 11, 30)
    assert (start.tz_source, start.tz_name) == ("filename", "Europe/Berlin")


def test_naive_time_without_any_zone_is_assumed_utc() -> None:
    start = resolve_start_time("S4A03895_20190522_060000.wav", None, None, None)
    assert start.start_utc == utc(2019, 5, 22, 6, 0)
    assert (start.tz_source, start.tz_name) == ("assumed_utc", "UTC")


def test_unknown_start_stays_none() -> None:
    start = resolve_start_time("pibble.ogg", "Processed by SoX", None, None)
    assert start.start_utc is None
    assert (start.time_source, start.tz_source, start.tz_name) == ("unknown", "unknown", None)
    with_zone = resolve_start_time("pibble.ogg", None, {}, "Europe/Berlin")
    assert with_zone.start_utc is None
    assert with_zone.time_source == "unknown"
    assert with_zone.tz_name == "Europe/Berlin"


def test_unknown_deployment_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus_Mons"):
        resolve_start_time("20230701_120000.WAV", None, None, "Mars/Olympus_Mons")
