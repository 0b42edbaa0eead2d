"""When did a recording start? Parse start times from file names and header metadata.

The rule (:func:`resolve_start_time`, written out with its sources in docs/time.md), in three
steps:

1. **Start time** - the first source that yields one, in this order: the file name
   (:func:`parse_filename_time`), the AudioMoth WAV comment (:func:`parse_audiomoth_comment`),
   the GUANO ``Timestamp`` (:func:`parse_guano_timestamp`). If none does, the start time is
   unknown (``start_utc=None``, ``time_source="unknown"``) - never "now" or the file's mtime,
   which would put detections at plausible but wrong times.
2. **The recorder clock's zone**, needed when that time is naive (a wall-clock reading without
   an offset, as in AudioMoth and Song Meter names). The first rule that answers wins:

   a. an explicit offset: in the time itself (an ISO name such as ``20231119T210000+0930``), the
      AudioMoth comment's ``(UTC+h)`` (``(UTC)`` is an explicit zero), an offset in the GUANO
      Timestamp. Recorders write the name and the header from the same clock, so a header's
      offset applies to the name's wall time;
   b. the deployment's ``clock_timezone`` (an IANA name or a fixed ``UTC±hh:mm``): what the user
      says the recorder's clock was set to;
   c. the recorder convention of the source that gave the time: an AudioMoth name
      (exactly ``YYYYMMDD_HHMMSS``) is UTC, the firmware's default; a Song Meter name
      (``PREFIX_YYYYMMDD_HHMMSS``) and a naive GUANO Timestamp (the GUANO specification's "Local
      DateTime") are the site's local time, the deployment's ``timezone``;
   d. else UTC (``tz_source="assumed_utc"``).

   An IANA clock zone is DST-correct through zoneinfo; a wall time that a DST change skips or
   repeats resolves with ``fold=0`` (the offset in force before the change).
3. **The zone for local display** (``tz_name``): the deployment's ``timezone`` if given, else its
   ``clock_timezone``, else the explicit fixed offset (``"UTC+09:30"``), else ``"UTC"``. When the
   start time is unknown, ``tz_name`` is the deployment's zone (or clock zone), or None.

``time_source`` and ``tz_source`` record which source gave each answer, so an analysis can
exclude assumed times.

When two sources give a start time, they are compared (each naive one read in the same clock
zone): ``conflict_s`` is another source's time minus the chosen one's, for the source that
disagrees most (``conflict_source``), whatever the size. A disagreement beyond
:data:`TIME_CONFLICT_TOLERANCE_S` is the classic sign of a renamed file or a reset clock; the
source check (`connectors.source_check`) reports it and the recording keeps it.
"""

from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.errors import ConfigError

log = logging.getLogger(__name__)

TIME_SOURCES = ("filename", "audiomoth_comment", "guano", "unknown")
TZ_SOURCES = (
    "filename", "audiomoth_comment", "guano",  # an explicit offset in that source
    "clock_timezone", "recorder_convention", "assumed_utc", "unknown",
)

CLOCK_ZONE_FORM = "an IANA name such as America/Denver, or a fixed offset UTC±hh:mm such as UTC-07:00"
"""What a clock zone may be, for error messages."""

TIME_CONFLICT_TOLERANCE_S = 60.0
"""Two sources of one start time further apart than this disagree (a recorder writes its name
and its header from one clock reading, so they agree to the second)."""

# Years outside this range in a name are taken as a coincidental digit run, not a date.
MIN_YEAR = 1970
MAX_YEAR = 2099


@dataclass(frozen=True)
class StartTime:
    """A recording's start time and where it came from (see the module docstring)."""

    start_utc: datetime | None
    """Aware, UTC; None when no source gave a start time."""
    tz_name: str | None
    """Zone for local display: an IANA name or a fixed offset written ``UTC+09:30``."""
    time_source: str
    """One of :data:`TIME_SOURCES`."""
    tz_source: str
    """Which rule gave the clock zone used to compute ``start_utc``; one of :data:`TZ_SOURCES`."""
    warnings: tuple[str, ...] = ()
    """Metadata refused on the way (an AudioMoth comment or GUANO offset out of range): each a
    sentence saying what was found and why it was not used."""
    conflict_s: float | None = None
    """Another source's start minus the chosen one's, seconds (the largest disagreement);
    None when only one source gave a time."""
    conflict_source: str | None = None
    """The source that disagrees by ``conflict_s``; one of :data:`TIME_SOURCES`."""

    @property
    def conflicting(self) -> bool:
        """True when another source disagrees by more than :data:`TIME_CONFLICT_TOLERANCE_S`."""
        return self.conflict_s is not None and abs(self.conflict_s) > TIME_CONFLICT_TOLERANCE_S


# ISO 8601 basic (20231119T210000+0930) or extended (2023-11-19T21:00:00+09:30); the date must
# not continue a longer run of digits or letters.
_ISO_BASIC = re.compile(
    r"(?<![0-9A-Za-z])(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z|[+-]\d{2}(?:\d{2})?)?(?!\d)"
)
_ISO_EXTENDED = re.compile(
    r"(?<![0-9A-Za-z])(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}(?::?\d{2})?)?(?!\d)"
)
# YYYYMMDD_HHMMSS, alone (AudioMoth) or after a prefix (Song Meter: S4A03895_20190522_060000).
# SM3BAT writes '$' instead of '_' between date and time when its clock is GPS-synced.
_DATE_TIME = re.compile(r"(?:^|(?<=[_\-. ]))(\d{4})(\d{2})(\d{2})[_$](\d{2})(\d{2})(\d{2})(?!\d)")

# A fixed-offset zone as written in deployments.csv: UTC+2, UTC+02, UTC+0200, UTC+02:00.
_FIXED_ZONE = re.compile(r"UTC([+-])(\d{1,2})(?::?(\d{2}))?")

_AUDIOMOTH_COMMENT = re.compile(
    r"Recorded at (\d{1,2}):(\d{2}):(\d{2}) (\d{1,2})/(\d{1,2})/(\d{4}) "
    r"\(UTC(?:([+-])(\d{1,2})(?::(\d{2}))?)?\)"
)


def parse_filename_time(name: str) -> tuple[datetime, str] | None:
    """Start time written in a recording's file name, with the pattern that matched.

    Returns ``(datetime, pattern)``, pattern one of ``"iso"``, ``"audiomoth"`` (the stem is
    exactly ``YYYYMMDD_HHMMSS``, as AudioMoth firmware writes it), ``"date_first"`` (the stem
    begins with ``YYYYMMDD_HHMMSS`` and goes on: a clip cut from a recording, a renamed file,
    another recorder) or ``"songmeter"`` (a prefix, then ``_YYYYMMDD_HHMMSS``). The datetime is
    naive unless the name carries an offset (``Z``, ``+0930``, ``+09:30``). Names without a date,
    or whose digits do not form a real date and time, give None.
    """
    stem = posixpath.basename(name.replace("\\", "/"))
    for pattern in (_ISO_EXTENDED, _ISO_BASIC):
        for match in pattern.finditer(stem):
            parsed = _build_datetime(match.groups()[:6], match.group(7))
            if parsed is not None:
                return parsed, "iso"
    for match in _DATE_TIME.finditer(stem):
        parsed = _build_datetime(match.groups()[:6], None)
        if parsed is not None:
            if match.start() > 0:
                return parsed, "songmeter"
            bare = posixpath.splitext(stem)[0] == match.group(0)
            return parsed, "audiomoth" if bare else "date_first"
    return None


def _build_datetime(fields: tuple[str, ...], offset: str | None) -> datetime | None:
    year, month, day, hour, minute, second = (int(value) for value in fields)
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        value = datetime(year, month, day, hour, minute, second)
    except ValueError:  # month 13, hour 25, 30 February ...
        return None
    if offset is None:
        return value
    tz = _parse_offset(offset)
    return None if tz is None else value.replace(tzinfo=tz)


def _parse_offset(text: str) -> timezone | None:
    """``Z``, ``+09``, ``+0930`` or ``+09:30`` as a fixed zone; None if out of range."""
    if text == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0)
    if hours > 14 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


MAX_OFFSET = timedelta(hours=14)
"""The largest UTC offset in use (Kiribati, UTC+14); anything beyond is not a time-zone offset."""


def offset_problem(hours: int, minutes: int) -> str | None:
    """Why ``±hours:minutes`` is not a UTC offset (minutes 0-59, at most 14 hours), or None."""
    if minutes > 59:
        return f"minutes {minutes} are not 0-59"
    if timedelta(hours=hours, minutes=minutes) > MAX_OFFSET:
        return "more than 14 hours from UTC"
    return None


def parse_audiomoth_comment(text: str) -> datetime | None:
    """Start time in an AudioMoth WAV comment, aware with the comment's fixed offset.

    The comment reads e.g. ``"Recorded at 22:08:00 20/09/2022 (UTC+8) by AudioMoth
    24E1440360379295 at low gain ..."`` (day/month/year); the zone is ``(UTC)``, ``(UTC-5)`` or
    ``(UTC+10:30)``. Only the leading "Recorded at ..." part is read, because the rest of the
    wording changed across firmware versions. None if the text does not match, the date is
    impossible or the offset is not one (:func:`audiomoth_comment_problem` says why).
    """
    return _read_audiomoth_comment(text)[0]


def audiomoth_comment_problem(text: str) -> str | None:
    """Why an AudioMoth comment's time was refused (an offset out of range), or None."""
    return _read_audiomoth_comment(text)[1]


def _read_audiomoth_comment(text: str) -> tuple[datetime | None, str | None]:
    if not text:
        return None, None
    match = _AUDIOMOTH_COMMENT.search(text)
    if match is None:
        return None, None
    hour, minute, second, day, month, year = (int(match.group(i)) for i in range(1, 7))
    sign, offset_hours, offset_minutes = match.group(7), match.group(8), match.group(9)
    offset = timedelta(0)
    if sign:
        problem = offset_problem(int(offset_hours), int(offset_minutes or 0))
        if problem is not None:
            written = match.group(0)[match.group(0).rindex("(") :]
            return None, f"AudioMoth comment offset {written} refused ({problem}); its time is not used"
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes or 0))
        if sign == "-":
            offset = -offset
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset)), None
    except ValueError:
        return None, None


def parse_guano_timestamp(meta: dict[str, Any]) -> datetime | None:
    """The GUANO ``Timestamp`` (ISO 8601) as a datetime; naive when it has no offset.

    Accepts the raw text or the datetime the ``guano`` package already coerced it to; a value
    that does not parse, or whose offset is not one (minutes 0-59, at most 14 hours), gives None
    (:func:`guano_timestamp_problem` says why).
    """
    return _read_guano_timestamp(meta)[0]


def guano_timestamp_problem(meta: dict[str, Any]) -> str | None:
    """Why a GUANO Timestamp was refused, or None."""
    return _read_guano_timestamp(meta)[1]


_ISO_OFFSET = re.compile(r"([+-])(\d{1,2})(?::?(\d{2}))?$")


def _read_guano_timestamp(meta: dict[str, Any]) -> tuple[datetime | None, str | None]:
    if not meta:
        return None, None
    value = meta.get("Timestamp")
    if value is None:
        value = meta.get("GUANO|Timestamp")
    if value is None or value == "":
        return None, None
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None and abs(offset) > MAX_OFFSET:
            return None, f"GUANO Timestamp {value.isoformat()} refused (more than 14 hours from UTC)"
        return _with_fixed_offset(value), None
    text = str(value).strip()
    if not text:
        return None, None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = text.replace(" ", "T", 1)
    time_part = text.partition("T")[2]
    offset_match = _ISO_OFFSET.search(time_part) if "T" in text else None
    if offset_match is not None:
        problem = offset_problem(int(offset_match.group(2)), int(offset_match.group(3) or 0))
        if problem is not None:
            return None, f"GUANO Timestamp {str(value).strip()} refused: offset {problem}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        log.warning("GUANO Timestamp %r is not ISO 8601; ignoring it", text)
        return None, None
    return _with_fixed_offset(parsed), None


def _with_fixed_offset(value: datetime) -> datetime:
    # guano uses its own tzinfo classes; normalise to datetime.timezone for clean comparisons.
    if value.tzinfo is None:
        return value
    offset = value.utcoffset()
    return value.replace(tzinfo=timezone(offset) if offset else timezone.utc)


def offset_zone_name(offset: timedelta) -> str:
    """A fixed offset written as a zone name: ``UTC``, ``UTC+09:30``, ``UTC-05:00``."""
    if not offset:
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = int(abs(offset).total_seconds()) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_from_name(name: str) -> tzinfo:
    """A tzinfo for an IANA name (``America/Denver``, ``UTC``) or a fixed offset ``UTC±hh:mm``
    (``UTC+2``, ``UTC-0330`` and ``UTC+02:00`` alike; at most 14 hours).

    Raises ValueError saying what was expected for anything else. Note that the IANA names
    ``Etc/GMT+7`` and ``Etc/GMT-7`` follow the POSIX sign convention: ``Etc/GMT+7`` is UTC-07:00.
    """
    match = _FIXED_ZONE.fullmatch(name)
    if match:
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if hours > 14 or minutes > 59 or (hours == 14 and minutes):
            raise ValueError(f"{name!r} is out of range (expected {CLOCK_ZONE_FORM})")
        offset = timedelta(hours=hours, minutes=minutes)
        return timezone(-offset if sign == "-" else offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (expected {CLOCK_ZONE_FORM})") from None


def canonical_zone_name(name: str) -> str:
    """``name`` as stored: IANA names unchanged, fixed offsets as :func:`offset_zone_name` writes
    them (``UTC+2`` -> ``UTC+02:00``, ``UTC+00:00`` -> ``UTC``). Raises ValueError like
    :func:`zone_from_name`."""
    zone = zone_from_name(name)
    if isinstance(zone, ZoneInfo):
        return name
    return offset_zone_name(zone.utcoffset(None))


def resolve_start_time(
    name: str,
    header_comment: str | None,
    guano: dict[str, Any] | None,
    deployment_tz: str | None,
    clock_timezone: str | None = None,
) -> StartTime:
    """Apply the module's rule to a file name, its header comment, its GUANO metadata, the
    deployment's IANA ``timezone`` (the site's zone) and its ``clock_timezone`` (the recorder
    clock's zone: an IANA name or ``UTC±hh:mm``); any but the name may be None.

    Raises ConfigError if either zone is not one zoneinfo knows (or, for the clock, a fixed
    offset).
    """
    site_zone = _site_zone(deployment_tz) if deployment_tz else None
    clock_name = _clock_zone_name(clock_timezone) if clock_timezone else None
    from_name = parse_filename_time(name)
    from_comment, comment_problem = _read_audiomoth_comment(header_comment) if header_comment else (None, None)
    from_guano, guano_problem = _read_guano_timestamp(guano) if guano else (None, None)
    # A refused offset is no answer: the source is left out and the next rule answers.
    warnings = tuple(p for p in (comment_problem, guano_problem) if p is not None)

    # (source, datetime or None) in precedence order.
    candidates = [
        ("filename", from_name[0] if from_name else None),
        ("audiomoth_comment", from_comment),
        ("guano", from_guano),
    ]
    found = [(source, value) for source, value in candidates if value is not None]
    if not found:
        return StartTime(
            start_utc=None,
            tz_name=deployment_tz or clock_name,
            time_source="unknown",
            tz_source="unknown",
            warnings=warnings,
        )
    time_source, local = found[0]

    clock: tzinfo
    explicit = [(source, value.tzinfo) for source, value in found if value.tzinfo is not None]
    convention = _recorder_convention(time_source, from_name[1] if from_name else None, site_zone)
    if explicit:
        tz_source, clock = explicit[0]
    elif clock_name is not None:
        tz_source, clock = "clock_timezone", zone_from_name(clock_name)
    elif convention is not None:
        tz_source, clock = "recorder_convention", convention
    else:
        tz_source, clock = "assumed_utc", timezone.utc

    # replace() keeps fold=0: a skipped or repeated wall time takes the offset before the change.
    aware = local if local.tzinfo is not None else local.replace(tzinfo=clock)
    start_utc = aware.astimezone(timezone.utc)
    if deployment_tz:
        tz_name = deployment_tz
    elif clock_name is not None:
        tz_name = clock_name
    elif explicit:
        tz_name = offset_zone_name(aware.utcoffset())
    else:
        tz_name = "UTC"
    conflict_s, conflict_source = None, None
    for source, value in found[1:]:
        other = value if value.tzinfo is not None else value.replace(tzinfo=clock)
        delta = (other.astimezone(timezone.utc) - start_utc).total_seconds()
        if conflict_s is None or abs(delta) > abs(conflict_s):
            conflict_s, conflict_source = delta, source
    return StartTime(start_utc=start_utc, tz_name=tz_name, time_source=time_source, tz_source=tz_source,
                     warnings=warnings, conflict_s=conflict_s, conflict_source=conflict_source)


def _recorder_convention(time_source: str, name_pattern: str | None, site_zone: tzinfo | None) -> tzinfo | None:
    """The zone a recorder's own convention gives a naive time from ``time_source``, or None.

    AudioMoth names follow the device clock, UTC unless it was configured otherwise (and then
    its comment carries the offset). Song Meters (and other Wildlife Acoustics recorders) name
    files in the local time set on the recorder, and GUANO defines a Timestamp without offset as
    local time: both are the site's zone, when the deployment gives one.
    """
    if time_source == "filename" and name_pattern == "audiomoth":
        return timezone.utc
    if time_source == "filename" and name_pattern == "songmeter":
        return site_zone
    if time_source == "guano":
        return site_zone
    return None


def _site_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)") from None


def _clock_zone_name(name: str) -> str:
    try:
        return canonical_zone_name(name)
    except ValueError as exc:
        raise ConfigError(f"clock_timezone {exc}") from None
