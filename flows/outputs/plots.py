"""The report's pictures (matplotlib, Agg): diel activity, detections per night, effort per day,
species accumulation, activity against sunrise. Each function takes an analysis's rows and writes one PNG of exactly
`SIZE_PX` pixels, also when there is nothing to show (the picture says why: `why`)."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

SIZE_PX = (1000, 600)
DPI = 100
MAX_SPECIES = 30


def _figure():
    return plt.figure(figsize=(SIZE_PX[0] / DPI, SIZE_PX[1] / DPI), dpi=DPI)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)  # no bbox_inches: the size stays SIZE_PX
    plt.close(fig)
    return path


def _empty(fig, title: str, why: str):
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title)
    ax.text(0.5, 0.5, textwrap.fill(why, 60), ha="center", va="center", transform=ax.transAxes,
            fontsize=14)
    ax.set_axis_off()


def diel_heatmap(rows: list[dict], path: Path, why: str = "no detections") -> Path:
    """Species x local hour: detections per hour of effort, pooled over sites (rows of `diel`)."""
    fig = _figure()
    title = "Diel activity: detections per hour analysed, by local hour"
    if not rows:
        _empty(fig, title, why)
        return _save(fig, path)
    detections: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(24))
    effort: dict[tuple[str, int], float] = {}
    for r in rows:
        detections[r["label"] or r["scientific_name"] or "?"][r["local_hour"]] += r["detections"]
        effort[(r["site_id"], r["local_hour"])] = r["effort_hours"] or 0.0
    hours = np.zeros(24)
    for (_, hour), h in effort.items():
        hours[hour] += h
    species = sorted(detections, key=lambda s: -detections[s].sum())[:MAX_SPECIES]
    rate = np.array([np.divide(detections[s], hours, out=np.zeros(24), where=hours > 0)
                     for s in species])  # (species, 24)
    ax = fig.add_axes((0.28, 0.1, 0.62, 0.8))
    image = ax.imshow(rate, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(0, 24, 2))
    ax.set_yticks(range(len(species)), labels=species, fontsize=7 if len(species) > 15 else 9)
    ax.set_xlabel("local hour")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="detections per hour analysed")
    return _save(fig, path)


def sunrise_activity(rows: list[dict], path: Path, why: str = "no detections") -> Path:
    """Detections per hour analysed against minutes from sunrise, the top species (rows of
    `activity_by_sun`); empty where no detection has a sunrise (no coordinates, polar days)."""
    fig = _figure()
    title = "Activity against sunrise: detections per hour analysed"
    rows = [r for r in rows if r["bin_start_min"] is not None]
    if not rows:
        _empty(fig, title, why if why else "no detection has a sunrise: give the deployments "
               "latitude and longitude in deployments.csv (docs/time.md, Solar time)")
        return _save(fig, path)
    detections: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    effort: dict[tuple[str, int], float] = {}
    for r in rows:
        detections[r["label"] or r["scientific_name"] or "?"][r["bin_start_min"]] += r["detections"]
        effort[(r["site_id"], r["bin_start_min"])] = r["effort_hours"] or 0.0
    hours: dict[int, float] = defaultdict(float)
    for (_, b), h in effort.items():
        hours[b] += h
    species = sorted(detections, key=lambda s: -sum(detections[s].values()))[:8]
    ax = fig.add_subplot(1, 1, 1)
    for name in species:
        bins = sorted(b for b in detections[name] if hours[b] > 0)
        ax.plot(bins, [detections[name][b] / hours[b] for b in bins], marker="o", label=name)
    ax.axvline(0, color="orange", linestyle="--", linewidth=1)
    ax.set_xlabel("minutes from sunrise (bin start)")
    ax.set_ylabel("detections per hour analysed")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def detections_per_night(rows: list[dict], path: Path, why: str = "no detections") -> Path:
    """Detections per night and site, all species (rows of `species_by_night`)."""
    fig = _figure()
    title = "Detections per night and site"
    if not rows:
        _empty(fig, title, why)
        return _save(fig, path)
    per_site: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        per_site[r["site_id"]][r["night_date"]] += r["detections"]
    ax = fig.add_subplot(1, 1, 1)
    for site, nights in sorted(per_site.items()):
        days = sorted(nights)
        ax.plot(days, [nights[d] for d in days], marker="o", label=site)
    ax.set_ylabel("detections (windows x species)")
    ax.set_xlabel("night (local date of the evening)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def effort_per_day(rows: list[dict], path: Path, why: str = "no windows analysed") -> Path:
    """Hours analysed per local day and site (rows of `effort_by_day`)."""
    fig = _figure()
    title = "Effort: hours of audio analysed per local day"
    if not rows:
        _empty(fig, title, why)
        return _save(fig, path)
    sites = sorted({r["site_id"] for r in rows})
    days = sorted({r["local_date"] for r in rows})
    ax = fig.add_subplot(1, 1, 1)
    bottom = np.zeros(len(days))
    for site in sites:
        hours = {r["local_date"]: r["hours_analysed"] for r in rows if r["site_id"] == site}
        values = np.array([hours.get(d, 0.0) for d in days])
        ax.bar(days, values, bottom=bottom, label=site)
        bottom += values
    ax.set_ylabel("hours analysed")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def species_accumulation(rows: list[dict], path: Path, why: str = "no windows analysed") -> Path:
    """Cumulative species against cumulative hours analysed, per site."""
    fig = _figure()
    title = "Species accumulation"
    if not rows:
        _empty(fig, title, why)
        return _save(fig, path)
    ax = fig.add_subplot(1, 1, 1)
    for site in sorted({r["site_id"] for r in rows}):
        curve = [r for r in rows if r["site_id"] == site]
        ax.step([0.0] + [r["cumulative_effort_hours"] for r in curve],
                [0] + [r["cumulative_species"] for r in curve], where="post", marker="o", label=site)
    ax.set_xlabel("hours analysed")
    ax.set_ylabel("species detected")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)
