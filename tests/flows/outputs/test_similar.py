"""`dawnchorus similar`: a planted repeat (one call copied into several recordings of two
deployments, among distractor sounds) is found from one copy, by BirdNET's real embeddings; the
scan itself against a hand-built matrix; the model is refused when it is not the run's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from connectors.catalog import CatalogReader
from connectors.errors import ConfigError
from flows.outputs.exports.raven import read_selection_table
from flows.outputs.similar import (
    EmbeddedRun,
    normalise_rows,
    rebuild_backend,
    span_windows,
    top_matches,
    vector_matrix,
)
from tests.support.synth_audio import audiomoth_comment, audiomoth_name, chirp, fade, noise, place, tone, write_wav

RATE_HZ = 48_000
START = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)


def test_top_matches_ranks_by_cosine_and_leaves_out_the_query_row():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((500, 24)).astype(np.float32)
    query = matrix[7] * 3.0  # the length of the query does not matter
    matrix[100] = matrix[7] * 0.5 + 0.01 * rng.standard_normal(24)  # near copies
    matrix[300] = matrix[7] * 2.0 + 0.02 * rng.standard_normal(24)
    matrix[42] = 0.0  # a zero row is never a match
    unit = normalise_rows(matrix)
    rows, cosines = top_matches(unit, query, 3)
    assert rows.tolist()[0] == 7 and set(rows.tolist()[1:]) == {100, 300}
    assert np.all(np.diff(cosines) <= 0) and cosines[0] == pytest.approx(1.0, abs=1e-6)
    rows, _ = top_matches(unit, query, 2, exclude=[7])
    assert set(rows.tolist()) == {100, 300}
    # The same ranking as sorting every cosine.
    full = np.argsort(-(unit @ (query / np.linalg.norm(query))), kind="stable")[:10]
    assert top_matches(unit, query, 10)[0].tolist() == full.tolist()
    assert len(top_matches(unit, query, 10_000)[0]) == 500


def test_vectors_of_another_width_are_refused_even_when_the_total_fits():
    import pyarrow as pa

    good = pa.table({"vector": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32()))})
    assert vector_matrix(good, 2).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    mixed = pa.table({"vector": pa.array([[1.0], [2.0, 3.0, 4.0]], pa.list_(pa.float32()))})
    with pytest.raises(ConfigError, match="expected vectors of 2 values, got 1-3"):
        vector_matrix(mixed, 2)  # 4 values in all, as two vectors of 2 would have
    assert vector_matrix(good.slice(0, 0), 2).shape == (0, 2)


def test_a_span_is_cut_into_the_runs_windows():
    assert [(w.offset_s, w.duration_s, w.padded) for w in span_windows(2.0, 9.5, 3.0)] == [
        (2.0, 3.0, False), (5.0, 3.0, False), (8.0, 1.5, True)]


def test_the_model_is_refused_when_it_is_not_the_runs(tmp_path):
    settings = '{"source": "s", "results": "r", "model": "birdnet", "model_options": %s}'
    missing = EmbeddedRun("fp", "birdnet-v2.4@sha256:0", 1024, 1,
                          settings % f'{{"model_path": "{tmp_path / "gone.tflite"}"}}')
    with pytest.raises(ConfigError, match="cannot rebuild the model.*gone.tflite"):
        rebuild_backend(missing)
    other = EmbeddedRun("fp", "birdnet-v2.4@sha256:000000000000", 1024, 1, settings % "{}")
    with pytest.raises(ConfigError, match="weights the run used have changed.*000000000000"):
        rebuild_backend(other)


def call() -> np.ndarray:
    """The planted call: three quick up-sweeps, 2 -> 6 kHz."""
    out = np.zeros(int(1.5 * RATE_HZ), np.float32)
    sweep = fade(chirp(2000.0, 6000.0, 0.3, RATE_HZ, amplitude=0.3), 0.02, RATE_HZ)
    for k in range(3):
        out = place(out, sweep, 0.5 * k, RATE_HZ)
    return out


def recording(folder: Path, start: datetime, seed: int, sounds: list[tuple[np.ndarray, float]]) -> Path:
    audio = noise(24.0, RATE_HZ, -50, seed=seed)
    for sound, offset_s in sounds:
        audio = place(audio, sound, offset_s, RATE_HZ)
    folder.mkdir(parents=True, exist_ok=True)
    return write_wav(folder / audiomoth_name(start), audio, RATE_HZ, comment=audiomoth_comment(start))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server", "ray_local")
def test_similar_finds_the_other_copies_of_a_planted_call_first(tmp_path, capsys):
    from flows.cli.main import main

    tonal = fade(tone(1000.0, 2.0, RATE_HZ, amplitude=0.3), 0.05, RATE_HZ)
    down = fade(chirp(8000.0, 3000.0, 1.0, RATE_HZ, amplitude=0.3), 0.05, RATE_HZ)
    src = tmp_path / "src"
    hour = timedelta(hours=1)
    # 3-s windows: the copies sit in window 2 of the first file, 6 of the second, 4 of the third.
    first = recording(src / "dep-a", START, 1, [(call(), 6.7), (tonal, 15.5)])
    second = recording(src / "dep-a", START + hour, 2, [(call(), 18.7), (down, 3.5)])
    third = recording(src / "dep-b", START, 3, [(call(), 12.7), (tonal, 0.5)])
    recording(src / "dep-b", START + hour, 4, [(down, 9.5), (tonal, 21.5)])
    results = tmp_path / "res"
    assert main(["run", "--source", str(src), "--results", str(results), "--window-s", "3",
                 "--embeddings", "--batch-size", "8"]) == 0
    with CatalogReader(results) as reader:
        ids = {r["uri"]: r["recording_id"] for r in reader.query("from recordings").to_pylist()}
        n_windows = reader.query("select count(*) as n from windows where status = 'ok'").to_pylist()
        n_vectors = reader.query("select count(*) as n, min(len(vector)) as d from embedding_vectors").to_pylist()
    assert n_windows == [{"n": 32}] and n_vectors == [{"n": 32, "d": 1024}]  # 4 x 24 s in 3-s windows
    copies = {(ids[str(second)], 6), (ids[str(third)], 4)}
    capsys.readouterr()

    # From the stored window of one copy: the other two copies come first.
    out_dir = tmp_path / "review"
    assert main(["similar", "--results", str(results), "--window", f"{ids[str(first)]}:2",
                 "--top", "2", "--export", "raven", "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    tables = sorted(out_dir.rglob("*.selections.txt"))
    got = {(ids[s.begin_path], int(s.file_offset_s // 3)) for t in tables for s in read_selection_table(t)}
    assert got == copies, printed
    assert "dep-b" in printed and "dep-a" in printed

    # From the clip itself (the model rebuilt from the run's settings): that window, then the others.
    from flows.outputs.similar import similar

    result = similar(str(results), clip=str(first), start_s=6.0, end_s=9.0, top=3)
    ranked = [(h["recording_id"], h["window_index"]) for h in result.hits]
    assert ranked[0] == (ids[str(first)], 2) and result.hits[0]["cosine"] > 0.999
    assert set(ranked[1:]) == copies
    assert result.hits[1]["cosine"] > result.hits[2]["cosine"] > 0
    assert all(h["start_utc"] is not None and h["site_id"] for h in result.hits)
