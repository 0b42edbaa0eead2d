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
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from connectors.analyses import NOTES, resolve_fingerprint
from connectors.catalog import CatalogReader
from connectors.catalog import reads
from connectors.errors import ConfigError
from flows.outputs.exports.camtrap_dp import write_camtrap_dp
from flows.outputs.exports.cells import (FORMULA_TRIGGERS, MAX_NAME_BYTES, NAME_HASH_CHARS,  # noqa: F401
                                         fitted_name, fitted_path, spreadsheet_text, tab_table_text)
from flows.outputs.exports.flat import write_audacity, write_csv
from flows.outputs.exports.occupancy import write_occupancy
from flows.outputs.exports.raven import write_raven
from flows.outputs import privacy

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
    light_classes: tuple[str, ...] | None = None  # window_light classes (docs/time.md); None: all
    # occupancy: windows that failed quality (docs/effort.md) are not effort, nor are their
    # detections ("exclude"), or they are both ("include"); other formats export every detection
    qc: str = "exclude"


def _params(reader: CatalogReader, f: ExportFilters) -> dict[str, Any]:
    fingerprint = resolve_fingerprint(reader.fingerprints, f.config_fingerprint, "export",
                                      default=reader.default_fingerprint)
    return {
        "config_fingerprint": fingerprint or "",
        "deployments": list(f.deployments) if f.deployments else None,
        "species": [s.lower() for s in f.species] if f.species else None,
        "date_from": f.date_from, "date_to": f.date_to,
        "light_classes": list(f.light_classes) if f.light_classes else None,
    }


def export(fmt: str, results: str, out: str | Path, filters: ExportFilters = ExportFilters(),
           **options: Any) -> dict[str, Any]:
    """Write one export under `out`; returns what was written (files and counts)."""
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out_dir = Path(out)
    check_export_options(out_dir, filters, **options)
    with CatalogReader(results, threshold=filters.threshold,
                       location_threshold=filters.location_threshold) as reader:
        params = _params(reader, filters)
        detections = reads.export_detections(
            reader, **params, qc=filters.qc if fmt == "occupancy" else "include")
        if fmt == "occupancy":
            effort = reads.export_effort(reader, qc=filters.qc, **{
                k: params[k] for k in ("config_fingerprint", "deployments", "date_from", "date_to",
                                       "light_classes")})
            sites = reads.export_sites(reader, deployments=params["deployments"])
        if fmt == "camtrap-dp":
            deployments = reads.camtrap_deployments(reader, deployments=params["deployments"])
            media = reads.camtrap_media(reader, deployments=params["deployments"])
            # The privacy gate (docs/privacy.md): a recording holding a marked window is no medium.
            gate = privacy.withheld(reader, deployments=params["deployments"])
    summary: dict[str, Any] = {"format": fmt, "detections": len(detections)}
    if fmt == "raven":

        files = write_raven(detections, out_dir)
    elif fmt == "audacity":

        files = write_audacity(detections, out_dir)
    elif fmt == "csv":

        files = write_csv(detections, out_dir)
    elif fmt == "occupancy":

        files = write_occupancy(detections, effort, sites, out_dir,
                                occasion=options.get("occasion", "night"),
                                days=int(options.get("days", 1)))
        summary["windows_qc_failed"] = failed = sum(e["windows_qc_failed"] for e in effort)
        if failed and filters.qc == "exclude":
            NOTES.warning("%d analysed windows failed quality (silent, dropout, clipped) and are "
                          "left out of effort and detections (--qc include keeps them; "
                          "docs/effort.md)", failed)
    else:

        kept_media = [m for m in media if m["recording_id"] not in gate.recordings]
        summary["withheld_media"] = len(media) - len(kept_media)
        summary["withheld"] = gate.note(summary["withheld_media"], "recordings (Camtrap DP "
                                        "media, with their observations)")
        if summary["withheld"]:
            log.warning("camtrap-dp: %s", summary["withheld"])
        summary.update(write_camtrap_dp(
            [d for d in detections if d["recording_id"] not in gate.recordings], deployments,
            kept_media, out_dir,
            title=options.get("title") or "dawnchorus acoustic monitoring",
            contributor=options.get("contributor") or "dawnchorus"))
        files = [out_dir / "datapackage.json", *(out_dir / f"{t}.csv" for t in
                                                 ("deployments", "media", "observations"))]
    summary["files"] = [str(p) for p in files]
    log.info("export %s: %d detections, %d files under %s", fmt, len(detections), len(files), out_dir)
    return summary


MAX_OCCASION_DAYS = 366


def check_export_options(out_dir: Path, filters: ExportFilters, **options: Any) -> None:
    """Every export option checked before the catalog is read or a file written: ConfigError,
    one line naming the option."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: an existing file, expected a folder to write into")
    for name, value in (("--threshold", filters.threshold),
                        ("--location-threshold", filters.location_threshold)):
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ConfigError(f"{name} {value}: expected a score in [0, 1]")
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise ConfigError(f"--from {filters.date_from} is after --to {filters.date_to}")
    days = options.get("days")
    if days is not None and not (isinstance(days, int) and 1 <= days <= MAX_OCCASION_DAYS):
        raise ConfigError(f"--days {days}: expected 1 to {MAX_OCCASION_DAYS} nights or days "
                          "per occasion")
    occasion = options.get("occasion")
    if occasion is not None and occasion not in ("night", "day"):
        raise ConfigError(f"--occasion {occasion!r}: expected night or day")

