"""Examples of a sound, from where ecologists have them, mapped onto stored windows.

Two sources:

- a **Raven selection table** (`read_raven_examples`): tab-separated, Raven's header; the file
  from `Begin Path` (an absolute path on the annotator's machine, or the recording's URI) or
  `Begin File` (its name); the time within that file from `File Offset (s)` when the table has it,
  else `Begin Time (s)` (Raven's time within the file for a table of one file); `End Time (s)`
  minus `Begin Time (s)` is the selection's length. An annotation column (`--annotation-column`,
  else the first of ANNOTATION_COLUMNS present) names each selection's sound: rows naming the
  label are positives, rows naming another sound are negatives, blank rows are reported and
  skipped. A table without an annotation column holds positives only. Hand-drawn selections
  need no `Confidence`.
- the catalog's **verdicts** (`review_examples`): a detection of the label judged correct is a
  positive, judged wrong a negative; a detection of another label whose reviewer wrote the label
  as the species heard ("other") is a positive.

`map_examples` finds the stored windows (of one embedding fingerprint) each example overlaps: a
window is an example's when it holds at least half of the example (or, for an example longer
than a window, at least half of the window); when none does, the window holding most of it. An
example on a recording the catalog does not know, or that overlaps no analysed window, is
reported, never dropped silently. A window that is both a positive and a negative example counts
as positive (a call beside another sound is still a call).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.errors import InputError

log = logging.getLogger(__name__)

#: Columns that may name a selection's sound, in the order they are looked for.
ANNOTATION_COLUMNS = ("Annotation", "Label", "Class", "Sound", "Species", "Common Name", "Call Type",
                      "Type", "Tags")
#: A window belongs to an example holding at least this fraction of min(example, window).
MIN_OVERLAP_FRACTION = 0.5


@dataclass(frozen=True)
class Example:
    """One labelled span of one recording: a Raven selection or a verdict."""

    source: str  # where it came from, for messages: "table.txt: selection 4", "review abc123"
    path: str  # Begin Path or Begin File as written (or the recording's uri for a verdict)
    begin_s: float  # within the recording
    end_s: float
    channel: int | None  # Raven's numbering (1 = the mono mix or the first channel); None = any
    positive: bool
    recording_id: str | None = None  # known already (verdicts)


@dataclass(frozen=True)
class WindowKey:
    recording_id: str
    channel: int
    window_index: int

    @property
    def text(self) -> str:
        return f"{self.recording_id}|{self.channel}|{self.window_index}"


@dataclass(frozen=True)
class LabelledWindow:
    key: WindowKey
    positive: bool
    source: str


@dataclass
class MappedExamples:
    windows: list[LabelledWindow]  # one per window, positives first
    problems: list[str]  # one line per example that maps to no window

    @property
    def positives(self) -> int:
        return sum(w.positive for w in self.windows)

    @property
    def negatives(self) -> int:
        return sum(not w.positive for w in self.windows)


# ------------------------------------------------------------------------------- Raven tables


def _number(row: dict[str, str], column: str, where: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(where, f"{column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(where, f"{column} {text!r}: expected a time of at least 0 s")
    return value


def read_raven_examples(path: str | Path, label: str, *, annotation_column: str | None = None
                        ) -> tuple[list[Example], list[str]]:
    """The examples of `label` (and negatives) in one selection table, and the rows skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
            header = list(rows[0].keys()) if rows else []
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise InputError(str(path), f"not a tab-separated table: {exc}") from None
    if not rows:
        raise InputError(str(path), "no selections")
    missing = [c for c in ("Begin Time (s)", "End Time (s)") if c not in header]
    if missing:
        raise InputError(str(path), f"not a Raven selection table: no {', '.join(missing)} column")
    file_column = next((c for c in ("Begin Path", "Begin File") if c in header), None)
    if file_column is None:
        raise InputError(str(path), "no Begin Path or Begin File column: which recording each "
                                    "selection is on cannot be told")
    if annotation_column is not None and annotation_column not in header:
        raise InputError(str(path), f"no column {annotation_column!r} (columns: {', '.join(header)})")
    annotation = annotation_column or next((c for c in ANNOTATION_COLUMNS if c in header), None)
    wanted = label.strip().lower()
    examples: list[Example] = []
    skipped: list[str] = []
    for number, row in enumerate(rows, start=1):
        if None in row or any(v is None for v in row.values()):
            raise InputError(str(path), f"selection row {number}: {len(header)} columns expected")
        name = (row.get("Selection") or "").strip() or str(number)
        where = f"{path}: selection {name}"
        begin_s = _number(row, "Begin Time (s)", where)
        end_s = _number(row, "End Time (s)", where)
        if end_s < begin_s:
            raise InputError(where, f"End Time (s) {end_s:g} is before Begin Time (s) {begin_s:g}")
        offset_s = _number(row, "File Offset (s)", where) if "File Offset (s)" in header else begin_s
        file = (row.get(file_column) or "").strip()
        if not file:
            skipped.append(f"{where}: empty {file_column}")
            continue
        channel = None
        if (row.get("Channel") or "").strip():
            try:
                channel = int(row["Channel"])
            except ValueError:
                raise InputError(where, f"Channel {row['Channel']!r} is not a number") from None
        if annotation is None:
            positive = True
        else:
            said = (row.get(annotation) or "").strip()
            if not said:
                skipped.append(f"{where}: empty {annotation}")
                continue
            positive = said.lower() == wanted
        examples.append(Example(where, file, offset_s, offset_s + (end_s - begin_s), channel,
                                positive))
    return examples, skipped


# ------------------------------------------------------------------------------- verdicts


#: How a verdict's example names where it came from: "review REVIEW_ID".
VERDICT_SOURCE = "review "


def from_verdict(source: str) -> bool:
    """Whether an example's (or labelled window's) source is a verdict, not a Raven selection
    (those read "TABLE: selection N")."""
    return source.startswith(VERDICT_SOURCE) and ": selection " not in source


def review_examples(verdicts: Iterable[dict[str, Any]], label: str) -> list[Example]:
    """Examples of `label` from the verdicts that count (rows of `sql/review/latest_reviews`)."""
    wanted = label.strip().lower()
    out = []
    for v in verdicts:
        if v["offset_s"] is None or v["uri"] is None:
            continue  # the recording changed since: its windows are gone
        same = (v["label"] or "").strip().lower() == wanted
        corrected = (v["corrected_label"] or "").strip().lower() == wanted
        if same and v["verdict"] == "correct" or v["verdict"] == "other" and corrected:
            positive = True
        elif same and v["verdict"] in ("wrong", "other"):
            positive = False
        else:
            continue
        begin = float(v["offset_s"])
        out.append(Example(f"{VERDICT_SOURCE}{v['review_id']}", v["uri"], begin, begin + float(v["window_s"]),
                           max(1, int(v["channel"])), positive, recording_id=v["recording_id"]))
    return out


# ------------------------------------------------------------------------------- mapping


class WindowIndex:
    """The stored windows of one embedding fingerprint (the table `reads.learn_embedded_windows`
    gives), by recording, and the recordings by uri and by trailing path parts.

    Held as columns: a season has a million windows, and learning needs Python objects only for
    the windows of the examples' recordings and for the weak negatives drawn (`key`)."""

    def __init__(self, table: pa.Table):
        self._table = table
        self.size = table.num_rows
        encoded = pc.dictionary_encode(table.column("recording_id").combine_chunks())
        self._ids: list[str] = encoded.dictionary.to_pylist()
        self._code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        self._channel = table.column("channel").to_numpy().astype(np.int64)
        self._window = table.column("window_index").to_numpy().astype(np.int64)
        order = np.argsort(self._code, kind="stable")  # by recording, each in the rows' order
        bounds = np.concatenate([[0], np.cumsum(np.bincount(self._code, minlength=len(self._ids)))])
        #: recording_id -> the row positions of its windows, in the rows' order
        self.by_recording: dict[str, np.ndarray] = {
            rid: order[bounds[i]:bounds[i + 1]] for i, rid in enumerate(self._ids)}
        firsts = pa.array(order[bounds[:-1]].astype(np.int64), pa.int64())
        self.uri_of = dict(zip(self._ids, table.column("uri").take(firsts).to_pylist()))
        self.recordings_of_uri = {uri: rid for rid, uri in self.uri_of.items()}

    def windows(self, recording_id: str) -> list[dict[str, Any]]:
        """The rows of one recording's windows, as dicts."""
        return self._table.take(pa.array(self.by_recording[recording_id])).to_pylist()

    def key(self, position: int) -> WindowKey:
        return WindowKey(self._ids[self._code[position]], int(self._channel[position]),
                         int(self._window[position]))

    def position(self, key: WindowKey) -> int | None:
        """The row position of a window, or None when it is not stored."""
        rows = self.by_recording.get(key.recording_id)
        if rows is None:
            return None
        hit = rows[(self._channel[rows] == key.channel) & (self._window[rows] == key.window_index)]
        return int(hit[0]) if len(hit) else None

    def recording(self, path: str) -> tuple[str | None, str]:
        """The recording a Begin Path / Begin File names, or None and why not.

        The uri itself; else the recording whose uri ends with the most trailing parts of the
        path (a Begin Path written on another machine), when exactly one does."""
        if path in self.recordings_of_uri:
            return self.recordings_of_uri[path], ""
        parts = PurePosixPath(path.replace("\\", "/")).parts
        best, score = [], 0
        for uri, rid in self.recordings_of_uri.items():
            theirs = PurePosixPath(uri.split("://", 1)[-1]).parts
            n = 0
            while n < min(len(parts), len(theirs)) and parts[-1 - n] == theirs[-1 - n]:
                n += 1
            if n > score:
                best, score = [rid], n
            elif n == score and n > 0:
                best.append(rid)
        if not best:
            return None, f"no analysed recording named {PurePosixPath(parts[-1]) if parts else path}"
        if len(best) > 1:
            return None, (f"{len(best)} analysed recordings end in {'/'.join(parts[-score:])}; "
                          "give Begin Path with the deployment folder")
        return best[0], ""


def _windows_of(example: Example, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if example.channel is None:
        channels = {min(int(w["channel"]) for w in windows)}
    else:
        channels = {example.channel} | ({0} if example.channel == 1 else set())
    candidates = [w for w in windows if int(w["channel"]) in channels]
    begin, end = example.begin_s, max(example.end_s, example.begin_s + 1e-6)
    overlaps = []
    for w in candidates:
        start, stop = float(w["offset_s"]), float(w["offset_s"]) + float(w["window_s"])
        shared = min(end, stop) - max(begin, start)
        if shared > 0:
            overlaps.append((shared, w))
    if not overlaps:
        return []
    need = MIN_OVERLAP_FRACTION * min(end - begin, float(overlaps[0][1]["window_s"]))
    chosen = [w for shared, w in overlaps if shared >= need - 1e-9]
    return chosen or [max(overlaps, key=lambda o: o[0])[1]]


def map_examples(examples: Sequence[Example], index: WindowIndex, fingerprint: str) -> MappedExamples:
    """Each example's windows (see the module docstring); a problem line for each that has none."""
    labels: dict[WindowKey, LabelledWindow] = {}
    problems: list[str] = []
    for example in examples:
        recording_id = example.recording_id
        if recording_id is None or recording_id not in index.by_recording:
            if recording_id is None:
                recording_id, why = index.recording(example.path)
            else:
                recording_id, why = None, "its recording has no embeddings under this fingerprint"
            if recording_id is None:
                problems.append(f"{example.source}: {example.path}: {why}")
                continue
        windows = _windows_of(example, index.windows(recording_id))
        if not windows:
            problems.append(f"{example.source}: {example.begin_s:g}-{example.end_s:g} s of "
                            f"{index.uri_of[recording_id]} overlaps no analysed window of "
                            f"fingerprint {fingerprint}")
            continue
        for w in windows:
            key = WindowKey(recording_id, int(w["channel"]), int(w["window_index"]))
            if key not in labels or (example.positive and not labels[key].positive):
                labels[key] = LabelledWindow(key, example.positive, example.source)
    ordered = sorted(labels.values(), key=lambda w: (not w.positive, w.key.recording_id,
                                                      w.key.channel, w.key.window_index))
    return MappedExamples(ordered, problems)
