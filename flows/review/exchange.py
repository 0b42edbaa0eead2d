"""Reviews to and from Raven selection tables, so a reviewer who prefers Raven can work there.

The table format is the exporter's (`flows.outputs.exports.raven`: Raven's columns, then BirdNET's
annotation columns), with the review's `Verdict`, `Corrected Name`, `Reviewer` and `Fingerprint`
after them.

Export: the verdict that counts for each reviewed detection, and optionally the next detections
of the review queue (stratified per species, `Verdict` empty), as one table over all their files:
`Begin Time (s)` runs on the files placed end to end in uri order (as Raven opens a file sequence,
and as BirdNET's combined table does); `File Offset (s)` is the start within `Begin Path`.

Import: every row with a `Verdict` is found again in the catalog by `Begin Path` (the recording's
uri), `File Offset (s)`, `Channel` and `Common Name` (and `Fingerprint` when the table has it),
and becomes a verdict (via raven) unless it says what the catalog already says. Good rows are
written in one transaction; each bad row is reported as `file: selection N: reason`. A table from
`dawnchorus export raven` with a Verdict column added imports too, as long as one fingerprint
analysed each window, or `--fingerprint` says which.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from connectors.catalog import Catalog, CatalogReader
from connectors.catalog.reads import SelectionQuery, latest_reviews, match_selections, review_candidates
from connectors.errors import InputError
from connectors.tables import ReviewRow
from flows.outputs.exports.raven import Selection, read_selection_table, write_selection_table

REVIEW_COLUMNS = ("Verdict", "Corrected Name", "Reviewer", "Fingerprint")
#: What a reviewer may type in the Verdict column, and the verdict it means.
VERDICT_WORDS = {
    "correct": "correct", "c": "correct", "yes": "correct", "y": "correct", "1": "correct",
    "true": "correct", "positive": "correct",
    "wrong": "wrong", "w": "wrong", "no": "wrong", "n": "wrong", "0": "wrong", "false": "wrong",
    "negative": "wrong",
    "unsure": "unsure", "u": "unsure", "?": "unsure",
    "other": "other", "o": "other",
}


@dataclass(frozen=True)
class ExportResult:
    rows: int
    verdicts: int
    pending: int
    left_out: int  # verdicts whose recording is no longer in the catalog (it changed)


@dataclass
class ImportResult:
    imported: int = 0
    unchanged: int = 0
    blank: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    """A detection to write: its catalog row and the review columns' text."""

    detection: dict
    verdict: str = ""
    corrected: str = ""
    reviewer: str = ""


def _selections(rows: list[_Row]) -> list[Selection]:
    """Numbered selections in uri and offset order, the files placed end to end."""
    rows = sorted(rows, key=lambda r: (r.detection["uri"], r.detection["offset_s"],
                                       r.detection["channel"], r.detection["label"]))
    starts: dict[str, float] = {}
    elapsed = 0.0
    for r in rows:
        d = r.detection
        if d["uri"] not in starts:
            starts[d["uri"]] = elapsed
            elapsed += d["duration_s"] or (d["offset_s"] + d["window_s"])
    out = []
    for number, r in enumerate(rows, start=1):
        d = r.detection
        end_s = d["offset_s"] + d["window_s"]
        if d["duration_s"] is not None:
            end_s = min(end_s, d["duration_s"])
        begin_s = starts[d["uri"]] + d["offset_s"]
        out.append(Selection(
            selection=number, channel=max(1, d["channel"]), begin_s=begin_s,
            end_s=begin_s + (end_s - d["offset_s"]), low_hz=0.0,
            high_hz=(d["sample_rate_hz"] or 0) / 2.0, common_name=d["label"],
            scientific_name=d.get("scientific_name") or "", confidence=d["score"],
            begin_path=d["uri"], file_offset_s=d["offset_s"],
            extra={"Verdict": r.verdict, "Corrected Name": r.corrected, "Reviewer": r.reviewer,
                   "Fingerprint": d["config_fingerprint"]},
        ))
    return out


def export_reviews(results: str, path: str | Path, *, fingerprint: str | None = None,
                   pending_per_species: int = 0, min_score: float = 0.1, score_bins: int = 10
                   ) -> ExportResult:
    """Write the reviews (and up to `pending_per_species` queue items per species) to `path`."""
    with CatalogReader(results) as reader:
        reviewed = [asdict(r) for r in latest_reviews(reader, config_fingerprint=fingerprint)]
        pending = []
        if pending_per_species > 0:
            pending = [asdict(r) for r in review_candidates(
                reader, min_score=min_score, score_bins=score_bins, config_fingerprint=fingerprint,
                per_species=pending_per_species)]
    located = [r for r in reviewed if r["offset_s"] is not None and r["uri"] is not None]
    rows = [_Row(r, r["verdict"], r["corrected_label"] or "", r["reviewer"]) for r in located]
    rows += [_Row(r) for r in pending]
    selections = _selections(rows)
    write_selection_table(Path(path), selections, REVIEW_COLUMNS)
    return ExportResult(rows=len(selections), verdicts=len(located), pending=len(pending),
                        left_out=len(reviewed) - len(located))


@dataclass(frozen=True)
class _Wanted:
    selection: int
    begin_path: str
    channel: int
    offset_s: float
    label: str
    fingerprint: str | None
    verdict: str
    corrected_label: str | None
    reviewer: str


def _parse(row: Selection, default_reviewer: str, fingerprint: str | None) -> _Wanted | str | None:
    """What a row asks for; a reason string when it is bad; None when it carries no verdict."""
    extra = row.extra
    word = extra.get("Verdict", "").strip().lower()
    if not word:
        return None
    verdict = VERDICT_WORDS.get(word)
    if verdict is None:
        return f"verdict {extra['Verdict']!r}: expected correct, wrong, unsure or other"
    if row.channel < 1 or not math.isfinite(row.file_offset_s) or row.file_offset_s < 0:
        return f"Channel {row.channel} / File Offset (s) {row.file_offset_s}: out of range"
    label, path = row.common_name.strip(), row.begin_path.strip()
    if not label or not path:
        return "empty Common Name or Begin Path"
    corrected = extra.get("Corrected Name", "").strip() or None
    if verdict == "other" and not corrected:
        return "verdict other needs the species heard in Corrected Name"
    return _Wanted(
        selection=row.selection, begin_path=path, channel=row.channel, offset_s=row.file_offset_s,
        label=label, fingerprint=extra.get("Fingerprint", "").strip() or fingerprint,
        verdict=verdict, corrected_label=corrected if verdict == "other" else None,
        reviewer=extra.get("Reviewer", "").strip() or default_reviewer,
    )


def _read(path: Path) -> list[Selection]:
    if not path.is_file():
        raise InputError(str(path), "file not found")
    try:
        return read_selection_table(path)
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text: {exc}") from None
    except ValueError as exc:  # names the file (and line) already
        raise InputError(str(path), str(exc).removeprefix(f"{path}").lstrip(":, ")) from None


def import_reviews(results: str, path: str | Path, *, reviewer: str,
                   fingerprint: str | None = None, now: datetime | None = None) -> ImportResult:
    """Read verdicts from a selection table into the catalog (see the module docstring)."""
    path = Path(path)
    rows = _read(path)
    if rows and "Verdict" not in rows[0].extra:
        raise InputError(str(path), "no Verdict column: nothing to import")
    result = ImportResult()
    wanted: list[_Wanted] = []
    for row in rows:
        parsed = _parse(row, reviewer, fingerprint)
        if parsed is None:
            result.blank += 1
        elif isinstance(parsed, str):
            result.problems.append(f"{path}: selection {row.selection}: {parsed}")
        else:
            wanted.append(parsed)
    if not wanted:
        return result
    with CatalogReader(results) as reader:
        matches = [asdict(m) for m in match_selections(reader, [
            SelectionQuery(w.selection, w.begin_path, w.channel, w.offset_s, w.label, w.fingerprint)
            for w in wanted])]
        newest = {
            (r.recording_id, r.config_fingerprint, r.channel, r.window_index, r.label):
                (r.verdict, r.corrected_label)
            for r in latest_reviews(reader)
        }
    by_selection: dict[int, list[dict]] = {}
    for m in matches:
        by_selection.setdefault(m["selection"], []).append(m)
    now = now or datetime.now(timezone.utc)
    new: dict[tuple, ReviewRow] = {}
    first_of: dict[tuple, int] = {}
    for w in wanted:
        found = by_selection.get(w.selection, [])
        where = f"{path}: selection {w.selection}"
        if not found:
            result.problems.append(f"{where}: no detection of {w.label!r} at {w.offset_s:g} s of "
                                   f"{w.begin_path} (channel {w.channel}) in the catalog")
            continue
        if len(found) > 1:
            fps = ", ".join(sorted(m["config_fingerprint"] for m in found))
            result.problems.append(f"{where}: several fingerprints analysed this window ({fps}); "
                                   "add a Fingerprint column or pass --fingerprint")
            continue
        m = found[0]
        key = (m["recording_id"], m["config_fingerprint"], m["channel"], m["window_index"], m["label"])
        if key in first_of:
            result.problems.append(f"{where}: the same detection as selection {first_of[key]}; "
                                   "only the first counts")
            continue
        first_of[key] = w.selection
        if newest.get(key) == (w.verdict, w.corrected_label):
            result.unchanged += 1
            continue
        new[key] = ReviewRow(
            review_id=uuid.uuid4().hex, reviewed_at=now, reviewer=w.reviewer,
            recording_id=m["recording_id"], config_fingerprint=m["config_fingerprint"],
            channel=m["channel"], window_index=m["window_index"], deployment_id=m["deployment_id"],
            label=m["label"], score=float(m["score"]), verdict=w.verdict,
            corrected_label=w.corrected_label, via="raven",
        )
    if new:
        with Catalog(results) as catalog:
            catalog.add_reviews(list(new.values()))
    result.imported = len(new)
    return result
