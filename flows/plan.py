"""Plan: cut recordings into work units of bounded size, skipping windows already committed.

A unit is a span of consecutive windows of one recording (all its channels), so a 24-hour file
spreads over many workers and a crash loses at most one unit. The `windows` table is the resume
journal: a window committed under the run's config fingerprint is never planned again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from connectors.audio import plan_windows
from connectors.catalog import Catalog

log = logging.getLogger(__name__)

_FIXED_OFFSET = re.compile(r"^UTC(?:([+-])(\d{1,2})(?::?(\d{2}))?)?$")


def zone(tz_name: str | None) -> tzinfo:
    """A tzinfo for an IANA name or a fixed offset written "UTC+09:30"; None or "UTC" → UTC."""
    if not tz_name:
        return timezone.utc
    match = _FIXED_OFFSET.match(tz_name)
    if match:
        sign, hours, minutes = match.groups()
        if sign is None:
            return timezone.utc
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return timezone(-delta if sign == "-" else delta)
    return ZoneInfo(tz_name)


@dataclass(frozen=True)
class Unit:
    """One work unit: consecutive windows of one recording. Plain data, shipped to Ray workers."""

    unit_id: str
    recording_id: str
    deployment_id: str
    uri: str
    path: str
    channels: tuple[int, ...]  # 0 = mean of all channels; 1..N = each channel
    windows: tuple[tuple[int, float, float, bool], ...]  # (index, offset_s, duration_s, padded)
    start_utc: datetime | None
    tz_name: str | None

    @property
    def expected_rows(self) -> int:
        return len(self.windows) * len(self.channels)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "recording_id": self.recording_id,
            "deployment_id": self.deployment_id,
            "uri": self.uri,
            "path": self.path,
            "channels": list(self.channels),
            "windows": [list(w) for w in self.windows],
        }


def _path_for(uri: str) -> str:
    """What fs.open takes for a recording uri (s3fs wants the path without the scheme)."""
    return uri.split("://", 1)[1] if uri.startswith(("s3://", "file://")) else uri


def plan_units(catalog: Catalog, current_ids: list[str], *, fingerprint: str, window_s: float,
               hop_s: float, tail: str, channel_policy: str, windows_per_unit: int) -> list[Unit]:
    """Units covering every planned window of the listed ok recordings not yet committed."""
    wanted = set(current_ids)
    recordings = [
        r for r in catalog.query(
            "select * from recordings where status = 'ok' order by uri"
        ).to_pylist()
        if r["recording_id"] in wanted
    ]
    committed = catalog.committed_windows(fingerprint)
    units: list[Unit] = []
    for rec in recordings:
        channels = (0,) if channel_policy == "mean" else tuple(range(1, rec["channels"] + 1))
        specs = plan_windows(rec["duration_s"], window_s=window_s, hop_s=hop_s, tail=tail)
        done = set.intersection(*(committed.get((rec["recording_id"], c), set()) for c in channels))
        todo = [s for s in specs if s.index not in done]
        for start in range(0, len(todo), windows_per_unit):
            chunk = todo[start : start + windows_per_unit]
            windows = tuple((s.index, s.offset_s, s.duration_s, s.padded) for s in chunk)
            unit_key = f"{rec['recording_id']}:{fingerprint}:{windows[0][0]}-{windows[-1][0]}"
            units.append(Unit(
                unit_id=hashlib.sha256(unit_key.encode()).hexdigest()[:16],
                recording_id=rec["recording_id"],
                deployment_id=rec["deployment_id"],
                uri=rec["uri"],
                path=_path_for(rec["uri"]),
                channels=channels,
                windows=windows,
                start_utc=rec["start_utc"],
                tz_name=rec["tz_name"],
            ))
    log.info("planned %d units (%d windows) over %d recordings", len(units),
             sum(len(u.windows) for u in units), len(recordings))
    return units
