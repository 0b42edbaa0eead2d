"""The sun at each deployment: its events per local day and its elevation every 15 minutes.

Computed with astral 3 (`astral.sun`: the NOAA solar-position equations, with atmospheric
refraction; its authors state agreement with NOAA's calculator to within about a minute at
latitudes below 72 degrees) from the deployment's coordinates, for the local days and the times
its windows cover, after every run (`flows.pipeline.run`) and by `dawnchorus maintain`; nothing
already computed for the same coordinates is computed again. The views (`window_light`,
`detections`) interpolate the elevation between samples and compare a window's middle with its
day's events: docs/time.md, "Solar time".

A deployment without coordinates gets nothing here; the views leave its columns empty and the run
says so once.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from importlib.metadata import version
from typing import Any
from zoneinfo import ZoneInfo

from astral import Observer
from astral import sun as S

from connectors.catalog import Catalog
from connectors.tables import SolarDayRow, SolarSampleRow

log = logging.getLogger(__name__)

#: Seconds between elevation samples (the views interpolate linearly; the sun moves at most 0.25
#: degrees a minute, and the error of a straight line over 15 minutes stays under 0.1 degree).
SLOT_S = 900
#: Depressions of the sun below the horizon that end each twilight, degrees.
TWILIGHTS = {"civil": 6.0, "nautical": 12.0, "astronomical": 18.0}
#: The upper limb at the horizon with refraction: what sunrise and sunset mean (astral's default).
HORIZON_DEG = -0.833
ROWS_PER_COMMIT = 50_000


def computed_by() -> str:
    return f"astral {version('astral')}"


def _maybe(event: Any, *args: Any, **kwargs: Any) -> datetime | None:
    """An astral event, or None where the sun never reaches that height that day."""
    try:
        return event(*args, **kwargs).astimezone(timezone.utc)
    except ValueError:
        return None


def solar_day(deployment_id: str, local_date: date, tz_name: str, latitude: float,
              longitude: float) -> SolarDayRow:
    """The sun's events of one local day: sunrise and sunset, noon, the three twilights' ends,
    and whether it is a polar day or night (no sunrise or sunset at all)."""

    where = Observer(latitude=latitude, longitude=longitude)
    zone = ZoneInfo(tz_name)
    rise = _maybe(S.sunrise, where, local_date, tzinfo=zone)
    set_ = _maybe(S.sunset, where, local_date, tzinfo=zone)
    noon = _maybe(S.noon, where, local_date, tzinfo=zone)
    polar = None
    if rise is None and set_ is None:
        at_noon = S.elevation(where, noon or datetime.combine(local_date, datetime.min.time(), zone)
                              + timedelta(hours=12))
        polar = "day" if at_noon > HORIZON_DEG else "night"
    edges: dict[str, datetime | None] = {}
    for name, depression in TWILIGHTS.items():
        edges[f"{name}_dawn_utc"] = _maybe(S.dawn, where, local_date, depression=depression, tzinfo=zone)
        edges[f"{name}_dusk_utc"] = _maybe(S.dusk, where, local_date, depression=depression, tzinfo=zone)
    return SolarDayRow(deployment_id=deployment_id, local_date=local_date, tz_name=tz_name,
                       latitude=latitude, longitude=longitude, sunrise_utc=rise, sunset_utc=set_,
                       noon_utc=noon, polar=polar, computed_by=computed_by(), **edges)


def solar_sample(deployment_id: str, slot: int, latitude: float, longitude: float) -> SolarSampleRow:
    """The sun's elevation (degrees, with refraction) at the start of a 15-minute slot."""

    at = datetime.fromtimestamp(slot * SLOT_S, timezone.utc)
    elevation = S.elevation(Observer(latitude=latitude, longitude=longitude), at, with_refraction=True)
    return SolarSampleRow(deployment_id=deployment_id, slot=slot, elevation_deg=float(elevation),
                          latitude=latitude, longitude=longitude)


def update_solar(results: Any) -> dict[str, Any]:
    """Compute what the sun tables lack for the windows in the catalog: the rows added, and the
    deployments without coordinates (their solar columns stay empty)."""
    with Catalog(results) as catalog:
        unplaced = sorted(d.deployment_id for d in catalog.deployments()
                          if d.latitude is None or d.longitude is None)
        if unplaced:
            log.info("solar time: no coordinates for %s (their solar columns stay empty)",
                     ", ".join(unplaced))
        days, slots = catalog.solar_todo()
        if not days and not slots:
            return {"days": 0, "samples": 0, "deployments_without_coordinates": unplaced}
        day_rows = [solar_day(d["deployment_id"], d["local_date"], d["tz_name"], d["latitude"],
                              d["longitude"]) for d in days]
        sample_rows = [solar_sample(s["deployment_id"], s["slot"], s["latitude"], s["longitude"])
                       for s in slots]
        for start in range(0, max(len(day_rows), len(sample_rows)), ROWS_PER_COMMIT):
            catalog.put_solar(day_rows[start:start + ROWS_PER_COMMIT],
                              sample_rows[start:start + ROWS_PER_COMMIT])
    log.info("solar time: %d days and %d elevation samples computed (%s)", len(day_rows),
             len(sample_rows), computed_by())
    return {"days": len(day_rows), "samples": len(sample_rows),
            "deployments_without_coordinates": unplaced}
