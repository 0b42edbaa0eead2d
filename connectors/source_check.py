"""The source check: what a source root holds, and every problem with it, before any work.

`dawnchorus check --source S` prints it; `dawnchorus run` performs the listing-and-CSV part
first (errors stop the run before Ray starts or anything is written), and the per-recording part
on every new recording it registers (warnings go into the run header and the run's record, and
onto the recording). The contract it checks is written out in docs/source.md.

It reads only listings, headers and ``deployments.csv``. Two severities:

- **error**: the results would be wrong for a whole deployment (a misnamed column that turns a
  zone or the coordinates off, a deployment id that matches no folder but nearly matches one,
  coordinates out of range, swapped, or far from the time zone's longitudes, a malformed CSV,
  a source that does not exist). A run refuses to start.
- **warning**: something a person should know, which does not make the results wrong as such
  (a column the contract does not know, a row without a folder, a folder without a row, a
  recording whose band lies beyond the model's, a file name and header that disagree about the
  start time, coordinates somewhat far from the zone's longitudes). A run goes on and says so.

Each check is a plain function returning :class:`Problem` rows, so the CLI's `check`, a run's
start and the tests call the same code.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import math
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Literal
from zoneinfo import ZoneInfo

from connectors.audio import read_header
from connectors.errors import ConfigError, InputError
from connectors.storage import (
    DEPLOYMENTS_FILE,
    KNOWN_DEPLOYMENT_COLUMNS,
    Deployment,
    Listing,
    SourceObject,
    list_recordings,
    open_root,
    read_deployments,
)
from connectors.timeparse import TIME_CONFLICT_TOLERANCE_S, StartTime, resolve_start_time
from connectors.timeparse import zone_from_name

log = logging.getLogger(__name__)

Severity = Literal["error", "warning"]

#: Column names people write for the contract's columns (lower-case, spaces and dashes as ``_``);
#: Camtrap DP's spellings among them. Anything else gets a close match by spelling, or none.
COLUMN_ALIASES: dict[str, str] = {
    "time_zone": "timezone", "tz": "timezone", "zone": "timezone", "timezone_name": "timezone",
    "site_timezone": "timezone", "site_time_zone": "timezone", "utc_offset": "timezone",
    "clock_time_zone": "clock_timezone", "clock_tz": "clock_timezone",
    "recorder_timezone": "clock_timezone", "recorder_time_zone": "clock_timezone",
    "lat": "latitude", "lat_deg": "latitude", "latitude_deg": "latitude", "decimal_latitude": "latitude",
    "decimallatitude": "latitude", "y": "latitude",
    "lon": "longitude", "lng": "longitude", "long": "longitude", "lon_deg": "longitude",
    "longitude_deg": "longitude", "decimal_longitude": "longitude", "decimallongitude": "longitude",
    "x": "longitude",
    "deployment": "deployment_id", "deploymentid": "deployment_id", "deployment_name": "deployment_id",
    "folder": "deployment_id",
    "site": "site_id", "siteid": "site_id", "location": "site_id", "locationid": "site_id",
    "location_id": "site_id",
    "start_time": "start", "start_date": "start", "deployment_start": "start", "deploymentstart": "start",
    "end_time": "end", "end_date": "end", "deployment_end": "end", "deploymentend": "end",
    "recorder_model": "recorder", "device": "recorder", "recorder_id": "recorder",
    "species": "species_include", "include_species": "species_include",
    "exclude_species": "species_exclude",
}

#: Longitude away from the one a zone's standard UTC offset implies (15 degrees per hour), in
#: degrees: beyond the first a warning, beyond the second an error. Real zones stray up to about
#: 45 degrees (western China on Asia/Shanghai); a swapped or sign-flipped coordinate strays more.
ZONE_LONGITUDE_WARN_DEG = 30.0
ZONE_LONGITUDE_ERROR_DEG = 60.0
#: A latitude this close to the zone's longitude, with the longitude far from it, reads as swapped.
SWAP_MATCH_DEG = 15.0
#: A recording whose Nyquist frequency is this many times the top of the model's band or more is
#: mostly outside it (ultrasonic for a bird model: 192 kHz and above against BirdNET's 48 kHz).
BAND_RATIO = 4
#: Header reads at once (I/O bound: one or two small range requests each).
HEADER_THREADS = 8


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a source, for one place in it."""

    severity: Severity
    code: str
    """What kind (documented in docs/source.md): unknown_column, bad_metadata, unmatched_row,
    unmatched_folder, coordinates_swapped, coordinates_vs_timezone, beyond_model_band,
    below_model_rate,
    time_conflict, unreadable, no_recordings, source."""
    where: str
    """The file, deployment or recording it concerns."""
    message: str

    def line(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class DeploymentSummary:
    """What one deployment folder (or ``deployments.csv`` row) holds."""

    deployment_id: str
    files: int = 0
    seconds: float = 0.0
    first_local: datetime | None = None
    last_local: datetime | None = None
    sample_rates_hz: tuple[int, ...] = ()
    timezone: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    in_csv: bool = False
    unreadable: int = 0


@dataclass
class SourceReport:
    """The check of one source root."""

    source: str
    deployments: list[DeploymentSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


# ------------------------------------------------------------------------- deployments.csv


def _normalised(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def suggest_column(name: str, present: Iterable[str] = ()) -> str | None:
    """The contract's column a misspelt ``name`` most likely means, unless it is already there."""
    key = _normalised(name)
    guess = COLUMN_ALIASES.get(key) or COLUMN_ALIASES.get(key.replace("_", ""))
    if guess is None:
        close = difflib.get_close_matches(key, KNOWN_DEPLOYMENT_COLUMNS, n=1, cutoff=0.8)
        guess = close[0] if close else None
    return guess if guess is not None and guess not in set(present) else None


def check_columns(header: list[str], where: str) -> list[Problem]:
    """Columns the contract does not know: an error when one stands for a known column that is
    missing (its values would be ignored: ``time_zone`` leaves every local time in UTC), a
    warning otherwise (its values are kept as text in ``deployments.extra``)."""
    columns = [_normalised(name) for name in header]
    problems = []
    for raw, name in zip(header, columns):
        if not name or name in KNOWN_DEPLOYMENT_COLUMNS:
            continue
        guess = suggest_column(name, columns)
        if guess is not None:
            problems.append(Problem("error", "unknown_column", where,
                                    f"unknown column {raw.strip()!r}: did you mean {guess!r}? "
                                    f"(its values would be ignored)"))
        else:
            problems.append(Problem("warning", "unknown_column", where,
                                    f"unknown column {raw.strip()!r}: kept as text in "
                                    "deployments.extra, used by nothing"))
    return problems


def csv_header(fs: Any, root: str) -> list[str] | None:
    """The header row of ``<root>/deployments.csv``; None when there is no such file."""
    path = f"{root.rstrip('/')}/{DEPLOYMENTS_FILE}"
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as handle:
        text = handle.read().decode("utf-8-sig", errors="replace")
    return next(csv.reader(io.StringIO(text, newline="")), [])


def zone_longitude(zone_name: str, when: datetime | None = None) -> float | None:
    """The longitude a zone's standard offset implies (15 degrees per hour); None for zones that
    carry no place (UTC, Etc/*) or a name zoneinfo does not know."""
    if zone_name.upper() in ("UTC", "GMT", "Z") or zone_name.startswith("Etc/"):
        return None
    try:
        zone = ZoneInfo(zone_name)
    except Exception:
        return None
    moment = (when or datetime(2024, 1, 15)).replace(tzinfo=zone)
    standard = (moment.utcoffset() or timedelta()) - (moment.dst() or timedelta())
    return standard.total_seconds() / 3600.0 * 15.0


def _degrees_apart(a: float, b: float) -> float:
    """Distance between two longitudes, around the globe (0..180)."""
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def check_coordinates(deployment: Deployment, where: str) -> list[Problem]:
    """Coordinates against the deployment's time zone: a longitude far from the one the zone's
    offset implies (a swapped pair or a lost minus sign) stops a run; a longitude somewhat far
    from it is a warning. A zone without a place (UTC) checks nothing."""
    lat, lon, zone = deployment.latitude, deployment.longitude, deployment.timezone
    if lon is None or zone is None:
        return []
    expected = zone_longitude(zone)
    if expected is None:
        return []
    off = _degrees_apart(lon, expected)
    if off <= ZONE_LONGITUDE_WARN_DEG:
        return []
    hours = expected / 15.0
    zone_text = f"{zone} (UTC{hours:+g} h) lies near longitude {expected:+.0f}"
    if lat is not None and _degrees_apart(lat, expected) <= SWAP_MATCH_DEG:
        return [Problem("error", "coordinates_swapped", where,
                        f"latitude {lat:g} and longitude {lon:g} look swapped: {zone_text}, "
                        "which is the latitude given (the location filter would use the wrong "
                        "place)")]
    severity: Severity = "error" if off > ZONE_LONGITUDE_ERROR_DEG else "warning"
    return [Problem(severity, "coordinates_vs_timezone", where,
                    f"longitude {lon:g} is {off:.0f} degrees from the time zone: {zone_text} "
                    "(a lost minus sign, or the wrong zone?)")]


def check_folders(deployments: dict[str, Deployment], folders: Iterable[str],
                  where: str) -> list[Problem]:
    """Rows without a folder and folders without a row. A pair that nearly matches each other
    is an error (the folder's recordings would get no time zone or coordinates); otherwise each
    is a warning."""
    folders = set(folders)
    rows_only = sorted(set(deployments) - folders)
    folders_only = sorted(folders - set(deployments))
    problems = []
    matched_folders: set[str] = set()
    by_key = {_id_key(f): f for f in folders_only}
    for row in rows_only:
        close = difflib.get_close_matches(_id_key(row), list(by_key), n=1, cutoff=0.6)
        if close:
            folder = by_key[close[0]]
            matched_folders.add(folder)
            problems.append(Problem(
                "error", "unmatched_row", where,
                f"deployment_id {row!r} matches no folder: did you mean {folder!r}? (that "
                "folder's recordings would get no time zone, coordinates or species lists)"))
        else:
            problems.append(Problem("warning", "unmatched_row", where,
                                    f"deployment_id {row!r} has no folder (no recordings yet?)"))
    if deployments:
        for folder in folders_only:
            if folder in matched_folders:
                continue
            problems.append(Problem(
                "warning", "unmatched_folder", folder,
                f"folder has no row in {DEPLOYMENTS_FILE}: its recordings get no site time zone "
                "(file-name times follow the recorder's convention), no coordinates (no location "
                "filter, not in Camtrap DP) and no species lists"))
    return problems


def _id_key(name: str) -> str:
    """An id as compared for "did you mean": case, dashes and underscores aside."""
    return re.sub(r"[\s_\-.]+", "", name.lower())


# ------------------------------------------------------------------------------ recordings


def check_band(sample_rate_hz: int | None, model: str | None, model_rate_hz: int | None,
               where: str, model_band_hz: tuple[float, float] | None = None) -> Problem | None:
    """A recording whose band lies mostly beyond what the model hears (a warning): its Nyquist
    frequency BAND_RATIO times the top of the model's band (`model_band_hz`, else half the
    model's rate) or more."""
    if not sample_rate_hz or not model_rate_hz:
        return None
    top_hz = model_band_hz[1] if model_band_hz is not None else model_rate_hz / 2
    if sample_rate_hz / 2 < BAND_RATIO * top_hz:
        return None
    return Problem(
        "warning", "beyond_model_band", where,
        f"recorded at {sample_rate_hz / 1000:g} kHz (band up to {sample_rate_hz / 2000:g} kHz), "
        f"but the {model or 'run'} model hears up to {top_hz / 1000:g} kHz: ultrasonic "
        "calls (bats, rodents) are lost in resampling; its windows record the band analysed "
        "(windows.band_high_hz), so effort says no ultrasound was heard")


def check_rate_floor(sample_rate_hz: int | None, model: str | None,
                     min_recording_rate_hz: int | None, where: str) -> Problem | None:
    """A recording below the model's lowest recording rate (an ultrasonic model given a 48 kHz
    file): its windows will fail with the reason, never resampled up (a warning here, up front)."""
    if not sample_rate_hz or not min_recording_rate_hz or sample_rate_hz >= min_recording_rate_hz:
        return None
    return Problem(
        "warning", "below_model_rate", where,
        f"recorded at {sample_rate_hz / 1000:g} kHz, below the {min_recording_rate_hz / 1000:g} "
        f"kHz the {model or 'run'} model needs for its band: not analysed (its windows fail "
        "with this reason)")


def check_start(start: StartTime, where: str) -> Problem | None:
    """A file name and header that disagree about the start time beyond the tolerance."""
    if not start.conflicting:
        return None
    delta = timedelta(seconds=round(start.conflict_s or 0.0))
    sign = "later" if (start.conflict_s or 0) > 0 else "earlier"
    return Problem(
        "warning", "time_conflict", where,
        f"start times disagree: the {start.conflict_source} says {abs(delta)} {sign} than the "
        f"{start.time_source} (used); beyond {TIME_CONFLICT_TOLERANCE_S:g} s, a renamed file "
        "or a reset clock?")


def recording_problems(sample_rate_hz: int | None, start: StartTime | None, model: str | None,
                       model_rate_hz: int | None, where: str,
                       model_band_hz: tuple[float, float] | None = None,
                       min_recording_rate_hz: int | None = None) -> list[Problem]:
    """Everything the check says about one readable recording (warnings only)."""
    found = [check_band(sample_rate_hz, model, model_rate_hz, where, model_band_hz),
             check_rate_floor(sample_rate_hz, model, min_recording_rate_hz, where),
             check_start(start, where) if start is not None else None]
    return [p for p in found if p is not None]


def recording_warnings(problems: Iterable[Problem]) -> list[str]:
    """The text a recording keeps of its own problems (`recordings.warnings`)."""
    return [f"{p.code}: {p.message}" for p in problems]


# ---------------------------------------------------------------------------------- source


@dataclass
class ListingCheck:
    """The cheap part of the check and what it read, for a run to go on with."""

    report: SourceReport
    deployments: dict[str, Deployment]
    """The rows of ``deployments.csv`` (empty when it is bad: the report has the error)."""
    listing: Listing | None
    """None when the source cannot be opened."""
    fs: Any = None

    @property
    def objects(self) -> list[SourceObject]:
        return self.listing.objects if self.listing is not None else []

    def raise_errors(self) -> None:
        """ConfigError, one line, when the check found an error: the first one, and how many
        more (`dawnchorus check` lists them all)."""
        errors = self.report.errors
        if not errors:
            return
        more = (f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''}: "
                f"dawnchorus check --source {self.report.source} lists them)"
                if len(errors) > 1 else "")
        raise ConfigError(f"{errors[0].where}: {errors[0].message}{more}")


def check_listing(source: str, storage_options: dict[str, Any] | None = None,
                  only: tuple[str, ...] | None = None) -> ListingCheck:
    """The cheap part: the listing and ``deployments.csv`` (no recording is opened). Its errors
    are what stop a run before it starts."""
    report = SourceReport(source=source)
    try:
        fs, root = open_root(source, storage_options)
    except ConfigError as exc:
        report.problems.append(Problem("error", "source", source, str(exc)))
        return ListingCheck(report, {}, None)
    csv_where = f"{root.rstrip('/')}/{DEPLOYMENTS_FILE}"
    header = csv_header(fs, root)
    if header is not None:
        report.problems.extend(check_columns(header, csv_where))
    deployments: dict[str, Deployment] = {}
    try:
        deployments = read_deployments(fs, root)
    except ConfigError as exc:
        report.problems.append(Problem("error", "bad_metadata", csv_where,
                                       str(exc).removeprefix(csv_where).lstrip(", :")))
    listing = list_recordings(fs, root)
    if only is not None:
        listing = listing.for_deployments(only)
        deployments = {d: v for d, v in deployments.items() if d in set(only)}
    folders = {o.deployment_id for o in listing.objects}
    for dep_id, dep in sorted(deployments.items()):
        report.problems.extend(check_coordinates(dep, f"{csv_where} ({dep_id})"))
    if header is not None:
        report.problems.extend(check_folders(deployments, folders, csv_where))
    if not listing.objects:
        report.problems.append(Problem("warning", "no_recordings", source,
                                       listing.empty_warning() or "no recordings"))
    summaries = {}
    for dep_id in sorted(folders | set(deployments)):
        dep = deployments.get(dep_id)
        summaries[dep_id] = DeploymentSummary(
            deployment_id=dep_id, in_csv=dep is not None,
            timezone=dep.timezone if dep else None,
            latitude=dep.latitude if dep else None, longitude=dep.longitude if dep else None)
    for obj in listing.objects:
        summaries[obj.deployment_id].files += 1
    report.deployments = list(summaries.values())
    return ListingCheck(report, deployments, listing, fs)


def check_source(source: str, storage_options: dict[str, Any] | None = None, *,
                 model: str | None = None, model_rate_hz: int | None = None,
                 only: tuple[str, ...] | None = None, headers: bool = True,
                 model_band_hz: tuple[float, float] | None = None,
                 min_recording_rate_hz: int | None = None) -> SourceReport:
    """Check a source root: the listing, ``deployments.csv`` and (``headers``) every
    recording's header: start times, sample rates, band against the model's (its band, else
    half its rate) and the model's lowest recording rate."""
    checked = check_listing(source, storage_options, only)
    report, deployments, objects, fs = checked.report, checked.deployments, checked.objects, checked.fs
    if not headers or fs is None or not objects:
        return report
    bad_zone = any(p.code == "bad_metadata" for p in report.errors)
    summaries = {s.deployment_id: s for s in report.deployments}

    def inspect(obj: SourceObject) -> tuple[SourceObject, Any, StartTime | None, str | None]:
        try:
            header = read_header(fs, obj.path, uri=obj.uri)
        except InputError as exc:
            return obj, None, None, exc.reason
        except Exception as exc:  # a bad file is reported, never the end of the check
            return obj, None, None, f"unreadable: {type(exc).__name__}: {exc}"
        dep = deployments.get(obj.deployment_id)
        try:
            start = resolve_start_time(posixpath.basename(obj.key), header.comment, header.guano,
                                       None if bad_zone or dep is None else dep.timezone,
                                       None if bad_zone or dep is None else dep.clock_timezone)
        except ConfigError:
            start = None
        return obj, header, start, None

    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
        results = list(pool.map(inspect, objects))
    rates: dict[str, set[int]] = {}
    for obj, header, start, error in results:
        summary = summaries[obj.deployment_id]
        if error is not None:
            summary.unreadable += 1
            report.problems.append(Problem("warning", "unreadable", obj.uri, error))
            continue
        rates.setdefault(obj.deployment_id, set()).add(header.sample_rate_hz)
        summary.seconds += header.duration_s
        report.problems.extend(recording_problems(header.sample_rate_hz, start, model,
                                                  model_rate_hz, obj.uri, model_band_hz,
                                                  min_recording_rate_hz))
        if start is None or start.start_utc is None:
            continue
        local = start.start_utc.astimezone(_zone(start.tz_name)).replace(tzinfo=None)
        end = local + timedelta(seconds=header.duration_s)
        summary.first_local = local if summary.first_local is None else min(summary.first_local, local)
        summary.last_local = end if summary.last_local is None else max(summary.last_local, end)
    for dep_id, found in rates.items():
        summaries[dep_id].sample_rates_hz = tuple(sorted(found))
    return report


def _zone(name: str | None) -> Any:

    try:
        return zone_from_name(name) if name else ZoneInfo("UTC")
    except Exception:
        return ZoneInfo("UTC")


def format_report(report: SourceReport) -> list[str]:
    """The report as lines of text: one block per deployment, then every problem."""
    lines = [f"source {report.source}: {len(report.deployments)} deployments, "
             f"{sum(d.files for d in report.deployments)} recordings"]
    for d in report.deployments:
        lines.append(f"  {d.deployment_id}{'' if d.in_csv else '  (no deployments.csv row)'}")
        span = "no start times"
        if d.first_local is not None:
            span = f"{d.first_local:%Y-%m-%d %H:%M} .. {d.last_local:%Y-%m-%d %H:%M} local"
        rates = ", ".join(f"{r / 1000:g} kHz" for r in d.sample_rates_hz) or "-"
        lines.append(f"    files        {d.files} ({d.seconds / 3600:.2f} h)"
                     + (f", {d.unreadable} unreadable" if d.unreadable else ""))
        lines.append(f"    time         {span}")
        lines.append(f"    sample rate  {rates}")
        lines.append(f"    time zone    {d.timezone or '- (none given)'}")
        coords = "-"
        if d.latitude is not None or d.longitude is not None:
            coords = f"{_fmt(d.latitude)}, {_fmt(d.longitude)}"
        lines.append(f"    coordinates  {coords}")
    errors, warnings = report.errors, report.warnings
    lines.append(f"{len(errors)} errors, {len(warnings)} warnings")
    lines.extend(p.line() for p in errors + warnings)
    return lines


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:g}"
