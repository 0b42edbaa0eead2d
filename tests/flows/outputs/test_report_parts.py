"""The report's parts without a run: clips and thumbnails cut from a real file, a recording that is
gone, counters as tables (never a dict's text), empty states that say why."""

from __future__ import annotations

import logging
import struct
from datetime import datetime

import numpy as np
import soundfile as sf

from flows.outputs.report import counter_tables, empty_reason, heard_headline, html_table
from flows.outputs.report_cards import CLIP_RATE_HZ, THUMB_PX, build_cards, cards_html


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _species(label, detections=2):
    return {"label": label, "scientific_name": f"{label} sci", "detections": detections,
            "site_ids": "marsh", "first_local": datetime(2024, 5, 15, 5, 30),
            "last_local": datetime(2024, 5, 16, 5, 31), "max_score": 0.9, "species_total": 2}


def _best(label, uri, rank, offset_s=3.0, end_s=6.0):
    return {"species_rank": 1, "detection_rank": rank, "label": label,
            "scientific_name": f"{label} sci", "site_id": "marsh", "uri": uri, "channel": 0,
            "offset_s": offset_s, "end_offset_s": end_s, "start_local": datetime(2024, 5, 15, 5, 30, 3),
            "score": 0.9}


def test_a_clip_is_the_window_downsampled_with_its_thumbnail(tmp_path):
    rate = 48_000
    t = np.arange(10 * rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 3000 * t) * ((t >= 3) & (t < 6))).astype(np.float32)  # (S,)
    wav = tmp_path / "rec.wav"
    sf.write(wav, np.stack([tone, tone], axis=1), rate)  # stereo: the clip takes the mean
    cards = build_cards([_species("wren")], [_best("wren", str(wav), 1)], tmp_path / "out")
    clip = cards[0].clips[0]
    assert clip.error is None and clip.audio == "clips/01-1.wav"
    samples, clip_rate = sf.read(tmp_path / "out" / clip.audio)
    assert clip_rate == CLIP_RATE_HZ and samples.ndim == 1
    assert abs(len(samples) / clip_rate - 3.0) < 0.01  # the window, 3..6 s
    assert 0.3 < np.sqrt(np.mean(samples ** 2)) < 0.4  # the tone (RMS 0.35), not the silence
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.fft.rfftfreq(len(samples), 1 / clip_rate)[np.argmax(spectrum)] - 3000) < 5
    assert _png_size((tmp_path / "out" / clip.thumbnail).read_bytes()) == THUMB_PX
    page = cards_html(cards, "unused", species_total=1)
    assert 'src="clips/01-1.wav"' in page and 'src="clips/01-1.png"' in page and "<audio" in page


def test_a_recording_that_is_gone_keeps_its_row_with_the_reason(tmp_path, caplog):
    rows = [_best("wren", str(tmp_path / f"gone-{i}.wav"), i) for i in (1, 2, 3)]
    with caplog.at_level(logging.INFO, logger="flows.outputs.report_cards"):
        cards = build_cards([_species("wren", 3)], rows, tmp_path / "out")
    assert [c.audio for c in cards[0].clips] == [None, None, None]
    assert all("file not found" in c.error for c in cards[0].clips)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "3 of 3 clips" in warnings[0].getMessage()  # one line, not three
    page = cards_html(cards, "unused", species_total=1)
    assert "no audio: " in page and "<audio" not in page


def test_more_species_than_cards_says_how_to_see_them_all():
    page = cards_html(build_cards([_species("wren")], [], None), "unused", species_total=57)
    assert "The 1 most detected of 57 species" in page and "top_species=57" in page


def test_counters_are_tables_never_dict_text():
    counts = {
        "recordings_new": 8, "paths_skipped": {"not_audio": 2, "link": 1},
        "catalog_maintenance": {"before": {"files": 21, "bytes": 4096},
                                "after": {"files": 3, "bytes": 2048}, "tables_merged": 4},
        "cascade": [{"stage": "verify", "units_uncommitted": 0}],
        "report": "/r/index.html",
    }
    tables = dict(counter_tables(counts))
    plain = tables["run counters"].to_pylist()
    assert {"counter": "paths skipped", "value": "not audio: 2, link: 1"} in plain
    assert {"counter": "catalog maintenance: tables merged", "value": "4"} in plain
    assert tables["catalog maintenance"].to_pylist() == [
        {"": "before", "files": 21, "bytes": 4096}, {"": "after", "files": 3, "bytes": 2048}]
    assert tables["cascade"].to_pylist() == [{"stage": "verify", "units uncommitted": "0"}]
    page = "".join(html_table(t) for t in tables.values())
    assert "{" not in page and "[" not in page


def test_empty_states_and_the_headline_say_why():
    counts = {"threshold": 0.5, "windows_analysed": 40, "above_threshold": 0, "below_threshold": 12,
              "detections": 0, "species": 0, "sites": 0, "species_hidden": 0}
    assert empty_reason(counts) == "no detections above the threshold of 0.5; 12 below it"
    hidden = {**counts, "above_threshold": 5, "species_hidden": 2}
    assert empty_reason(hidden).startswith("no detections shown: 5 answers reach the threshold of 0.5")
    assert empty_reason(None) == "no windows analysed yet under this run's model and settings"
    assert empty_reason({**counts, "windows_analysed": 0}).startswith("no windows analysed")
    heard = {**counts, "detections": 45, "species": 14, "sites": 2, "species_hidden": 3}
    assert heard_headline(heard) == ("45 detections of 14 species at 2 sites, threshold 0.5; "
                                     "3 species hidden by the species filters")
    assert heard_headline({**heard, "detections": 1, "species": 1, "sites": 1, "species_hidden": 0}) \
        == "1 detection of 1 species at 1 site, threshold 0.5"
