"""Plan: cut recordings into work units of bounded size, skipping windows already committed.

A unit is a span of consecutive windows of one recording (all its channels), so a 24-hour file
spreads over many workers and a crash loses at most one unit. The `windows` table is the resume
journal: a window committed under the run's config fingerprint is never planned again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.audio import WindowSpec, plan_windows
from connectors.catalog import Catalog

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Unit:
    """One work unit: consecutive windows of one recording, all its channels."""

    unit_id: str
    recording_id: str
    deployment_id: str
    uri: str
    path: str  # what fs.open takes
    size_bytes: int  # as discovered: decoding refuses a file that changed since
    version_tag: str
    channels: tuple[int, ...]  # 0 = mean of all channels; 1..N = each channel
    windows: tuple[WindowSpec, ...]
    start_utc: datetime | None
    tz_name: str | None
    #: Cascade stages: per window (aligned with `windows`), the names its classify chooses among.
    candidates: tuple[tuple[str, ...], ...] | None = None
    #: The recording's native rate (its header's): caps the band its windows record.
    sample_rate_hz: int | None = None

    @property
    def expected_rows(self) -> int:
        return len(self.windows) * len(self.channels)

    def as_item(self) -> dict[str, Any]:
        """What a decode task needs, as plain data (Ray Data rows are dicts)."""
        return {
            "unit_id": self.unit_id, "uri": self.uri, "path": self.path,
            "size_bytes": self.size_bytes, "version_tag": self.version_tag,
            "channels": list(self.channels),
            "windows": [[w.index, w.offset_s, w.duration_s, w.padded] for w in self.windows],
            **({"candidates": [list(c) for c in self.candidates]} if self.candidates is not None else {}),
        }


@dataclass(frozen=True)
class UnitItem:
    """A unit as a decode task receives it (`Unit.as_item`)."""

    unit_id: str
    uri: str
    path: str
    size_bytes: int
    version_tag: str
    channels: tuple[int, ...]
    windows: tuple[WindowSpec, ...]

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "UnitItem":
        return cls(
            unit_id=item["unit_id"], uri=item["uri"], path=item["path"],
            size_bytes=int(item["size_bytes"]), version_tag=item["version_tag"],
            channels=tuple(int(c) for c in item["channels"]),
            windows=tuple(WindowSpec(int(i), float(o), float(d), bool(p)) for i, o, d, p in item["windows"]),
        )


def _path_for(uri: str) -> str:
    """What fs.open takes for a recording uri (s3fs wants the path without the scheme)."""
    return uri.split("://", 1)[1] if uri.startswith(("s3://", "file://")) else uri


def plan_units(catalog: Catalog, current_ids: list[str], *, fingerprint: str, window_s: float,
               hop_s: float, tail: str, channel_policy: str, windows_per_unit: int,
               retry_failed: bool = False, need_embeddings: bool = False) -> list[Unit]:
    """Units covering every planned window of the readable listed recordings not yet committed.

    With `retry_failed`, windows that failed before are planned again (their failed rows are
    replaced when the retry commits). With `need_embeddings`, an analysed window without an
    embedding is planned again: the model runs once more for its vector, and the commit adds
    only the vector (the window's row and answers are already in).
    """
    recordings = catalog.plannable_recordings(current_ids)
    committed = catalog.committed_windows(fingerprint, retry_failed=retry_failed,
                                          need_embeddings=need_embeddings)
    units: list[Unit] = []
    for rec in recordings:
        channels = (0,) if channel_policy == "mean" else tuple(range(1, rec.channels + 1))
        specs = plan_windows(rec.duration_s, window_s=window_s, hop_s=hop_s, tail=tail)
        done = set.intersection(*(committed.get((rec.recording_id, c), set()) for c in channels))
        todo = [s for s in specs if s.index not in done]
        for start in range(0, len(todo), windows_per_unit):
            chunk = tuple(todo[start : start + windows_per_unit])
            unit_key = f"{rec.recording_id}:{fingerprint}:{chunk[0].index}-{chunk[-1].index}"
            units.append(Unit(
                unit_id=hashlib.sha256(unit_key.encode()).hexdigest()[:16],
                recording_id=rec.recording_id,
                deployment_id=rec.deployment_id,
                uri=rec.uri,
                path=_path_for(rec.uri),
                size_bytes=rec.size_bytes or 0,
                version_tag=rec.version_tag,
                channels=channels,
                windows=chunk,
                start_utc=rec.start_utc,
                tz_name=rec.tz_name,
                sample_rate_hz=rec.sample_rate_hz,
            ))
    log.info("planned %d units (%d windows) over %d recordings", len(units),
             sum(len(u.windows) for u in units), len(recordings))
    return units
