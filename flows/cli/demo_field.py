"""The demo's real recordings: eight openly licensed field recordings shipped with the package
(`flows/cli/demo_recordings/`, sources and licences in its ATTRIBUTION.md), laid out as two
deployments, and the labels they were published with (`truth.csv`).

`lay_out(out_dir)` copies them under `out_dir/source/<deployment_id>/` beside a
`deployments.csv` (coordinates and time zones of where they were recorded, roughly) and writes
`out_dir/truth.csv`; clips mixed in by `flows.cli.demo.build_demo` (`make demo CLIPS=DIR`) before it
are kept, their deployments and truth rows merged in.

`named_right(truth, detections)` says, for each labelled species, whether the run detected it
where the label puts it: a detection of the same scientific name (score at or above the
threshold, species filters applied) in the same file, in a window that overlaps the labelled
span. The labels come from the publishers (the NPS titles, an expert Raven table), never from a
model.
"""

from __future__ import annotations

import csv
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

#: The shipped recordings (package data).
RECORDINGS_DIR = Path(__file__).resolve().parent / "demo_recordings"
TRUTH_COLUMNS = ("key", "deployment_id", "offset_s", "duration_s", "scientific_name", "label",
                 "source")
DEPLOYMENT_COLUMNS = ("deployment_id", "site_id", "latitude", "longitude", "recorder", "timezone")


@dataclass(frozen=True)
class FieldDemo:
    """What `lay_out` wrote.

    Attributes:
        source_root: `out_dir/source`, the folder to point a run at.
        truth_csv: `out_dir/truth.csv`, one row per labelled species and file (TRUTH_COLUMNS).
        deployments: deployment ids under the source root, shipped and mixed.
        recordings: every shipped recording copied, in order.
    """

    source_root: Path
    truth_csv: Path
    deployments: tuple[str, ...]
    recordings: tuple[Path, ...]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, columns: Iterable[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def shipped_truth(recordings_dir: Path = RECORDINGS_DIR) -> list[dict[str, str]]:
    """The labels the shipped recordings were published with (their truth.csv)."""
    return _read_csv(recordings_dir / "truth.csv")


def lay_out(out_dir: Path, recordings_dir: Path = RECORDINGS_DIR) -> FieldDemo:
    """Copy the shipped recordings under `out_dir/source/` and write its deployments.csv and
    `out_dir/truth.csv`, keeping the rows of any demo deployment already there (mixed clips)."""
    out_dir = Path(out_dir)
    source_root = out_dir / "source"
    source_root.mkdir(parents=True, exist_ok=True)
    shipped_deployments = _read_csv(recordings_dir / "deployments.csv")
    shipped_ids = {d["deployment_id"] for d in shipped_deployments}
    deployments_csv, truth_csv = source_root / "deployments.csv", out_dir / "truth.csv"
    # Deployments and labels a mixing build wrote before us stay; ours replace our own.
    kept_deployments = [d for d in (_read_csv(deployments_csv) if deployments_csv.exists() else [])
                        if d["deployment_id"] not in shipped_ids]
    kept_truth = [t for t in (_read_csv(truth_csv) if truth_csv.exists() else [])
                  if t["deployment_id"] not in shipped_ids]
    copied = []
    for deployment in shipped_deployments:
        folder = recordings_dir / deployment["deployment_id"]
        target = source_root / deployment["deployment_id"]
        target.mkdir(exist_ok=True)
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            shutil.copyfile(path, target / path.name)
            copied.append(target / path.name)
            log.info("demo recording %s", target / path.name)
    _write_csv(deployments_csv, DEPLOYMENT_COLUMNS, kept_deployments + shipped_deployments)
    _write_csv(truth_csv, TRUTH_COLUMNS, kept_truth + shipped_truth(recordings_dir))
    ids = tuple(d["deployment_id"] for d in kept_deployments + shipped_deployments)
    return FieldDemo(source_root, truth_csv, ids, tuple(copied))


def named_right(truth: list[dict[str, Any]], detections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per truth row: what was placed where, the best detection of that species in a
    window overlapping it (if any), and `match`.

    `detections`: rows with object_key (the file's key below the source root), offset_s,
    end_offset_s, scientific_name, label and score (analysis `detections_by_file`). A truth row
    without a scientific name (a synthetic call) never matches.
    """
    by_file: dict[str, list[dict[str, Any]]] = {}
    for d in detections:
        by_file.setdefault(d["object_key"], []).append(d)
    rows = []
    for t in truth:
        start_s = float(t["offset_s"])
        end_s = start_s + float(t["duration_s"])
        expected = {n.strip() for n in (t["scientific_name"] or "").split(";") if n.strip()}
        found = [d for d in by_file.get(t["key"], ())
                 if d["scientific_name"] in expected
                 and d["offset_s"] < end_s and d["end_offset_s"] > start_s]
        best = max(found, key=lambda d: d["score"], default=None)
        rows.append({
            "file": t["key"], "from_s": round(start_s, 1), "to_s": round(end_s, 1),
            "labelled": t["label"], "detected": best["label"] if best else None,
            "score": round(best["score"], 3) if best else None,
            "windows": len(found), "match": best is not None,
        })
    return rows
