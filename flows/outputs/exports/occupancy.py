"""Detection histories for occupancy models, with the effort they rest on.

Per species, a sites x occasions matrix of 1 (detected), 0 (analysed, not detected) and NA (no
audio analysed on that occasion: not surveyed, never guessed), plus the effort matrix (hours
analysed, NA where none) - the layout R's `unmarked::unmarkedFrameOccu` takes and camtrapR's
`detectionHistory` returns::

    y      <- as.matrix(read.csv("occupancy/y_Turdus_merula.csv", row.names = 1))
    effort <- as.matrix(read.csv("occupancy/effort.csv", row.names = 1))
    sites  <- read.csv("occupancy/sites.csv")
    umf <- unmarkedFrameOccu(y = y, siteCovs = sites, obsCovs = list(effort = effort))

An occasion is a night (local date of local time - 12 h) or a local day, or `days` of them in a
row from the first one; `occasions.csv` gives each column's dates. Sites are `site_id`s (several
deployments at one site pool their effort), in `sites.csv` order; `histories.csv` holds the same
in long form (species, site, occasion, detected, effort_hours).
"""

from __future__ import annotations

import csv
import re
from datetime import date, timedelta
from pathlib import Path

from flows.outputs.exports.cells import fitted_name, spreadsheet_text

NA = "NA"


def _species_file(name: str) -> str:
    return fitted_name("y_" + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_"), ".csv")


def write_occupancy(detections: list[dict], effort: list[dict], sites: list[dict], out_dir: Path,
                    occasion: str = "night", days: int = 1) -> list[Path]:
    """Write the matrices; `effort` rows come from `sql/exports/effort.sql`, `sites` from
    `sql/exports/sites.sql`, `detections` from `sql/exports/detections.sql`."""
    if occasion not in ("night", "day"):
        raise ValueError(f"occasion {occasion!r}: expected night or day")
    if days < 1:
        raise ValueError(f"days {days}: expected at least 1")
    key = "night_date" if occasion == "night" else "local_date"
    out_dir.mkdir(parents=True, exist_ok=True)
    hours: dict[tuple[str, date], float] = {}
    for e in effort:
        hours[(e["site_id"], e[key])] = hours.get((e["site_id"], e[key]), 0.0) + e["hours_analysed"]
    site_ids = [s["site_id"] for s in sites if any(k[0] == s["site_id"] for k in hours)]
    if not hours:
        first = last = None
        n_occasions = 0
    else:
        first = min(d for _, d in hours)
        last = max(d for _, d in hours)
        n_occasions = (last - first).days // days + 1

    def occasion_of(day: date) -> int:
        return (day - first).days // days

    effort_matrix = {(s, k): 0.0 for s in site_ids for k in range(n_occasions)}
    for (site, day), h in hours.items():
        if site in site_ids:
            effort_matrix[(site, occasion_of(day))] += h
    detected: dict[str, set[tuple[str, int]]] = {}
    for d in detections:
        day = d["night_date"] if occasion == "night" else (d["start_local"].date() if d["start_local"] else None)
        if day is None or first is None or not (first <= day <= last) or d["site_id"] not in site_ids:
            continue
        species = d["scientific_name"] or d["label"]
        detected.setdefault(species, set()).add((d["site_id"], occasion_of(day)))

    columns = [f"o{k + 1}" for k in range(n_occasions)]
    written = []

    def write_matrix(path: Path, cell) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["site_id", *columns])
            for s in site_ids:
                writer.writerow([spreadsheet_text(s), *(cell(s, k) for k in range(n_occasions))])
        written.append(path)

    def surveyed(s: str, k: int) -> bool:
        return effort_matrix[(s, k)] > 0

    write_matrix(out_dir / "effort.csv",
                 lambda s, k: repr(round(effort_matrix[(s, k)], 6)) if surveyed(s, k) else NA)
    for species, hits in sorted(detected.items()):
        write_matrix(out_dir / _species_file(species),
                     lambda s, k, hits=hits: NA if not surveyed(s, k) else int((s, k) in hits))
    with open(out_dir / "occasions.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["occasion", "kind", "first_date", "last_date"])
        for k in range(n_occasions):
            start = first + timedelta(days=k * days)
            writer.writerow([columns[k], occasion, start.isoformat(),
                             (start + timedelta(days=days - 1)).isoformat()])
    written.append(out_dir / "occasions.csv")
    with open(out_dir / "sites.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["site_id", "latitude", "longitude", "deployments"])
        for s in sites:
            if s["site_id"] in site_ids:
                writer.writerow([spreadsheet_text(s["site_id"]), _blank(s["latitude"]),
                                 _blank(s["longitude"]), spreadsheet_text(s["deployments"])])
    written.append(out_dir / "sites.csv")
    with open(out_dir / "histories.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["species", "site_id", "occasion", "detected", "effort_hours"])
        for species, hits in sorted(detected.items()):
            for s in site_ids:
                for k in range(n_occasions):
                    name, site = spreadsheet_text(species), spreadsheet_text(s)
                    if surveyed(s, k):
                        writer.writerow([name, site, columns[k], int((s, k) in hits),
                                         repr(round(effort_matrix[(s, k)], 6))])
                    else:
                        writer.writerow([name, site, columns[k], NA, NA])
    written.append(out_dir / "histories.csv")
    return written


def _blank(value) -> str:
    return "" if value is None else repr(value)
