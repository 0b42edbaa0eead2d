"""`dawnchorus learn` end to end with real audio and BirdNET's real embeddings: a novel sound
(a mechanical knocking, no BirdNET label) planted at known times in field background over three
nights of two deployments, among distractor sounds; five examples from the first night in a
hand-drawn Raven table; learn finds the planted calls of the other nights (precision >= 0.9,
recall >= 0.8). Then a nightly run on a fourth night applies the stored classifier to it alone.

The background is low noise, or, with DAWNCHORUS_TEST_CLIPS set, a real AudioMoth dawn-chorus
soundscape from that folder (opensoundscape's 1-minute test recording) under the noise."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from connectors.catalog import CatalogReader
from tests.support.synth_audio import audiomoth_comment, audiomoth_name, chirp, fade, noise, place, tone, write_wav

RATE_HZ = 48_000
WINDOW_S = 3.0
RECORDING_S = 60.0
START = datetime(2024, 5, 1, 21, 0, tzinfo=timezone.utc)
CALLS_PER_RECORDING = 4
HEADER = ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
          "High Freq (Hz)\tBegin Path\tFile Offset (s)\tAnnotation\n")


def knock(seed: int) -> np.ndarray:
    """The novel sound: eight knocks 70 ms apart, each a 2.4 kHz ring over a click that decays
    in 15 ms, with a 180 Hz hum under the train (0.75 s)."""
    rng = np.random.default_rng(seed)
    out = 0.06 * fade(tone(180.0, 0.75, RATE_HZ, amplitude=1.0), 0.05, RATE_HZ)
    t = np.arange(int(0.05 * RATE_HZ)) / RATE_HZ
    for k in range(8):
        ring = np.exp(-t / 0.015) * (np.sin(2 * np.pi * 2400.0 * t) + 0.5 * rng.standard_normal(t.size))
        out = place(out, (0.25 * ring).astype(np.float32), 0.07 * k, RATE_HZ)
    return out.astype(np.float32)


def distractors() -> list[np.ndarray]:
    bird = np.zeros(int(1.5 * RATE_HZ), np.float32)
    sweep = fade(chirp(2000.0, 6000.0, 0.3, RATE_HZ, amplitude=0.3), 0.02, RATE_HZ)
    for k in range(3):
        bird = place(bird, sweep, 0.5 * k, RATE_HZ)
    return [bird, fade(tone(1000.0, 2.0, RATE_HZ, amplitude=0.3), 0.05, RATE_HZ),
            fade(chirp(8000.0, 3000.0, 1.0, RATE_HZ, amplitude=0.3), 0.05, RATE_HZ)]


def field_background(seed: int) -> np.ndarray:
    audio = noise(RECORDING_S, RATE_HZ, -45, seed=seed)
    clips = os.environ.get("DAWNCHORUS_TEST_CLIPS")
    real = Path(clips) / "opensoundscape_1min.wav" if clips else None
    if real is not None and real.exists():
        import soundfile as sf
        import soxr

        samples, rate = sf.read(real, dtype="float32", always_2d=True)
        samples = soxr.resample(samples.mean(axis=1), rate, RATE_HZ)
        shift = (seed * 7919) % samples.size
        looped = np.resize(np.roll(samples, -shift), audio.size)
        audio = audio + 0.5 * looped.astype(np.float32)
    return audio


def night(src: Path, day: int, truth: dict[str, set[int]]) -> list[Path]:
    """One recording per deployment on night `day`: calls in 4 windows, distractors in 3 others."""
    paths = []
    for d, deployment in enumerate(("dep-a", "dep-b")):
        seed = 100 * day + d
        rng = np.random.default_rng(seed)
        picked = rng.choice(int(RECORDING_S // WINDOW_S), size=CALLS_PER_RECORDING + 3, replace=False)
        calls, others = sorted(picked[:CALLS_PER_RECORDING].tolist()), picked[CALLS_PER_RECORDING:]
        audio = field_background(seed)
        for i, w in enumerate(calls):
            audio = place(audio, knock(seed * 10 + i), w * WINDOW_S + 1.0, RATE_HZ)
        for sound, w in zip(distractors(), others.tolist()):
            audio = place(audio, sound, w * WINDOW_S + 0.5, RATE_HZ)
        start = START + timedelta(days=day)
        folder = src / deployment
        folder.mkdir(parents=True, exist_ok=True)
        path = write_wav(folder / audiomoth_name(start), audio, RATE_HZ, comment=audiomoth_comment(start))
        truth[str(path)] = set(calls)
        paths.append(path)
    return paths


def raven_examples(table: Path, truth: dict[str, set[int]], paths: list[Path], n: int) -> Path:
    """`n` hand-drawn selections of the calls in `paths` (a little wider than each call), as an
    annotator's own Raven table: local paths, no Confidence."""
    rows, number = [HEADER], 0
    for path in paths:
        for w in sorted(truth[str(path)]):
            if number == n:
                break
            number += 1
            begin, end = w * WINDOW_S + 0.9, w * WINDOW_S + 1.85
            rows.append(f"{number}\tSpectrogram 1\t1\t{begin}\t{end}\t150\t6000\t{path}\t{begin}\tknocker\n")
    table.write_text("".join(rows), encoding="utf-8")
    return table


def scored(results: Path, fingerprint: str) -> dict[tuple[str, int], float]:
    with CatalogReader(results) as reader:
        rows = reader.query(
            "select r.uri, p.window_index, p.score from predictions p join recordings r "
            "using (recording_id) where p.config_fingerprint = ?", [fingerprint]).to_pylist()
    return {(r["uri"], r["window_index"]): r["score"] for r in rows}


def precision_recall(scores: dict[tuple[str, int], float], truth: dict[str, set[int]],
                     uris: list[str]) -> tuple[float, float, int]:
    said = {k for k, s in scores.items() if s >= 0.5 and k[0] in uris}
    real = {(u, w) for u in uris for w in truth[u]}
    hits = len(said & real)
    return hits / max(len(said), 1), hits / len(real), len(said)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_learn_finds_a_novel_sound_on_other_nights_from_five_examples(tmp_path, capsys):
    from flows.cli.main import main

    src, results = tmp_path / "src", tmp_path / "res"
    truth: dict[str, set[int]] = {}
    nights = [night(src, day, truth) for day in range(3)]
    run = ["run", "--source", str(src), "--results", str(results), "--window-s", str(WINDOW_S),
           "--embeddings", "--batch-size", "16"]
    assert main(run) == 0
    table = raven_examples(tmp_path / "knocker.Table.1.selections.txt", truth, nights[0], 5)
    capsys.readouterr()
    assert main(["learn", "--results", str(results), "--label", "knocker", "--examples", str(table),
                 "--by", "tester"]) == 0
    printed = capsys.readouterr().out
    assert "examples: 5 positive and 0 negative windows" in printed, printed
    assert "cross-validated" in printed and "applied: 120 windows scored" in printed, printed

    with CatalogReader(results) as reader:
        c = reader.query("select * from classifiers").to_pylist()
    assert len(c) == 1 and c[0]["label"] == "knocker" and c[0]["created_by"] == "tester"
    scores = scored(results, c[0]["config_fingerprint"])
    later = [str(p) for p in nights[1] + nights[2]]
    precision, recall, said = precision_recall(scores, truth, later)
    assert precision >= 0.9 and recall >= 0.8, (precision, recall, said, printed)

    # A fourth night, analysed by the nightly run: the stored classifier scores it, and only it.
    fourth = night(src, 3, truth)
    assert main(run) == 0
    with CatalogReader(results) as reader:
        runs = reader.query("select run_id from runs where flow = 'nightly' "
                            "order by started_at").to_pylist()
        new = reader.query("select p.run_id, r.uri from predictions p join recordings r "
                           "using (recording_id) where p.config_fingerprint = ? group by all",
                           [c[0]["config_fingerprint"]]).to_pylist()
    by_run: dict[str, set[str]] = {}
    for row in new:
        by_run.setdefault(row["run_id"], set()).add(row["uri"])
    assert by_run[runs[-1]["run_id"]] == {str(p) for p in fourth}
    scores = scored(results, c[0]["config_fingerprint"])
    assert len(scores) == 160
    precision, recall, said = precision_recall(scores, truth, [str(p) for p in fourth])
    assert precision >= 0.9 and recall >= 0.8, (precision, recall, said)
