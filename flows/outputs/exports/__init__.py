"""`dawnchorus export FORMAT --results R --out DIR [filters]`: detections in the formats
reviewers and modellers already load.

- raven: one Raven Pro selection table per recording (`raven.py`, with a reader);
- audacity: one label track per recording; csv: one flat table (`flat.py`);
- camtrap-dp: a Camtrap DP 1.0.2 data package (`camtrap_dp.py`);
- occupancy: detection histories with effort for occupancy models (`occupancy.py`).

Every export reads the catalog through the locked-down reader and the `detections` view, so the
detection threshold and the species filters apply; filters choose deployments, species and local
dates. Each export reads one fingerprint (the catalog's only one unless chosen).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from connectors.analyses import resolve_fingerprint
from connectors.catalog import CatalogReader
from connectors.catalog import reads
from connectors.errors import ConfigError

log = logging.getLogger(__name__)

FORMATS = ("raven", "audacity", "csv", "camtrap-dp", "occupancy")


@dataclass(frozen=True)
class ExportFilters:
    """What to export: None everywhere means everything (of one fingerprint)."""

    config_fingerprint: str | None = None
    deployments: tuple[str, ...] | None = None
    species: tuple[str, ...] | None = None  # scientific or common names, any case
    date_from: date | None = None  # local dates, inclusive
    date_to: date | None = None
    threshold: float | None = None  # detection threshold (default: the catalog's)
    location_threshold: float | None = None  # location filter threshold (default: the catalog's)


def _params(reader: CatalogReader, f: ExportFilters) -> dict[str, Any]:
    fingerprint = resolve_fingerprint(reader.fingerprints, f.config_fingerprint, "export")
    return {
        "config_fingerprint": fingerprint or "",
        "deployments": list(f.deployments) if f.deployments else None,
        "species": [s.lower() for s in f.species] if f.species else None,
        "date_from": f.date_from, "date_to": f.date_to,
    }


def export(fmt: str, results: str, out: str | Path, filters: ExportFilters = ExportFilters(),
           **options: Any) -> dict[str, Any]:
    """Write one export under `out`; returns what was written (files and counts)."""
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out_dir = Path(out)
    with CatalogReader(results, threshold=filters.threshold,
                       location_threshold=filters.location_threshold) as reader:
        params = _params(reader, filters)
        detections = reads.export_detections(reader, **params)
        if fmt == "occupancy":
            effort = reads.export_effort(reader, **{
                k: params[k] for k in ("config_fingerprint", "deployments", "date_from", "date_to")})
            sites = reads.export_sites(reader, deployments=params["deployments"])
        if fmt == "camtrap-dp":
            deployments = reads.camtrap_deployments(reader, deployments=params["deployments"])
            media = reads.camtrap_media(reader, deployments=params["deployments"])
    summary: dict[str, Any] = {"format": fmt, "detections": len(detections)}
    if fmt == "raven":
        from flows.outputs.exports.raven import write_raven

        files = write_raven(detections, out_dir)
    elif fmt == "audacity":
        from flows.outputs.exports.flat import write_audacity

        files = write_audacity(detections, out_dir)
    elif fmt == "csv":
        from flows.outputs.exports.flat import write_csv

        files = write_csv(detections, out_dir)
    elif fmt == "occupancy":
        from flows.outputs.exports.occupancy import write_occupancy

        files = write_occupancy(detections, effort, sites, out_dir,
                                occasion=options.get("occasion", "night"),
                                days=int(options.get("days", 1)))
    else:
        from flows.outputs.exports.camtrap_dp import write_camtrap_dp

        summary.update(write_camtrap_dp(
            detections, deployments, media, out_dir,
            title=options.get("title") or "dawnchorus acoustic monitoring",
            contributor=options.get("contributor") or "dawnchorus"))
        files = [out_dir / "datapackage.json", *(out_dir / f"{t}.csv" for t in
                                                 ("deployments", "media", "observations"))]
    summary["files"] = [str(p) for p in files]
    log.info("export %s: %d detections, %d files under %s", fmt, len(detections), len(files), out_dir)
    return summary
