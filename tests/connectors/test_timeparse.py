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
from connectors.storage import list_recordings, open_root, read_deployments
from connectors.timeparse import (
    canonical_zone_name,
    parse_audiomoth_comment,
    parse_filename_time,
    parse_guano_timestamp,
    resolve_start_time,
    zone_from_name,
)
from tests.support.synth_audio import write_wav

UTC = timezone.utc


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


# --- file names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "pattern"),
    [
        ("20231119_210000.WAV", datetime(2023, 11, 19, 21, 0, 0), "audiomoth"),
        ("dep1/card2/20240101_000501.wav", datetime(2024, 1, 1, 0, 5, 1), "audiomoth"),
        ("20230322_172000_selec2.wav", datetime(2023, 3, 22, 17, 20, 0), "date_first"),  # a clip
        ("20170701_213954-MYOMYS-LR_0_0.5.wav", datetime(2017, 7, 1, 21, 39, 54), "date_first"),
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


@pytest.mark.parametrize("offset", ["+5:75", "-3:60", "+15", "-14:30", "+14:01"])
def test_audiomoth_comment_offsets_are_parsed_strictly(offset: str) -> None:
    comment = f"Recorded at 07:00:00 01/05/2024 (UTC{offset}) by AudioMoth 24E1440360379295 at medium gain."
    assert parse_audiomoth_comment(comment) is None
    start = resolve_start_time("20240501_070000.WAV", comment, None, None)
    # The name's 07:00 by the AudioMoth convention (UTC) answers, and the refusal is recorded.
    assert (start.start_utc, start.time_source, start.tz_source) == (
        utc(2024, 5, 1, 7, 0), "filename", "recorder_convention")
    assert len(start.warnings) == 1 and f"(UTC{offset}) refused" in start.warnings[0]


@pytest.mark.parametrize("timestamp", ["2024-05-01T07:00:00+05:75", "2024-05-01T07:00:00-15:00",
                                       "2024-05-01T07:00:00+2360"])
def test_guano_offsets_are_parsed_strictly(tmp_path: Path, timestamp: str) -> None:
    path = _wav_with_guano(tmp_path / "10160435.wav", timestamp)
    meta = read_header(fsspec.filesystem("file"), str(path)).guano
    assert parse_guano_timestamp(meta) is None
    start = resolve_start_time(path.name, None, meta, None)
    # No other source gives a time: unknown, never a time shifted by a garbled offset.
    assert (start.start_utc, start.time_source) == (None, "unknown")
    assert start.warnings and f"GUANO Timestamp {timestamp} refused" in start.warnings[0]


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

    # No time in the name, so the GUANO time is used. GUANO defines a time without offset as
    # local time, so the site's zone (the deployment's timezone) applies.
    start = resolve_start_time(naive_path.name, None, read_header(fs, str(naive_path)).guano, "America/New_York")
    assert (start.time_source, start.tz_source) == ("guano", "recorder_convention")
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
        ("S4A03895_20230701_120000.wav", utc(2023, 7, 1, 10, 0)),  # CEST, UTC+2
        ("S4A03895_20230115_120000.wav", utc(2023, 1, 15, 11, 0)),  # CET, UTC+1
        ("S4A03895_20230326_013000.wav", utc(2023, 3, 26, 0, 30)),  # half an hour before the spring change
        ("S4A03895_20230326_033000.wav", utc(2023, 3, 26, 1, 30)),  # an hour after it
    ],
)
def test_song_meter_name_is_site_local_time_dst_correct(name: str, expected_utc: datetime) -> None:
    start = resolve_start_time(name, None, None, "Europe/Berlin")
    assert start.start_utc == expected_utc
    assert (start.time_source, start.tz_source, start.tz_name) == ("filename", "recorder_convention", "Europe/Berlin")


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


# --- the recorder's clock zone apart from the site's zone -----------------------------------------
#
# docs/time.md has the rule as one table. Wall time in every name below: 04:00 on 1 May 2024, when
# America/Denver keeps MDT (UTC-6) and Europe/London BST (UTC+1).

DENVER = "America/Denver"
AUDIOMOTH_NAME = "20240501_040000.WAV"
SONGMETER_NAME = "SMM01234_20240501_040000.wav"
NO_TIME_NAME = "10160435.wav"  # Batlogger: device and counter; the time is in GUANO only

HEADERS: dict[str, dict[str, object]] = {
    "no header": {},
    "comment (UTC+2)": {"comment": "Recorded at 04:00:00 01/05/2024 (UTC+2) by AudioMoth 24E1440360379295 "
                                   "at medium gain while battery was 4.2V and temperature was 12.5C."},
    "comment (UTC)": {"comment": "Recorded at 04:00:00 01/05/2024 (UTC) by AudioMoth 24E1440360379295 "
                                 "at medium gain while battery was 4.2V and temperature was 12.5C."},
    "GUANO with offset": {"guano": {"Make": "Wildlife Acoustics", "Timestamp": "2024-05-01T04:00:00-06:00"}},
    "GUANO without offset": {"guano": {"Make": "Elekon", "Timestamp": "2024-05-01T04:00:00"}},
}

# A header with an offset fixes the clock whatever the deployment says: (start_utc, tz_source,
# tz_name when the deployment has no timezone and no clock_timezone).
EXPLICIT = {
    "comment (UTC+2)": (utc(2024, 5, 1, 2, 0), "audiomoth_comment", "UTC+02:00"),
    "comment (UTC)": (utc(2024, 5, 1, 4, 0), "audiomoth_comment", "UTC"),
    "GUANO with offset": (utc(2024, 5, 1, 10, 0), "guano", "UTC-06:00"),
}
# Otherwise clock_timezone, when given, is the clock: 04:00 BST and 04:00 at UTC-3.
CLOCKS = {"Europe/London": utc(2024, 5, 1, 3, 0), "UTC-03:00": utc(2024, 5, 1, 7, 0)}
# Otherwise the recorder's convention for the source of the time, then UTC:
# (name, timezone) -> (start_utc, tz_source).
CONVENTION = {
    (AUDIOMOTH_NAME, None): (utc(2024, 5, 1, 4, 0), "recorder_convention"),  # AudioMoth clocks run on UTC
    (AUDIOMOTH_NAME, DENVER): (utc(2024, 5, 1, 4, 0), "recorder_convention"),
    (SONGMETER_NAME, None): (utc(2024, 5, 1, 4, 0), "assumed_utc"),  # local time, but no zone given
    (SONGMETER_NAME, DENVER): (utc(2024, 5, 1, 10, 0), "recorder_convention"),  # 04:00 MDT
    (NO_TIME_NAME, None): (utc(2024, 5, 1, 4, 0), "assumed_utc"),  # GUANO "Local DateTime", no zone
    (NO_TIME_NAME, DENVER): (utc(2024, 5, 1, 10, 0), "recorder_convention"),
}

CASES = [
    (name, header, tz, clock)
    for name in (AUDIOMOTH_NAME, SONGMETER_NAME, NO_TIME_NAME)
    for header in HEADERS
    for tz in (None, DENVER)
    for clock in (None, "Europe/London", "UTC-03:00")
    if not (name == NO_TIME_NAME and header == "no header")  # no time at all: see the unknown tests
]


@pytest.mark.parametrize(("name", "header", "tz", "clock"), CASES)
def test_clock_zone_rule_on_real_files(tmp_path: Path, name: str, header: str, tz: str | None,
                                       clock: str | None) -> None:
    path = write_wav(tmp_path / name, np.zeros(800, dtype=np.float32), 8000, **HEADERS[header])
    read = read_header(fsspec.filesystem("file"), str(path))
    start = resolve_start_time(name, read.comment, read.guano, tz, clock)

    if header in EXPLICIT:
        expected_utc, expected_source, offset_name = EXPLICIT[header]
    elif clock is not None:
        expected_utc, expected_source, offset_name = CLOCKS[clock], "clock_timezone", None
    else:
        (expected_utc, expected_source), offset_name = CONVENTION[(name, tz)], None
    assert start.start_utc == expected_utc
    assert start.tz_source == expected_source
    assert start.time_source == ("filename" if name != NO_TIME_NAME else
                                 "audiomoth_comment" if "comment" in header else "guano")
    # Local display: the site's zone, else the clock's, else the file's own offset, else UTC.
    assert start.tz_name == (tz or clock or offset_name or "UTC")


def test_audiomoth_name_without_comment_in_a_denver_deployment_is_utc(tmp_path: Path) -> None:
    # The reported bug: the site's zone was taken for the AudioMoth clock (start 10:00Z).
    root = tmp_path / "survey"
    (root / "dep1").mkdir(parents=True)
    (root / "deployments.csv").write_text("deployment_id,timezone\ndep1,America/Denver\n")
    write_wav(root / "dep1" / AUDIOMOTH_NAME, np.zeros(800, dtype=np.float32), 8000)
    fs, source = open_root(str(root))
    deployment = read_deployments(fs, source)["dep1"]
    (obj,) = list_recordings(fs, source).objects
    read = read_header(fs, obj.path)
    assert read.comment is None and read.guano is None
    start = resolve_start_time(AUDIOMOTH_NAME, read.comment, read.guano, deployment.timezone,
                               deployment.clock_timezone)
    assert start.start_utc == utc(2024, 5, 1, 4, 0)
    assert (start.tz_source, start.tz_name) == ("recorder_convention", "America/Denver")


def test_clock_timezone_column_sets_the_clock_of_an_audiomoth_on_local_time(tmp_path: Path) -> None:
    # An AudioMoth configured to local time whose comment is gone (rewritten by an editor).
    root = tmp_path / "survey"
    (root / "dep1").mkdir(parents=True)
    (root / "deployments.csv").write_text(
        "deployment_id,timezone,clock_timezone\ndep1,America/Denver,America/Denver\n")
    fs, source = open_root(str(root))
    deployment = read_deployments(fs, source)["dep1"]
    start = resolve_start_time(AUDIOMOTH_NAME, None, None, deployment.timezone, deployment.clock_timezone)
    assert start.start_utc == utc(2024, 5, 1, 10, 0)
    assert (start.tz_source, start.tz_name) == ("clock_timezone", "America/Denver")


@pytest.mark.parametrize(
    ("name", "expected_utc"),
    [
        # Europe/London 2024: 01:00 GMT jumps to 02:00 BST on 31 March, 02:00 BST falls back to
        # 01:00 GMT on 27 October.
        ("SMA00001_20240331_003000.wav", utc(2024, 3, 31, 0, 30)),  # GMT
        ("SMA00001_20240331_013000.wav", utc(2024, 3, 31, 1, 30)),  # skipped hour: fold=0, GMT
        ("SMA00001_20240331_023000.wav", utc(2024, 3, 31, 1, 30)),  # BST
        ("SMA00001_20241027_003000.wav", utc(2024, 10, 26, 23, 30)),  # BST
        ("SMA00001_20241027_013000.wav", utc(2024, 10, 27, 0, 30)),  # repeated hour: fold=0, BST
        ("SMA00001_20241027_023000.wav", utc(2024, 10, 27, 2, 30)),  # GMT
    ],
)
def test_song_meter_convention_across_london_dst_changes(name: str, expected_utc: datetime) -> None:
    start = resolve_start_time(name, None, None, "Europe/London")
    assert start.start_utc == expected_utc
    assert start.tz_source == "recorder_convention"


@pytest.mark.parametrize("name", ["20240331_003000.WAV", "20240331_013000.WAV", "20241027_013000.WAV"])
def test_audiomoth_convention_ignores_the_site_dst(name: str) -> None:
    start = resolve_start_time(name, None, None, "Europe/London")
    wall = datetime.strptime(name[:15], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    assert start.start_utc == wall
    assert (start.tz_source, start.tz_name) == ("recorder_convention", "Europe/London")


@pytest.mark.parametrize(
    ("name", "expected_utc"),
    [
        # America/Denver 2024: 02:00 MST jumps to 03:00 MDT on 10 March, 02:00 MDT falls back to
        # 01:00 MST on 3 November.
        ("20240310_013000.WAV", utc(2024, 3, 10, 8, 30)),  # MST, UTC-7
        ("20240310_023000.WAV", utc(2024, 3, 10, 9, 30)),  # skipped hour: fold=0, MST
        ("20240310_033000.WAV", utc(2024, 3, 10, 9, 30)),  # MDT, UTC-6
        ("20241103_003000.WAV", utc(2024, 11, 3, 6, 30)),  # MDT
        ("20241103_013000.WAV", utc(2024, 11, 3, 7, 30)),  # repeated hour: fold=0, MDT
        ("20241103_023000.WAV", utc(2024, 11, 3, 9, 30)),  # MST
    ],
)
def test_iana_clock_timezone_across_denver_dst_changes(name: str, expected_utc: datetime) -> None:
    start = resolve_start_time(name, None, None, None, "America/Denver")
    assert start.start_utc == expected_utc
    assert (start.tz_source, start.tz_name) == ("clock_timezone", "America/Denver")


@pytest.mark.parametrize(
    ("name", "expected_utc"),
    [("SMA00001_20240115_040000.wav", utc(2024, 1, 15, 11, 0)),
     ("SMA00001_20240715_040000.wav", utc(2024, 7, 15, 11, 0))],  # not 10:00, as MDT would give
)
def test_fixed_offset_clock_keeps_its_offset_through_the_year(name: str, expected_utc: datetime) -> None:
    # A recorder set to UTC-07:00 (Mountain standard time, no DST): the site shows Denver time.
    start = resolve_start_time(name, None, None, DENVER, "UTC-07:00")
    assert start.start_utc == expected_utc
    assert (start.tz_source, start.tz_name) == ("clock_timezone", DENVER)


@pytest.mark.parametrize("name", ["20230322_172000_selec2.wav", "20170701_213954-MYOMYS-LR_0_0.5.wav"])
def test_date_first_name_that_is_not_bare_audiomoth_is_assumed_utc(name: str) -> None:
    # Not what AudioMoth firmware writes, so no recorder is known: UTC, marked as a guess.
    start = resolve_start_time(name, None, None, DENVER)
    assert start.start_utc == datetime.strptime(name[:15], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    assert start.tz_source == "assumed_utc"
    assert resolve_start_time(name, None, None, DENVER, "Europe/Paris").tz_source == "clock_timezone"


def test_clock_timezone_applies_to_naive_iso_names() -> None:
    assert resolve_start_time("2024-05-01T04:00:00.wav", None, None, DENVER).tz_source == "assumed_utc"
    start = resolve_start_time("2024-05-01T04:00:00.wav", None, None, DENVER, "UTC+5:30")
    assert start.start_utc == utc(2024, 4, 30, 22, 30)
    assert start.tz_source == "clock_timezone"
    no_site = resolve_start_time("2024-05-01T04:00:00.wav", None, None, None, "UTC+5:30")
    assert no_site.tz_name == "UTC+05:30"


def test_unknown_start_keeps_the_clock_zone_for_display() -> None:
    start = resolve_start_time(NO_TIME_NAME, None, None, None, "UTC-3")
    assert (start.start_utc, start.time_source, start.tz_source, start.tz_name) == (
        None, "unknown", "unknown", "UTC-03:00")


@pytest.mark.parametrize(
    ("text", "offset"),
    [("UTC+2", timedelta(hours=2)), ("UTC+02", timedelta(hours=2)), ("UTC-0330", timedelta(hours=-3, minutes=-30)),
     ("UTC+05:45", timedelta(hours=5, minutes=45)), ("UTC+14:00", timedelta(hours=14)), ("UTC-00:00", timedelta(0)),
     ("Etc/GMT+7", timedelta(hours=-7))],  # IANA's Etc/GMT names count west as positive
)
def test_zone_from_name_fixed_offsets(text: str, offset: timedelta) -> None:
    assert zone_from_name(text).utcoffset(datetime(2024, 5, 1)) == offset


def test_canonical_zone_names() -> None:
    assert canonical_zone_name("UTC+2") == "UTC+02:00"
    assert canonical_zone_name("UTC-0330") == "UTC-03:30"
    assert canonical_zone_name("UTC+00:00") == "UTC"
    assert canonical_zone_name("America/Denver") == "America/Denver"
    assert canonical_zone_name("UTC") == "UTC"


@pytest.mark.parametrize("text", ["UTC+15", "UTC+14:30", "UTC+02:60", "GMT+2", "+02:00", "utc+2", "Mars/Olympus_Mons",
                                  "UTC+2:3"])
def test_bad_clock_zone_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="UTC±hh:mm"):
        zone_from_name(text)
    with pytest.raises(ConfigError, match=r"clock_timezone .*expected an IANA name"):
        resolve_start_time(AUDIOMOTH_NAME, None, None, None, text)
