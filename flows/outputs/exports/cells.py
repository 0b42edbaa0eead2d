"""What every export format shares: text cells neutralised for spreadsheets and tab-separated
tables, file names fitted to the file systems exports land on, and the per-recording grouping of
the formats that write one file per recording (Raven, Audacity)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make Excel, LibreOffice and Google Sheets read a cell as a formula
(OWASP, CSV injection)."""
MAX_NAME_BYTES = 255
"""Longest file or folder name (bytes) on the file systems exports are written to."""
NAME_HASH_CHARS = 12


def spreadsheet_text(value: object) -> str:
    """A text cell made safe for spreadsheets: one beginning with a formula trigger gets a leading
    single quote (OWASP's neutralisation; spreadsheets show the text, never run it).

    Only for text: numbers are written as numbers (a negative score or longitude stays -0.1).
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def tab_table_text(value: object) -> str:
    """A text cell of a tab-separated table (Raven, Audacity): a tab, carriage return or line
    break inside it would start a new column or row, so each becomes a space; then
    :func:`spreadsheet_text`."""
    text = "" if value is None else str(value)
    return spreadsheet_text(text.replace("\t", " ").replace("\r", " ").replace("\n", " "))


def fitted_name(name: str, suffix: str = "") -> str:
    """``name + suffix`` as one file name of at most MAX_NAME_BYTES bytes: a longer name is cut
    and ends in ``~`` and the first NAME_HASH_CHARS hex digits of its SHA-256, so the same name
    always gives the same file and two long names sharing a prefix never collide."""
    if len((name + suffix).encode("utf-8")) <= MAX_NAME_BYTES:
        return name + suffix
    tag = "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:NAME_HASH_CHARS]
    room = MAX_NAME_BYTES - len((tag + suffix).encode("utf-8"))
    cut = name.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + tag + suffix


def fitted_path(out_dir: Path, relative: str, suffix: str = "") -> Path:
    """``out_dir / relative + suffix`` with every folder and the file name fitted (fitted_name)."""
    parts = [p for p in relative.split("/") if p]
    *folders, last = parts or [""]
    return out_dir.joinpath(*(fitted_name(f) for f in folders), fitted_name(last, suffix))


def per_recording(detections: list[dict]) -> Iterator[tuple[str, list[dict]]]:
    """Detections grouped by their recording's key below the source root, in key order; each
    group in the order a listener meets them (offset, then channel, then rank)."""
    groups: dict[str, list[dict]] = {}
    for d in detections:
        groups.setdefault(d["object_key"], []).append(d)
    for key in sorted(groups):
        yield key, sorted(groups[key], key=lambda d: (d["offset_s"], d["channel"], d["rank"]))
