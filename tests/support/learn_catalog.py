"""A catalog with planted embeddings for the learning tests: recordings of 3-s windows whose
every 7th window holds a "call" (a fixed direction in embedding space plus noise), and Raven tables
of examples. Built through `Catalog` directly, without a run (no Ray, no audio)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from connectors.catalog import Catalog
from connectors.tables import EMBEDDINGS, EmbeddingRow, WindowRow, replace
from tests.support.catalog_rows import DAY, recording

FP = "fp-embed"
DIM = 16
WINDOW_S = 3.0
RAVEN_HEADER = ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
                "High Freq (Hz)\tBegin Path\tFile Offset (s)\tAnnotation\n")


def planted_catalog(root: Any, *, recordings: int = 4, windows: int = 40, seed: int = 0,
                    noise: float = 0.6, strength: float = 2.5, undated: int = 0,
                    float32_recordings: int = 0) -> tuple[list, set[tuple[str, int]]]:
    """Recordings of `windows` 3-s windows with embeddings; every 7th window (from 3) holds the
    'call': its vector is a fixed direction plus noise, the others noise around another mean.
    The last `undated` recordings have no start time (their windows no time and no date). The
    first `float32_recordings` keep their vectors as float32 lists, as a catalog written before
    schema version 12 holds them (the writer stores float16 since)."""
    rng = np.random.default_rng(seed)
    call = rng.standard_normal(DIM)
    recs, calls = [], set()
    with Catalog(root) as catalog:
        for r in range(recordings):
            rec = recording(f"rec{r}", f"dep{r % 2}", DAY + timedelta(days=r // 2), windows * WINDOW_S)
            if r >= recordings - undated:
                rec = replace(rec, start_utc=None, time_source="none")
            recs.append(rec)
            catalog.register_recordings([rec], [])
            rows, vectors = [], []
            for i in range(windows):
                start = rec.start_utc + timedelta(seconds=i * WINDOW_S) if rec.start_utc else None
                common = dict(run_id="run-0", config_fingerprint=FP, recording_id=rec.recording_id,
                              deployment_id=rec.deployment_id, channel=0, window_index=i,
                              offset_s=i * WINDOW_S, start_utc=start, date=start and start.date())
                rows.append(WindowRow(**common, start_local=start and start.replace(tzinfo=None),
                                      window_s=WINDOW_S, duration_s=WINDOW_S, status="ok",
                                      padded=False, error=None))
                has_call = i % 7 == 3
                if has_call:
                    calls.add((rec.recording_id, i))
                vector = rng.standard_normal(DIM) * noise + (strength * call if has_call else 1.0)
                vectors.append(EmbeddingRow(**common, model_id="embedder@1", vector=vector.astype(np.float32).tolist()))
            if r < float32_recordings:
                catalog.commit_unit(rows, [])
                store_as_float32(catalog, vectors)
            else:
                catalog.commit_unit(rows, [], vectors)
    return recs, calls


def store_as_float32(catalog: Catalog, rows: list[EmbeddingRow]) -> None:
    """Embeddings as code before schema version 12 wrote them: FLOAT[] in `vector`, NULL
    `vector_f16` (inserted as they are, past the writer that would store them as float16)."""
    table = EMBEDDINGS.to_arrow(rows)
    assert table.column("vector").null_count == 0
    catalog.con.register("_old_embeddings", table)
    try:
        catalog.con.execute("insert into lake.embeddings by name select * from _old_embeddings")
    finally:
        catalog.con.unregister("_old_embeddings")


def raven_table(path: Path, rows: list[tuple[str, float, float, str]]) -> Path:
    lines = [RAVEN_HEADER]
    for n, (uri, begin, end, annotation) in enumerate(rows, start=1):
        lines.append(f"{n}\tSpectrogram 1\t1\t{begin}\t{end}\t500\t8000\t{uri}\t{begin}\t{annotation}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path
