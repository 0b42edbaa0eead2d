"""The report's species cards: what was heard, each species with its best detections to hear and see.

A card per species (the `TOP_SPECIES` most detected, analysis `report_species`) names it (common
and scientific), counts its detections and sites, gives its first and last local time, and shows
its `BEST_PER_SPECIES` best detections (analysis `report_best_detections`), each as a spectrogram
thumbnail (PNG) and the window's audio (WAV), both written into the report's own folder, so the
page needs nothing outside it (no network, no server).

Page weight is bounded on any season: at most TOP_SPECIES x BEST_PER_SPECIES clips of one window
each (at most `MAX_CLIP_S`), at most `CLIP_RATE_HZ` mono 16-bit (BirdNET's 3-s windows:
about 130 kB each, 8 MB at most), and a thumbnail of about 15 kB each. The rest of the season is
one query away (`dawnchorus query report_species --param top_species=1000`).

A detection whose recording cannot be read any more (moved, rewritten, unreadable) keeps its row
on the card with the reason instead of the player.
"""

from __future__ import annotations

import html
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from connectors.clips import open_recording, read_span
from connectors.errors import InputError
from flows.review.spectrogram import RANGE_DB, stft_db

log = logging.getLogger(__name__)

#: Species shown as cards, most detected first.
TOP_SPECIES = 20
#: Best detections shown per species.
BEST_PER_SPECIES = 3
#: Clips above this rate are resampled down to it (Nyquist 11 kHz: the band of almost every
#: bird song); clips at or below it keep their rate.
CLIP_RATE_HZ = 22_050
#: A clip is the detection's window, cut to at most this long.
MAX_CLIP_S = 10.0
#: Thumbnail size (pixels) and its spectrogram's shown band.
THUMB_PX = (240, 110)
THUMB_TOP_KHZ = 11.0
CLIPS_DIR = "clips"


@dataclass(frozen=True)
class Clip:
    """One best detection: where it is, its score, and its files under the report folder (None
    with `error` set when the recording could not be read)."""

    site_id: str
    recording_uri: str
    offset_s: float
    end_s: float
    start_local: Any
    score: float
    audio: str | None = None
    thumbnail: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SpeciesCard:
    label: str
    scientific_name: str | None
    detections: int
    sites: str
    first_local: Any
    last_local: Any
    max_score: float
    clips: tuple[Clip, ...] = field(default_factory=tuple)


def build_cards(species_rows: list[dict[str, Any]], best_rows: list[dict[str, Any]], out: Path,
                storage_options: dict[str, Any] | None = None) -> list[SpeciesCard]:
    """Cards from the rows of `report_species` and `report_best_detections`; writes each best
    detection's clip and thumbnail under `out/clips/`."""
    by_species: dict[tuple[str, str | None], list[Clip]] = {}
    if best_rows:
        (out / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    for row in best_rows:
        name = f"{int(row['species_rank']):02d}-{int(row['detection_rank'])}"
        by_species.setdefault((row["label"], row["scientific_name"]), []).append(
            _clip(row, out, name, storage_options))
    missing = [c for clips in by_species.values() for c in clips if c.error]
    if missing:  # one line, not one per clip: a moved source folder would flood the terminal
        log.warning("report: %d of %d clips could not be cut from their recordings (the cards "
                    "say why), e.g. %s", len(missing), len(best_rows), missing[0].error)
    return [
        SpeciesCard(label=r["label"], scientific_name=r["scientific_name"],
                    detections=int(r["detections"]), sites=r["site_ids"] or "",
                    first_local=r["first_local"], last_local=r["last_local"],
                    max_score=float(r["max_score"]),
                    clips=tuple(by_species.get((r["label"], r["scientific_name"]), ())))
        for r in species_rows
    ]


def _clip(row: dict[str, Any], out: Path, name: str, storage_options: dict[str, Any] | None) -> Clip:
    start_s = float(row["offset_s"])
    end_s = min(float(row["end_offset_s"]), start_s + MAX_CLIP_S)
    common = dict(site_id=row["site_id"] or "", recording_uri=row["uri"], offset_s=start_s,
                  end_s=end_s, start_local=row["start_local"], score=float(row["score"]))
    if row.get("withheld"):  # the privacy gate (docs/privacy.md): the reason, not a player
        return Clip(**common, error=row["withheld"])
    try:
        fs, path = open_recording(row["uri"], storage_options)
        span = read_span(fs, path, start_s, end_s, int(row["channel"]), uri=row["uri"])
    except InputError as exc:
        log.info("report: no clip of %s at %.1f s: %s", row["uri"], start_s, exc)
        return Clip(**common, error=str(exc))
    samples, rate_hz = span.samples, span.sample_rate_hz
    if rate_hz > CLIP_RATE_HZ and len(samples):  # down only: never invent a band
        samples, rate_hz = soxr.resample(samples, rate_hz, CLIP_RATE_HZ), CLIP_RATE_HZ
    audio, thumb = f"{CLIPS_DIR}/{name}.wav", f"{CLIPS_DIR}/{name}.png"
    sf.write(out / audio, np.clip(samples, -1.0, 1.0), rate_hz, format="WAV", subtype="PCM_16")
    (out / thumb).write_bytes(thumbnail_png(samples, rate_hz))
    return Clip(**common, audio=audio, thumbnail=thumb)


def thumbnail_png(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """A small spectrogram (0 to THUMB_TOP_KHZ, no axes) of `THUMB_PX` pixels, as PNG bytes."""

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure


    dpi = 100
    figure = Figure(figsize=(THUMB_PX[0] / dpi, THUMB_PX[1] / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_axis_off()
    if len(samples) >= 64:
        db, _, freqs_hz = stft_db(samples, sample_rate_hz)
        shown = freqs_hz <= THUMB_TOP_KHZ * 1000
        db = db[shown]
        top = float(db.max())
        axes.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - RANGE_DB, vmax=top,
                    interpolation="bilinear")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _time(value: Any) -> str:
    """A local time as `YYYY-MM-DD HH:MM:SS` (no zone: the card says times are local)."""
    if value is None:
        return "unknown"
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else str(value)


def cards_html(cards: list[SpeciesCard], empty_reason: str, species_total: int) -> str:
    """The "what was heard" section: one card per species, or the reason there is none."""
    e = html.escape
    if not cards:
        return f'<section id="heard"><h2>What was heard</h2><p class="empty">{e(empty_reason)}</p></section>'
    items = []
    for card in cards:
        clips = "".join(_clip_html(card, c) for c in card.clips)
        scientific = f' <i class="sci">{e(card.scientific_name)}</i>' if card.scientific_name else ""
        items.append(
            f'<article class="card"><h3>{e(card.label)}{scientific}</h3>'
            f'<p class="facts"><b>{card.detections}</b> detection{"s" if card.detections != 1 else ""}'
            f' at {e(card.sites)} · best score {card.max_score:.2f}<br>'
            f'first {e(_time(card.first_local))} · last {e(_time(card.last_local))} (local time)</p>'
            f'<div class="clips">{clips}</div></article>')
    more = ""
    if species_total > len(cards):
        more = (f'<p class="more">The {len(cards)} most detected of {species_total} species. '
                f'All of them: <code>dawnchorus query report_species --results RESULTS '
                f'--param top_species={species_total}</code></p>')
    return (f'<section id="heard"><h2>What was heard</h2>{more}'
            f'<div class="cards">{"".join(items)}</div></section>')


def _clip_html(card: SpeciesCard, clip: Clip) -> str:
    e = html.escape
    where = f"{clip.site_id} · {_time(clip.start_local)} · score {clip.score:.2f}"
    if clip.audio is None:
        return (f'<figure class="clip missing"><figcaption>{e(where)}<br>'
                f'no audio: {e(clip.error or "unreadable")}</figcaption></figure>')
    alt = f"spectrogram of {card.label} at {clip.site_id}, {_time(clip.start_local)}"
    return (f'<figure class="clip"><img src="{e(clip.thumbnail or "")}" alt="{e(alt)}" '
            f'width="{THUMB_PX[0]}" height="{THUMB_PX[1]}">'
            f'<audio controls preload="metadata" src="{e(clip.audio)}"></audio>'
            f'<figcaption>{e(where)}</figcaption></figure>')
