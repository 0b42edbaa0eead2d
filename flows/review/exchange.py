"""Reviews to and from Raven selection tables, so a reviewer who prefers Raven can work there.

Export: the verdict that counts for each reviewed detection, and optionally the next detections
of the review queue (stratified per species, `Verdict` empty), as one table over all their files,
with the annotation columns `Verdict`, `Corrected Name`, `Reviewer` and `Fingerprint`.

Import: every row with a `Verdict` is found again in the catalog by `Begin Path` (the recording's
uri), `File Offset (s)`, `Channel` and `Common Name` (and `Fingerprint` when the table has it),
and becomes a verdict (via raven) unless it says what the catalog already says. Good rows are
written in one transaction; each bad row is reported as `file:line: reason`. A table exported by
the detections exporter (no Fingerprint column) imports too, as long as one fingerprint analysed
each window, or `--fingerprint` says which.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from connectors.catalog import Catalog, CatalogReader, sql_text
from connectors.errors import InputError
from connectors.tables import ReviewRow
from flows.review.raven import Selection, TableRow, read_selection_table, write_selection_table

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
_ALL = 1 << 31


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


def _selection(row: dict, verdict: str, corrected: str, reviewer: str) -> Selection:
    end_s = row["offset_s"] + row["window_s"]
    if row["duration_s"] is not None:
        end_s = min(end_s, row["duration_s"])
    return Selection(
        begin_path=row["uri"], file_offset_s=row["offset_s"], duration_s=end_s - row["offset_s"],
        channel=max(1, row["channel"]), low_freq_hz=0.0,
        high_freq_hz=(row["sample_rate_hz"] or 0) / 2.0, common_name=row["label"],
        scientific_name=row.get("scientific_name"), confidence=row["score"],
        extra={"Verdict": verdict, "Corrected Name": corrected, "Reviewer": reviewer,
               "Fingerprint": row["config_fingerprint"]},
    )


def export_reviews(results: str, path: str | Path, *, fingerprint: str | None = None,
                   pending_per_species: int = 0, min_score: float = 0.1, score_bins: int = 10
                   ) -> ExportResult:
    """Write the reviews (and up to `pending_per_species` queue items per species) to `path`."""
    with CatalogReader(results) as reader:
        reviewed = reader.query(sql_text("review/latest_reviews"), [fingerprint]).to_pylist()
        pending = []
        if pending_per_species > 0:
            pending = reader.query(sql_text("review/candidates"), [
                min_score, score_bins, None, None, fingerprint, _ALL, pending_per_species,
            ]).to_pylist()
    located = [r for r in reviewed if r["offset_s"] is not None and r["uri"] is not None]
    selections = [_selection(r, r["verdict"], r["corrected_label"] or "", r["reviewer"])
                  for r in located]
    selections += [_selection(r, "", "", "") for r in pending]
    order = sorted(range(len(selections)), key=lambda i: (
        selections[i].begin_path, selections[i].file_offset_s, selections[i].channel,
        selections[i].common_name))
    selections = [selections[i] for i in order]
    durations = {r["uri"]: r["duration_s"] or (r["offset_s"] + r["window_s"])
                 for r in located + pending}
    written = write_selection_table(path, selections, durations, REVIEW_COLUMNS)
    return ExportResult(rows=written, verdicts=len(located), pending=len(pending),
                        left_out=len(reviewed) - len(located))


@dataclass(frozen=True)
class _Wanted:
    line: int
    begin_path: str
    channel: int
    offset_s: float
    label: str
    fingerprint: str | None
    verdict: str
    corrected_label: str | None
    reviewer: str


def _parse(row: TableRow, default_reviewer: str, fingerprint: str | None) -> _Wanted | str | None:
    """What a row asks for; a reason string when it is bad; None when it carries no verdict."""
    cells = row.cells
    word = cells.get("Verdict", "").strip().lower()
    if not word:
        return None
    verdict = VERDICT_WORDS.get(word)
    if verdict is None:
        return f"verdict {cells['Verdict']!r}: expected correct, wrong, unsure or other"
    try:
        channel = int(cells["Channel"])
        offset_s = float(cells["File Offset (s)"])
    except ValueError:
        return (f"Channel {cells['Channel']!r} / File Offset (s) {cells['File Offset (s)']!r}: "
                "expected a whole number and a number of seconds")
    if channel < 1 or not math.isfinite(offset_s) or offset_s < 0:
        return f"Channel {channel} / File Offset (s) {offset_s}: out of range"
    label, path = cells["Common Name"].strip(), cells["Begin Path"].strip()
    if not label or not path:
        return "empty Common Name or Begin Path"
    corrected = cells.get("Corrected Name", "").strip() or None
    if verdict == "other" and not corrected:
        return "verdict other needs the species heard in Corrected Name"
    if verdict != "other":
        corrected = None
    return _Wanted(
        line=row.line, begin_path=path, channel=channel, offset_s=offset_s, label=label,
        fingerprint=cells.get("Fingerprint", "").strip() or fingerprint, verdict=verdict,
        corrected_label=corrected, reviewer=cells.get("Reviewer", "").strip() or default_reviewer,
    )


def import_reviews(results: str, path: str | Path, *, reviewer: str,
                   fingerprint: str | None = None, now: datetime | None = None) -> ImportResult:
    """Read verdicts from a selection table into the catalog (see the module docstring)."""
    rows = read_selection_table(path)
    if rows and "Verdict" not in rows[0].cells:
        raise InputError(str(path), "no Verdict column: nothing to import")
    result = ImportResult()
    wanted: list[_Wanted] = []
    for row in rows:
        parsed = _parse(row, reviewer, fingerprint)
        if parsed is None:
            result.blank += 1
        elif isinstance(parsed, str):
            result.problems.append(f"{path}:{row.line}: {parsed}")
        else:
            wanted.append(parsed)
    if not wanted:
        return result
    with CatalogReader(results) as reader:
        matches = reader.query(sql_text("review/match_selections"), [
            [w.line for w in wanted], [w.begin_path for w in wanted], [w.channel for w in wanted],
            [w.offset_s for w in wanted], [w.label for w in wanted],
            [w.fingerprint for w in wanted],
        ]).to_pylist()
        newest = {
            (r["recording_id"], r["config_fingerprint"], r["channel"], r["window_index"], r["label"]):
                (r["verdict"], r["corrected_label"])
            for r in reader.query(sql_text("review/latest_reviews"), [None]).to_pylist()
        }
    by_line: dict[int, list[dict]] = {}
    for m in matches:
        by_line.setdefault(m["line"], []).append(m)
    now = now or datetime.now(timezone.utc)
    new: dict[tuple, ReviewRow] = {}
    lines_of: dict[tuple, int] = {}
    for w in wanted:
        found = by_line.get(w.line, [])
        where = f"{path}:{w.line}"
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
        if key in lines_of:
            result.problems.append(f"{where}: the same detection as line {lines_of[key]}; "
                                   "only the first counts")
            continue
        lines_of[key] = w.line
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
