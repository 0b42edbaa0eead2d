"""Raven selection tables: write and read them (tab-separated text, one header line).

The columns are Raven Pro's own (`Selection`, `View`, `Channel`, `Begin Time (s)`, `End Time (s)`,
`Low Freq (Hz)`, `High Freq (Hz)`) followed by annotation columns, in the order BirdNET-Analyzer
v2.4 writes them (`Common Name`, `Scientific Name`, `Confidence`, `Begin Path`, `File Offset (s)`).
In a table over several files, `Begin Time (s)` runs on one timeline of the files placed end to
end (as Raven opens a file sequence); `File Offset (s)` is the start within `Begin Path`.
Any further columns (here: `Verdict`) are annotation columns Raven keeps as they are.

Kept apart from the catalog so that it can join the shared Raven exporter: it knows the format,
not where rows come from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from connectors.errors import InputError

COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
           "High Freq (Hz)", "Common Name", "Scientific Name", "Confidence", "Begin Path",
           "File Offset (s)")
#: What a table must hold for its rows to be found again in the catalog.
REQUIRED_FOR_IMPORT = ("Channel", "Common Name", "Begin Path", "File Offset (s)")
VIEW = "Spectrogram 1"


@dataclass(frozen=True)
class Selection:
    """One row of a selection table (Selection numbers and Begin/End Time are set on writing)."""

    begin_path: str
    file_offset_s: float
    duration_s: float
    channel: int  # Raven numbering: 1..N
    low_freq_hz: float
    high_freq_hz: float
    common_name: str
    scientific_name: str | None
    confidence: float | None
    extra: dict[str, str] = field(default_factory=dict)  # annotation column -> text


def _cell(value: object) -> str:
    """A cell's text: tabs and line breaks would split it, so they become spaces."""
    return re.sub(r"[\t\r\n]", " ", str(value))


def _number(value: float, places: int = 6) -> str:
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def write_selection_table(path: str | Path, selections: Sequence[Selection],
                          file_durations_s: dict[str, float], extra_columns: Sequence[str] = ()
                          ) -> int:
    """Write `selections` (in order) as one table; returns the rows written.

    `file_durations_s` gives each Begin Path's length, for the files-end-to-end timeline; files
    are placed in the order they first appear.
    """
    starts: dict[str, float] = {}
    elapsed = 0.0
    for s in selections:
        if s.begin_path not in starts:
            starts[s.begin_path] = elapsed
            elapsed += file_durations_s[s.begin_path]
    lines = ["\t".join([*COLUMNS, *extra_columns])]
    for number, s in enumerate(selections, start=1):
        begin = starts[s.begin_path] + s.file_offset_s
        cells = [
            number, VIEW, s.channel, _number(begin), _number(begin + s.duration_s),
            _number(s.low_freq_hz, 1), _number(s.high_freq_hz, 1), s.common_name,
            s.scientific_name or "", "" if s.confidence is None else _number(s.confidence, 4),
            s.begin_path, _number(s.file_offset_s), *(s.extra.get(c, "") for c in extra_columns),
        ]
        lines.append("\t".join(_cell(c) for c in cells))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(selections)


@dataclass(frozen=True)
class TableRow:
    """One row read back: its line number in the file and its cells by column name."""

    line: int
    cells: dict[str, str]


def read_selection_table(path: str | Path, required: Iterable[str] = REQUIRED_FOR_IMPORT
                         ) -> list[TableRow]:
    """The rows of a selection table; InputError naming the file for one that is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(str(path), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read it as UTF-8 text: {exc}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError(str(path), "empty file: expected a Raven selection table header")
    header = [h.strip() for h in lines[0].split("\t")]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(str(path), f"not a selection table these rows can be found from: no "
                                    f"{', '.join(repr(m) for m in missing)} column (tab-separated)")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = line.split("\t")
        cells = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
        rows.append(TableRow(number, cells))
    return rows
