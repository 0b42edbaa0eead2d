"""The report's "QC per deployment and night" table (the `qc_by_night` analysis): how much of
the analysed audio was silent, had dropouts or was clipped, so a night without detections can be
told from a night that could not have had any (`docs/effort.md`, "Quality per window")."""

from __future__ import annotations

import html

import pyarrow as pa

TITLE = "QC per deployment and night"
NOTE = ("Analysed windows by quality verdict: silent (RMS below -80 dBFS: a dead microphone), "
        "dropout (exact zeros for 50 ms or more: card errors), clipped (1 % of frames or more at "
        "full scale: wind, rain on the microphone). The effort table above leaves these windows, "
        "and their detections, out (qc=exclude); windows not measured were analysed before "
        "quality was measured and count as effort. Thresholds: docs/effort.md.")
EMPTY = "no analysed windows"


def qc_markdown(table: pa.Table, markdown_table) -> str:
    """The summary.md section; `markdown_table` is the report's own table writer."""
    return f"## {TITLE}\n\n{NOTE}\n\n{markdown_table(table)}\n"


def qc_html(table: pa.Table, html_table) -> str:
    """The index.html section; `html_table` is the report's own table writer."""
    return (f'<section id="qc"><h2>{html.escape(TITLE)}</h2>\n<p>{html.escape(NOTE)}</p>\n'
            f"{html_table(table, empty=EMPTY)}\n</section>\n")
