"""The privacy gate on what is served (`docs/privacy.md`): audio of windows marked as human speech.

Marked windows keep their predictions and effort; while the gate is on (the catalog's
`speech_gate` setting, written by every run from `--speech-gate` / `--no-speech-gate`; on when
unset) their audio is never served: the review page refuses it (HTTP 451 with the reason),
report clips show the reason instead of a player, Camtrap DP packages leave out the media of
recordings holding a marked window (and so their observations), and `similar` never returns a
marked window. Each output says how many it withheld.

A span of audio is withheld when it overlaps any marked window of the same recording, whatever
its fingerprint or channel: the review page's window +- 1 s includes a marked neighbour's edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import pyarrow as pa

from connectors.catalog import CatalogReader, reads
from connectors.catalog.reads import SpeechWindow

#: The catalog setting: "on" (also when unset) or "off".
GATE_SETTING = "speech_gate"
#: The review page's answer for withheld audio: 451 Unavailable For Legal Reasons (RFC 7725).
WITHHELD_STATUS = 451
HOW_TO_SERVE = "a run with --no-speech-gate turns the gate off (docs/privacy.md)"


class SpeechWithheld(LookupError):
    """Audio a request asks for holds human speech and the gate is on (HTTP 451)."""


def gate_on(reader: CatalogReader) -> bool:
    return reads.current_setting(reader, key=GATE_SETTING) != "off"


def overlaps(mark: SpeechWindow, start_s: float, end_s: float) -> bool:
    return mark.offset_s < end_s and mark.offset_s + mark.window_s > start_s


def withheld_span(reader: CatalogReader, recording_id: str, start_s: float, end_s: float
                  ) -> SpeechWindow | None:
    """The first marked window overlapping [start_s, end_s) of a recording, if the gate is on."""
    if not gate_on(reader):
        return None
    for mark in reads.speech_windows(reader, recording_ids=[recording_id]):
        if overlaps(mark, start_s, end_s):
            return mark
    return None


def speech_marks_of(reader: CatalogReader, recording_ids: Sequence[str]
                    ) -> dict[str, list[SpeechWindow]]:
    """The marked windows of these recordings, by recording (none when the gate is off)."""
    if not recording_ids or not gate_on(reader):
        return {}
    out: dict[str, list[SpeechWindow]] = {}
    for mark in reads.speech_windows(reader, recording_ids=sorted(set(recording_ids))):
        out.setdefault(mark.recording_id, []).append(mark)
    return out


def check_span(reader: CatalogReader, recording_id: str, start_s: float, end_s: float,
               what: str) -> None:
    """Raise SpeechWithheld, with the reason, when the span may not be served."""
    mark = withheld_span(reader, recording_id, start_s, end_s)
    if mark is not None:
        raise SpeechWithheld(
            f"audio withheld: {what} overlaps a window marked as human speech (recording "
            f"{recording_id}, {mark.offset_s:.1f}-{mark.offset_s + mark.window_s:.1f} s); "
            f"{HOW_TO_SERVE}")


@dataclass
class Withheld:
    """What an output left out under the gate, to say so."""

    on: bool
    marked_windows: set[tuple[str, int]] = field(default_factory=set)  # (recording_id, window_index)
    recordings: set[str] = field(default_factory=set)

    def note(self, left_out: int, what: str) -> str | None:
        if not self.on or not left_out:
            return None
        return (f"{left_out} {what} withheld: human speech (privacy gate); {HOW_TO_SERVE}")


def withheld(reader: CatalogReader, *, config_fingerprint: str | None = None,
             recording_ids: Sequence[str] | None = None,
             deployments: Sequence[str] | None = None) -> Withheld:
    """The marked windows and recordings an output must leave out (none when the gate is off)."""
    if not gate_on(reader):
        return Withheld(on=False)
    marks = reads.speech_windows(reader, config_fingerprint=config_fingerprint,
                                 recording_ids=recording_ids, deployments=deployments)
    return Withheld(on=True, marked_windows={(m.recording_id, m.window_index) for m in marks},
                    recordings={m.recording_id for m in marks})


def marked_positions(keys: Iterable[tuple[str, int, int]], gate: Withheld) -> list[int]:
    """Positions of `keys` (recording_id, channel, window_index) that are marked."""
    return [i for i, (recording_id, _, index) in enumerate(keys)
            if (recording_id, index) in gate.marked_windows]


def mark_withheld_clips(reader: CatalogReader, rows: list[dict]) -> None:
    """Set `withheld` (the reason) on report rows (uri, recording_id, offset_s, end_offset_s)
    whose window overlaps a marked one: the report shows the reason instead of a player."""
    marks = speech_marks_of(reader, [r["recording_id"] for r in rows])
    for row in rows:
        if any(overlaps(m, row["offset_s"], row["end_offset_s"])
               for m in marks.get(row["recording_id"], ())):
            row["withheld"] = f"clip withheld: human speech (privacy gate); {HOW_TO_SERVE}"


def speech_report(reader: CatalogReader, run_id: str) -> pa.Table:
    """The report's table: per deployment, the run's windows checked, marked, not checked, and
    the gate's state."""
    state = "on: marked audio withheld" if gate_on(reader) else "off: marked audio served"
    rows = [{"deployment_id": c.deployment_id, "windows": c.windows,
             "checked": c.windows_checked, "marked_speech": c.windows_marked,
             "not_checked": c.windows_not_checked, "gate": state}
            for c in reads.speech_counts(reader, run_id=run_id)]
    return pa.Table.from_pylist(rows) if rows else pa.table({})
