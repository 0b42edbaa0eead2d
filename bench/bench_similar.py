"""Similarity search over a season's embeddings: the in-memory scan `dawnchorus similar` uses,
against DuckDB scanning the same vectors in SQL, at 1 M windows.

`.venv/bin/python -m bench.bench_similar [--windows 1e6] [--dim 512] [--queries 20] [--out F]`

Writes `--windows` random unit vectors (Gaussian, clustered around 1,000 centres like real calls
of a season) into a real DuckLake catalog through `Catalog.commit_unit`, then measures, in one run:

- load: the vectors through `CatalogReader` into one normalised float32 matrix (what `similar`
  does once per search);
- scan: numpy matrix-vector product + argpartition, top 20, median over `--queries` queries;
- sql: DuckDB's `list_cosine_similarity ... order by ... limit 20` over the lake, one query
  (what a search without loading would cost each time), through the `embedding_vectors` view:
  vectors are stored as float16 BLOBs since schema version 12 and the view decodes them in SQL,
  about 2 ms per 1,024 values, so above SQL_SCAN_MAX_WINDOWS it is not run (None);
- and the ratio sql / scan. HNSW is not built: on this machine it took 403 s for 100 k vectors
  (reference/clap-and-embeddings.md §5), longer than thousands of scans.

512 dimensions are CLAP's (BioLingual, LAION); BirdNET's 1024 double every figure and the memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]

from connectors.catalog import Catalog, CatalogReader
from connectors.catalog.reads import embedding_vectors
from connectors.catalog.vectors import float16_column
from connectors.tables import EMBEDDINGS, UTC_TIME  # noqa: E402
from flows.outputs.similar import normalise_rows, top_matches, vector_matrix  # noqa: E402

COMMIT_ROWS = 50_000
#: The SQL scan decodes every float16 vector in SQL (the embedding_vectors view): minutes past this.
SQL_SCAN_MAX_WINDOWS = 100_000
TOP = 20
SQL_SCAN = """
select recording_id, window_index, list_cosine_similarity(vector, $q) as cosine
from embedding_vectors
where config_fingerprint = $fp
order by cosine desc
limit 20
"""


def season(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32: vectors around 1,000 centres (mean cosine to their centre about 0.7)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, COMMIT_ROWS):
        stop = min(n, start + COMMIT_ROWS)
        which = rng.integers(0, len(centres), stop - start)
        out[start:stop] = centres[which] + rng.standard_normal((stop - start, dim), dtype=np.float32)
    return out


def write(results: Path, vectors: np.ndarray) -> float:
    """Commit the vectors as 3-s windows of 1-minute recordings (20 windows each), in Arrow
    batches of COMMIT_ROWS; seconds."""
    started = time.perf_counter()
    day0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    with Catalog(results) as catalog:
        for start in range(0, len(vectors), COMMIT_ROWS):
            i = np.arange(start, min(len(vectors), start + COMMIT_ROWS))
            table = pa.table({
                "run_id": pa.array(["bench"] * len(i)), "model_id": pa.array(["bench@none"] * len(i)),
                "config_fingerprint": pa.array(["fp"] * len(i)),
                "recording_id": pa.array([f"r{k // 20}" for k in i]),
                "deployment_id": pa.array([f"d{k % 4}" for k in i]),
                "channel": pa.array(np.zeros(len(i), np.int16)),
                "window_index": pa.array((i % 20).astype(np.int32)),
                "offset_s": pa.array(3.0 * (i % 20)),
                "start_utc": pa.array(starts := [day0 + timedelta(seconds=3 * int(k)) for k in i], UTC_TIME),
                "date": pa.array([s.date() for s in starts]),  # the partition key: UTC date
                # as a run stores them since schema version 12: float16 values in a BLOB
                "vector": pa.nulls(len(i), pa.list_(pa.float32())),
                "vector_f16": float16_column(vectors[i]),
            }, schema=EMBEDDINGS.schema)
            catalog.commit_embeddings_table(table)
    return time.perf_counter() - started


def measure(results: Path, dim: int, queries: np.ndarray) -> dict:
    with CatalogReader(results) as reader:
        started = time.perf_counter()
        table = embedding_vectors(reader, config_fingerprint="fp")
        keys = list(zip(table.column("recording_id").to_pylist(), table.column("window_index").to_pylist()))
        matrix = normalise_rows(vector_matrix(table, dim), in_place=True)
        del table
        load_s = time.perf_counter() - started
        scans = []
        for q in queries:
            t = time.perf_counter()
            top_matches(matrix, q, TOP)
            scans.append(time.perf_counter() - t)
        ours = top_matches(matrix, queries[0], TOP)[0]
        sql_s = same = None
        if len(keys) <= SQL_SCAN_MAX_WINDOWS:
            t = time.perf_counter()
            sql_rows = reader.query(SQL_SCAN, {"q": queries[0].tolist(), "fp": "fp"}).to_pylist()
            sql_s = time.perf_counter() - t
            same = [(r["recording_id"], r["window_index"]) for r in sql_rows[:5]]
    return {
        "load_s": load_s, "matrix_gb": matrix.nbytes / 1e9,
        "scan_s_median": statistics.median(scans), "scan_s_min": min(scans), "scan_s_max": max(scans),
        "sql_scan_s": sql_s, "sql_over_scan": sql_s and sql_s / statistics.median(scans),
        "sql_agrees_top5": same and same == [keys[i] for i in ours[:5]],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=float, default=1e6)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    n = int(args.windows)
    vectors = season(n, args.dim)
    queries = vectors[np.random.default_rng(1).integers(0, n, args.queries)] + 0.1
    with tempfile.TemporaryDirectory(prefix="bench-similar-") as tmp:
        write_s = write(Path(tmp) / "res", vectors)
        del vectors
        result = {"windows": n, "dim": args.dim, "queries": args.queries, "write_s": write_s,
                  **measure(Path(tmp) / "res", args.dim, queries)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
