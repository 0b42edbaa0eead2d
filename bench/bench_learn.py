"""`dawnchorus learn` at scale: training time and apply time over a season of stored embeddings.

`.venv/bin/python -m bench.bench_learn [--windows 1e5] [--dim 1024] [--out F]`

Writes `--windows` vectors (bench_similar's clustered season) with their effort rows into a
real DuckLake catalog, five examples of one cluster as a Raven table, then measures:

- train_s: `learn(..., apply=False)`: reading the windows, mapping the examples, drawing 2000
  weak negatives, reading their vectors, 5-fold cross-validation and the final fit, storing the
  classifiers row;
- apply_s: `apply_classifier`: reading every vector with its window row, scoring, committing
  windows and predictions under the classifier's fingerprint (batches of 100 000 windows);
- apply_windows_per_s and the catalog's bytes per stored window before and after applying.

The goals of issue 20 are train < 10 s and apply < 5 s at 1 M windows on 2 cores; a 1 M x 1024
season is 4 GB of float32 in memory at once for the writer here, so the default is 1e5 and
the figures per window say what 1 M would take.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.bench_similar import COMMIT_ROWS, season
from connectors.catalog import Catalog
from connectors.catalog.vectors import float16_column
from connectors.tables import EMBEDDINGS, PREDICTIONS, UTC_TIME, WINDOWS, RecordingRow
from flows.outputs.learn import apply_classifier, learn

DAY0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
PER_RECORDING = 20  # 3-s windows of 1-minute recordings


def write(results: Path, vectors: np.ndarray) -> float:
    started = time.perf_counter()
    n = len(vectors)
    with Catalog(results) as catalog:
        catalog.register_recordings([RecordingRow(
            recording_id=f"r{k}", deployment_id=f"d{k % 4}", uri=f"/audio/d{k % 4}/r{k}.wav",
            object_key=f"d{k % 4}/r{k}.wav", size_bytes=1, etag=None, mtime=None, duration_s=60.0,
            frames=60 * 48_000, sample_rate_hz=48_000, channels=1, format="WAV", subtype="PCM_16",
            start_utc=DAY0 + timedelta(minutes=k), tz_name="UTC", time_source="filename",
            tz_source="filename", status="ok", error=None, run_id="bench", discovered_at=DAY0)
            for k in range((n + PER_RECORDING - 1) // PER_RECORDING)], [])
        for start in range(0, n, COMMIT_ROWS):
            i = np.arange(start, min(n, start + COMMIT_ROWS))
            m = len(i)
            starts = [DAY0 + timedelta(minutes=int(k) // PER_RECORDING, seconds=3 * (int(k) % PER_RECORDING))
                      for k in i]
            common = {
                "run_id": pa.array(["bench"] * m), "config_fingerprint": pa.array(["fp"] * m),
                "recording_id": pa.array([f"r{k // PER_RECORDING}" for k in i]),
                "deployment_id": pa.array([f"d{(k // PER_RECORDING) % 4}" for k in i]),
                "channel": pa.array(np.zeros(m, np.int16)),
                "window_index": pa.array((i % PER_RECORDING).astype(np.int32)),
                "offset_s": pa.array(3.0 * (i % PER_RECORDING)),
                "start_utc": pa.array(starts, UTC_TIME),
                "date": pa.array([s.date() for s in starts]),  # the partition key: UTC date
            }
            windows = WINDOWS.conform({
                **{k: common[k] for k in ("run_id", "config_fingerprint", "recording_id",
                                          "deployment_id", "channel", "window_index", "offset_s")},
                "window_s": pa.array([3.0] * m), "duration_s": pa.array([3.0] * m),
                "start_utc": common["start_utc"],
                "start_local": pa.array([s.replace(tzinfo=None) for s in starts], pa.timestamp("us")),
                "date": common["date"], "status": pa.array(["ok"] * m),
                "padded": pa.array([False] * m), "error": pa.array([None] * m, pa.string()),
            })
            catalog.commit_tables(windows, PREDICTIONS.schema.empty_table())
            catalog.commit_embeddings_table(pa.table({
                "run_id": common["run_id"], "model_id": pa.array(["bench@none"] * m),
                **{k: common[k] for k in ("config_fingerprint", "recording_id", "deployment_id",
                                          "channel", "window_index", "offset_s", "start_utc", "date")},
                # as a run stores them since schema version 12: float16 values in a BLOB
                "vector": pa.nulls(m, pa.list_(pa.float32())),
                "vector_f16": float16_column(vectors[i]),
            }, schema=EMBEDDINGS.schema))
    return time.perf_counter() - started


def data_bytes(results: Path) -> int:
    return sum(p.stat().st_size for p in (results / "data").rglob("*.parquet"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=float, default=1e5)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    n = int(args.windows)
    vectors = season(n, args.dim)
    # Five examples: windows of the cluster nearest window 0, by cosine.
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    examples = np.argsort(-(unit[: min(n, 20_000)] @ unit[0]))[:5]
    del unit
    with tempfile.TemporaryDirectory(prefix="bench-learn-") as tmp:
        results = Path(tmp) / "res"
        write_s = write(results, vectors)
        del vectors
        before = data_bytes(results)
        table = Path(tmp) / "examples.txt"
        table.write_text("Selection\tBegin Time (s)\tEnd Time (s)\tBegin Path\tAnnotation\n" + "".join(
            f"{j + 1}\t{3.0 * (k % PER_RECORDING) + 1}\t{3.0 * (k % PER_RECORDING) + 2}\t"
            f"/audio/d{(k // PER_RECORDING) % 4}/r{k // PER_RECORDING}.wav\tbench\n"
            for j, k in enumerate(examples.tolist())), encoding="utf-8")
        t = time.perf_counter()
        trained = learn(str(results), "bench", examples=[str(table)], by="bench", apply=False)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        with Catalog(results) as catalog:
            applied = apply_classifier(catalog, trained.classifier, "bench-apply")
        apply_s = time.perf_counter() - t
        after = data_bytes(results)
    result = {
        "windows": n, "dim": args.dim, "write_s": write_s, "train_s": train_s,
        "positives": trained.classifier.n_positive,
        "weak_negatives": trained.classifier.n_weak_negative,
        "cv_roc_auc": trained.classifier.cv_roc_auc, "apply_s": apply_s,
        "applied_windows": applied.windows, "apply_windows_per_s": applied.windows / apply_s,
        "bytes_per_window_before": before / n, "bytes_per_window_added": (after - before) / n,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
