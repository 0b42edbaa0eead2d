"""Small catalogs for SQL tests, written through the catalog's typed writer (never raw SQL).

`Seed` registers deployments and recordings and commits windows with their predictions, the way
a run does: each window's local time comes from the production conversion (`zone_from_name`,
as `flows.pipeline.stages.unit_rows` uses it), so a test states the wall-clock time it expects by hand.
A Seed opens its catalog once, on first use, and closes it when it is closed (`close`, `with`)
or let go: every write is its own committed transaction, so readers see each one at once.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from connectors.catalog import Catalog
from connectors.tables import DeploymentRow, PredictionRow, RecordingRow, WindowRow
from connectors.timeparse import zone_from_name

FINGERPRINT = "fp-birdnet"
RUN = "run-1"
MODEL = "birdnet@test"
WINDOW_S = 10.0


@dataclass
class Call:
    """A classify answer in one window: what the model said and how sure it was."""

    scientific_name: str | None
    label: str
    score: float


@dataclass
class Seed:
    root: Path
    fingerprint: str = FINGERPRINT
    run_id: str = RUN
    _deployments: dict[str, DeploymentRow] = field(default_factory=dict)
    _catalog: Catalog | None = field(default=None, repr=False)
    _closer: weakref.finalize | None = field(default=None, repr=False)

    @property
    def catalog(self) -> Catalog:
        """The catalog, opened on first use (opening costs a schema check and an attach)."""
        if self._catalog is None:
            self._catalog = Catalog(self.root)
            self._closer = weakref.finalize(self, self._catalog.close)
        return self._catalog

    def close(self) -> None:
        if self._closer is not None:
            self._closer()  # closes the catalog once, whoever calls first
        self._catalog = self._closer = None

    def __enter__(self) -> "Seed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def deployment(self, deployment_id: str, *, site_id: str | None = None, timezone: str = "UTC",
                   latitude: float | None = None, longitude: float | None = None,
                   recorder: str = "AudioMoth 1.2", **extra) -> None:
        row = DeploymentRow(
            deployment_id=deployment_id, site_id=site_id, latitude=latitude, longitude=longitude,
            recorder=recorder, timezone=timezone, start_utc=None, end_utc=None, extra=None,
            updated_run_id=self.run_id, clock_timezone=None, **extra)
        self._deployments[deployment_id] = row
        self.catalog.upsert_deployments([row])

    def recording(self, deployment_id: str, start_utc: datetime, windows: int, *,
                  calls: dict[int, Iterable[Call]] | None = None,
                  status: dict[int, str] | None = None, qc: dict[int, str] | None = None,
                  channel: int = 0,
                  fingerprint: str | None = None, run_id: str | None = None,
                  window_s: float = WINDOW_S, key: str | None = None) -> str:
        """One recording of `windows` windows starting at `start_utc`; returns its id.

        `calls` maps a window index to the classify answers in it (rank in the order given);
        `status` maps a window index to a status other than ok (failed windows have no answers);
        `qc` a window index to its quality verdict (the others: not measured, NULL).
        """
        fingerprint = fingerprint or self.fingerprint
        run_id = run_id or self.run_id
        tz_name = self._deployments[deployment_id].timezone or "UTC"
        key = key or f"{deployment_id}/{start_utc:%Y%m%d_%H%M%S}.WAV"
        recording_id = hashlib.sha256(key.encode()).hexdigest()[:16]
        catalog = self.catalog
        known = {r.recording_id for r in catalog.known_recordings()}
        if recording_id not in known:
            catalog.register_recordings([RecordingRow(
                recording_id=recording_id, deployment_id=deployment_id,
                uri=f"/field/{key}", object_key=key, size_bytes=1000, etag=None, mtime=None,
                duration_s=windows * window_s, frames=int(windows * window_s * 48000),
                sample_rate_hz=48000, channels=1, format="WAV", subtype="PCM_16",
                start_utc=start_utc, tz_name=tz_name, time_source="filename",
                tz_source="filename", status="ok", error=None, run_id=run_id,
                discovered_at=start_utc)], [])
        window_rows, prediction_rows = [], []
        for index in range(windows):
            offset_s = index * window_s
            start = start_utc + timedelta(seconds=offset_s)
            local = start.astimezone(zone_from_name(tz_name)).replace(tzinfo=None)
            state = (status or {}).get(index, "ok")
            where = dict(recording_id=recording_id, deployment_id=deployment_id,
                         channel=channel, window_index=index, offset_s=offset_s,
                         start_utc=start, start_local=local, date=start.date())
            window_rows.append(WindowRow(
                run_id=run_id, config_fingerprint=fingerprint, window_s=window_s,
                duration_s=window_s if state == "ok" else 0.0, status=state, padded=False,
                error="decode error" if state == "failed" else None,
                qc=(qc or {}).get(index), **where))
            if state != "ok":
                continue
            for rank, call in enumerate((calls or {}).get(index, ()), start=1):
                prediction_rows.append(PredictionRow(
                    run_id=run_id, model_id=MODEL, config_fingerprint=fingerprint,
                    task="classify", prompt_id="birdnet:species", rank=rank,
                    answer_text=call.label, label=call.label,
                    scientific_name=call.scientific_name, score=call.score, **where))
        catalog.commit_unit(window_rows, prediction_rows)
        return recording_id


ROBIN = Call("Erithacus rubecula", "European Robin", 0.9)
WREN = Call("Troglodytes troglodytes", "Eurasian Wren", 0.8)
OWL = Call("Strix aluco", "Tawny Owl", 0.7)


def analysis(root: Path, name: str, **params) -> list[dict]:
    """Rows of an analysis, read through the locked-down reader."""
    from connectors.catalog import CatalogReader

    with CatalogReader(root) as reader:
        return reader.analysis(name, params).to_pylist()


def assert_unique(rows: list[dict], *keys: str) -> None:
    """The grain: no two rows share these key columns."""
    seen = [tuple(r[k] for k in keys) for r in rows]
    assert len(seen) == len(set(seen)), f"duplicate {keys}: {sorted(seen)}"
