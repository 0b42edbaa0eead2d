"""Raven Pro selection tables: one tab-separated file per recording, written and read back.

The header is Raven's own columns followed by BirdNET's annotation columns, exactly::

    Selection  View  Channel  Begin Time (s)  End Time (s)  Low Freq (Hz)  High Freq (Hz)
    Common Name  Scientific Name  Confidence  Begin Path  File Offset (s)

`Begin Path` is the recording's URI, so Raven opens the file beside the table; `Begin Time (s)`
is the time within that file (a table holds one recording), equal to `File Offset (s)`, BirdNET's
meaning. Channel 1 is the mono mix (channel 0 in the catalog) or the first channel. Numbers are
written with Python's shortest round-trip form, so a table read back gives the exact values.

A detection of a model that locates calls (BatDetect2; `call_start_s` not NULL) becomes a
selection boxing the call itself: Begin/End Time from the call (seconds from the start of the
file), Low/High Freq (Hz) from the call's frequencies; its File Offset (s) stays its window's
start, so a table read back (`dawnchorus review --import-raven`) still names the window the
verdict is about. A window-level detection (BirdNET, CLAP, NatureLM) spans its window and the
whole band, 0 Hz to the recording's Nyquist frequency, as before.

`write_selection_table` and `read_selection_table` take extra columns (a review's `Verdict`)
after the standard ones, so other tools can add and read theirs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from flows.outputs.exports.cells import fitted_path, per_recording, spreadsheet_text, tab_table_text

COLUMNS = (
    "Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
    "High Freq (Hz)", "Common Name", "Scientific Name", "Confidence", "Begin Path",
    "File Offset (s)",
)
VIEW = "Spectrogram 1"
SUFFIX = ".Table.1.selections.txt"


@dataclass(frozen=True)
class Selection:
    """One row of a selection table."""

    selection: int
    channel: int
    begin_s: float
    end_s: float
    low_hz: float
    high_hz: float
    common_name: str
    scientific_name: str
    confidence: float
    begin_path: str
    file_offset_s: float
    view: str = VIEW
    extra: dict[str, str] = field(default_factory=dict)


def _number(value: float) -> str:
    return repr(float(value))


def write_selection_table(path: Path, selections: Iterable[Selection],
                          extra_columns: Sequence[str] = ()) -> None:
    """Write one table; `extra_columns` follow the standard ones (values from `Selection.extra`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow([*COLUMNS, *extra_columns])
        for s in selections:
            text = tab_table_text  # text cells only: numbers stay numbers
            writer.writerow([
                s.selection, text(s.view), s.channel, _number(s.begin_s), _number(s.end_s),
                _number(s.low_hz), _number(s.high_hz), text(s.common_name), text(s.scientific_name),
                _number(s.confidence), text(s.begin_path), _number(s.file_offset_s),
                *(text(s.extra.get(c, "")) for c in extra_columns),
            ])


def read_selection_table(path: Path) -> list[Selection]:
    """Read a table written here or by Raven; ValueError naming the file and line if malformed.

    Columns beyond the standard ones land in `Selection.extra`.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(header[:len(COLUMNS)]) != COLUMNS:
            raise ValueError(f"{path}: not a selection table with the columns {', '.join(COLUMNS)}")
        extra = header[len(COLUMNS):]
        out = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {reader.line_num}: {len(row)} fields, "
                                 f"expected {len(header)}")
            try:
                text = _unneutralised
                out.append(Selection(
                    selection=int(row[0]), view=text(row[1]), channel=int(row[2]),
                    begin_s=float(row[3]), end_s=float(row[4]), low_hz=float(row[5]),
                    high_hz=float(row[6]), common_name=text(row[7]), scientific_name=text(row[8]),
                    confidence=float(row[9]), begin_path=text(row[10]), file_offset_s=float(row[11]),
                    extra={k: text(v) for k, v in zip(extra, row[len(COLUMNS):])},
                ))
            except ValueError as exc:
                raise ValueError(f"{path}, line {reader.line_num}: {exc}") from None
    return out


def _unneutralised(cell: str) -> str:
    """A text cell as written before `spreadsheet_text` quoted it, so a table read back gives
    the labels and paths that were exported."""
    return cell[1:] if cell.startswith("'") and spreadsheet_text(cell[1:]) == cell else cell


def table_path(out_dir: Path, object_key: str) -> Path:
    """Where a recording's table goes: the source tree mirrored under `out_dir` (a name too long
    for the file system is cut and ends in a hash of it, `flows.exports.fitted_name`)."""
    stem = object_key.rsplit(".", 1)[0] if "." in object_key.rsplit("/", 1)[-1] else object_key
    return fitted_path(out_dir, stem, SUFFIX)


def write_raven(detections: list[dict], out_dir: Path) -> list[Path]:
    """One selection table per recording, from rows of `sql/exports/detections.sql`."""
    written = []
    for key, rows in per_recording(detections):
        selections = [
            Selection(
                selection=i, channel=max(1, int(d["channel"])), **_box(d),
                common_name=d["label"] or "",
                scientific_name=d["scientific_name"] or "", confidence=d["score"],
                begin_path=d["uri"], file_offset_s=d["offset_s"],
            )
            for i, d in enumerate(rows, start=1)
        ]
        path = table_path(out_dir, key)
        write_selection_table(path, selections)
        written.append(path)
    return written


def _box(d: dict) -> dict[str, float]:
    """A detection's selection box: the call's own, or (window-level) its window over the band."""
    if d.get("call_start_s") is not None:
        return {"begin_s": d["call_start_s"], "end_s": d["call_end_s"],
                "low_hz": d["low_freq_hz"], "high_hz": d["high_freq_hz"]}
    return {"begin_s": d["offset_s"], "end_s": d["end_offset_s"], "low_hz": 0.0,
            "high_hz": (d["sample_rate_hz"] or 0) / 2}
