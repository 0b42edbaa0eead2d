"""Audacity label tracks (one per recording) and one flat CSV of every detection.

Audacity labels: tab-separated, no header, `start end label` per line, times in seconds within
the file; the label is "Common name (Scientific name) 0.873" so the score shows on the track.

The CSV starts with BirdNET-Analyzer's combined-table columns (`Start (s)`, `End (s)`,
`Scientific name`, `Common name`, `Confidence`, `File`) and its optional `lat`, `lon`, `week`,
`model`, then what BirdNET leaves to R scripts: deployment, site, channel, UTC and local start,
time zone, night, fingerprint and run, and the threshold the detection passed with where it came
from (`calibrated` for a species' calibrated threshold, else `default` or `query`).

A located call (BatDetect2) is its own row in both: its start and end are the call's, not its
window's, and the CSV's last columns give its frequency box and detection probability (empty for
window-level models).
"""

from __future__ import annotations

import csv
from pathlib import Path

from flows.outputs.exports.cells import fitted_path, per_recording, spreadsheet_text, tab_table_text
from naturelm_core.birdnet.metamodel import birdnet_week

CSV_COLUMNS = (
    "Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File",
    "lat", "lon", "week", "model",
    "deployment_id", "site_id", "channel", "start_utc", "start_local", "tz_name", "night_date",
    "rank", "config_fingerprint", "run_id", "threshold", "threshold_source",
    "low_freq_hz", "high_freq_hz", "detection_score",
)


def _span(d: dict) -> tuple[float, float]:
    """Seconds from the start of the file: a located call's own (BatDetect2), else its window's."""
    if d.get("call_start_s") is not None:
        return d["call_start_s"], d["call_end_s"]
    return d["offset_s"], d["end_offset_s"]


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def write_audacity(detections: list[dict], out_dir: Path) -> list[Path]:
    written = []
    for key, rows in per_recording(detections):
        stem = key.rsplit(".", 1)[0]
        path = fitted_path(out_dir, stem, ".labels.txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            for d in rows:
                name = d["label"] or ""
                if d["scientific_name"]:
                    name += f" ({d['scientific_name']})"
                name = tab_table_text(name)
                begin, end = _span(d)
                fh.write(f"{begin:.3f}\t{end:.3f}\t{name} {d['score']:.3f}\n")
        written.append(path)
    return written


def write_csv(detections: list[dict], out_dir: Path) -> list[Path]:
    path = out_dir / "detections.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for d in detections:
            local = d["start_local"]
            text = spreadsheet_text  # text cells only; numbers (a negative longitude) as they are
            begin, end = _span(d)
            writer.writerow([
                repr(begin), repr(end), text(d["scientific_name"]),
                text(d["label"]), repr(d["score"]), text(d["uri"]),
                "" if d["latitude"] is None else d["latitude"],
                "" if d["longitude"] is None else d["longitude"],
                birdnet_week(local.date()) if local else "", text(d["model_id"]),
                text(d["deployment_id"]), text(d["site_id"]), d["channel"],
                d["start_utc"].isoformat() if d["start_utc"] else "",
                local.isoformat() if local else "", text(d["tz_name"]),
                d["night_date"].isoformat() if d["night_date"] else "", d["rank"],
                text(d["config_fingerprint"]), text(d["run_id"]), repr(d["threshold"]),
                text(d["threshold_source"]), _number(d.get("low_freq_hz")),
                _number(d.get("high_freq_hz")), _number(d.get("detection_score")),
            ])
    return [path]
