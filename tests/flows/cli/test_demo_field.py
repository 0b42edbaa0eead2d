"""The demo's shipped field recordings: what ships (licences, sizes, labels, layout) and how the
demo decides a labelled species was named right."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import soundfile as sf

from flows.cli.demo_field import RECORDINGS_DIR, lay_out, named_right, shipped_truth

#: "a few MB in all"
MAX_SHIPPED_BYTES = 5_000_000


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _recordings(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg"))


def test_what_ships_is_small_attributed_and_readable():
    recordings = _recordings(RECORDINGS_DIR)
    assert len(recordings) >= 5
    assert sum(p.stat().st_size for p in recordings) <= MAX_SHIPPED_BYTES
    attribution = (RECORDINGS_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for path in recordings:
        assert f"`{path.name}`" in attribution, f"{path.name} has no line in ATTRIBUTION.md"
        info = sf.info(path)
        assert info.frames / info.samplerate >= 5.0, path
    shipped_rows = [line for line in attribution.splitlines() if line.startswith("| `")]
    assert len(shipped_rows) == len(recordings)
    for line in shipped_rows:  # NC, GPL and Apache are named only among what was left out
        for word in ("NonCommercial", "-NC", "GPL", "Apache", "BSD"):
            assert word not in line, f"a shipped file under {word}: {line}"
    for licence in ("public domain", "CC0", "MIT"):
        assert f"**{licence}" in attribution or f"**Licence: {licence}" in attribution, licence


def test_two_deployments_where_and_when_the_recordings_were_made():
    deployments = _rows(RECORDINGS_DIR / "deployments.csv")
    assert len(deployments) == 2
    by_id = {d["deployment_id"]: d for d in deployments}
    # Yellowstone (Wyoming) and Powdermill (Pennsylvania), roughly, in their own zones.
    assert 44 < float(by_id["yellowstone-2024-05"]["latitude"]) < 45.2
    assert -111.2 < float(by_id["yellowstone-2024-05"]["longitude"]) < -109.8
    assert by_id["yellowstone-2024-05"]["timezone"] == "America/Denver"
    assert 39.9 < float(by_id["powdermill-2024-05"]["latitude"]) < 40.4
    assert -79.6 < float(by_id["powdermill-2024-05"]["longitude"]) < -79.0
    assert by_id["powdermill-2024-05"]["timezone"] == "America/New_York"
    for deployment_id, row in by_id.items():
        ZoneInfo(row["timezone"])
        files = _recordings(RECORDINGS_DIR / deployment_id)
        assert files, deployment_id
        for path in files:  # AudioMoth-style UTC names: two dawn mornings per deployment
            assert re.fullmatch(r"2024051[45]_\d{6}", path.stem), path.name
        assert len({p.stem[:8] for p in files}) == 2, deployment_id


def test_the_truth_table_names_shipped_files_and_spans_inside_them():
    truth = shipped_truth()
    species = {row["scientific_name"] for row in truth}
    assert len(species) >= 6
    for row in truth:
        path = RECORDINGS_DIR / row["key"]
        assert path.is_file(), row["key"]
        info = sf.info(path)
        start, duration = float(row["offset_s"]), float(row["duration_s"])
        assert 0 <= start and duration > 0
        assert start + duration <= info.frames / info.samplerate + 0.01, row
        assert row["scientific_name"] and row["label"] and row["source"]


def test_lay_out_copies_the_recordings_and_keeps_mixed_deployments(tmp_path):
    out = tmp_path / "demo"
    source = out / "source"
    source.mkdir(parents=True)
    # what a mixing build (make demo CLIPS=DIR) wrote before
    (source / "deployments.csv").write_text(
        "deployment_id,site_id,latitude,longitude,recorder,timezone\n"
        "mixed-1,mixed,51.0,-1.0,AudioMoth 1.2,Europe/London\n", encoding="utf-8")
    (out / "truth.csv").write_text(
        "key,deployment_id,offset_s,duration_s,scientific_name,label,source\n"
        "mixed-1/20240515_040000.WAV,mixed-1,11.0,4.0,Turdus merula,Eurasian Blackbird,clip.wav\n",
        encoding="utf-8")
    info = lay_out(out)
    assert info.source_root == source
    deployments = [r["deployment_id"] for r in _rows(source / "deployments.csv")]
    assert deployments == ["mixed-1", "yellowstone-2024-05", "powdermill-2024-05"]
    truth = _rows(info.truth_csv)
    assert truth[0]["deployment_id"] == "mixed-1"
    assert len(truth) == 1 + len(shipped_truth())
    for path in _recordings(RECORDINGS_DIR):
        copy = source / path.relative_to(RECORDINGS_DIR)
        assert copy.read_bytes() == path.read_bytes()
    # laid out again (a second `make demo`): nothing doubles
    lay_out(out)
    assert len(_rows(out / "truth.csv")) == len(truth)


def test_named_right_needs_the_species_in_an_overlapping_window_of_the_same_file():
    truth = [
        {"key": "a/1.flac", "offset_s": "3.1", "duration_s": "6.4", "scientific_name": "Pipilo erythrophthalmus",
         "label": "Eastern Towhee"},
        {"key": "a/1.flac", "offset_s": "5.7", "duration_s": "2.7", "scientific_name": "Poecile atricapillus",
         "label": "Black-capped Chickadee"},
        {"key": "b/2.mp3", "offset_s": "0", "duration_s": "24.4", "scientific_name": "Antigone canadensis",
         "label": "Sandhill Crane"},
        {"key": "c/3.WAV", "offset_s": "31.5", "duration_s": "4", "scientific_name": "",
         "label": "synthetic call"},
    ]
    detections = [
        # the towhee: one window before the span (no), one overlapping (yes)
        {"object_key": "a/1.flac", "offset_s": 0.0, "end_offset_s": 3.0,
         "scientific_name": "Pipilo erythrophthalmus", "label": "Eastern Towhee", "score": 0.9},
        {"object_key": "a/1.flac", "offset_s": 3.0, "end_offset_s": 6.0,
         "scientific_name": "Pipilo erythrophthalmus", "label": "Eastern Towhee", "score": 0.61},
        # a chickadee in another file does not count for this one
        {"object_key": "b/2.mp3", "offset_s": 6.0, "end_offset_s": 9.0,
         "scientific_name": "Poecile atricapillus", "label": "Black-capped Chickadee", "score": 0.8},
        {"object_key": "b/2.mp3", "offset_s": 12.0, "end_offset_s": 15.0,
         "scientific_name": "Antigone canadensis", "label": "Sandhill Crane", "score": 0.99},
        {"object_key": "c/3.WAV", "offset_s": 30.0, "end_offset_s": 33.0,
         "scientific_name": "Turdus merula", "label": "Eurasian Blackbird", "score": 0.7},
    ]
    rows = named_right(truth, detections)
    assert [(r["labelled"], r["match"], r["score"], r["windows"]) for r in rows] == [
        ("Eastern Towhee", True, 0.61, 1),
        ("Black-capped Chickadee", False, None, 0),
        ("Sandhill Crane", True, 0.99, 1),
        ("synthetic call", False, None, 0),
    ]
