"""What storing embeddings as float16 would do, measured on a catalog's own vectors.

`.venv/bin/python -m bench.bench_float16 --results R [--fingerprint FP] [--out F]`

Rounds every stored vector of one fingerprint to float16 (perch-hoplite's storage type) and
compares, against the float32 vectors dawnchorus stores:

- search (`similar`): for every window as the query, the top-10 neighbours by cosine; the mean
  overlap of the two top-10 sets, how often the nearest neighbour is the same, and the largest
  change of a cosine;
- training (`learn`): for each of the most detected labels, a classifier from the windows where
  the model detected it (positives) and the rest (weak negatives), trained on each; the largest
  change of a probability, and how many windows change side of 0.5;
- storage: Parquet bytes per vector (zstd) of the float32 lists, of float16 values, and of
  float16 BLOBs (one per vector: what the catalog stores since schema version 12).

On a catalog written since schema version 12 the vectors are float16 already (`stored_float16`
counts them), so the comparison there is of float16 with itself.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.catalog import CatalogReader, reads
from connectors.catalog.vectors import float16_column, vector_matrix
from flows.outputs.learn import fit_logistic, probabilities
from flows.outputs.similar import choose_run, embedded_runs, normalise_rows, top_matches

TOP = 10
LABELS = 3


def parquet_bytes(column: pa.Array) -> int:
    sink = io.BytesIO()
    pq.write_table(pa.table({"v": column}), sink, compression="zstd")
    return sink.tell()


def search(unit32: np.ndarray, unit16: np.ndarray) -> dict:
    overlap, same_first, worst = [], 0, 0.0
    for q in range(len(unit32)):
        a, ca = top_matches(unit32, unit32[q], TOP, exclude=[q])
        b, _ = top_matches(unit16, unit16[q], TOP, exclude=[q])
        overlap.append(len(set(a.tolist()) & set(b.tolist())) / max(1, len(a)))
        same_first += int(len(a) > 0 and a[0] == b[0])
        worst = max(worst, float(np.max(np.abs(ca - (unit16[a] @ unit16[q])))) if len(a) else 0.0)
    return {"queries": len(unit32), "top10_overlap_mean": float(np.mean(overlap)),
            "top10_overlap_min": float(np.min(overlap)), "nearest_same": same_first / len(unit32),
            "max_cosine_change": worst}


def training(v32: np.ndarray, v16: np.ndarray, labels: list[set[int]], names: list[str]) -> list[dict]:
    out = []
    for name, positives in zip(names, labels):
        target = np.array([int(i in positives) for i in range(len(v32))])
        weak = target == 0
        p32 = probabilities(v32, *fit_logistic(v32, target, weak))
        p16 = probabilities(v16, *fit_logistic(v16, target, weak))
        out.append({"label": name, "positives": len(positives),
                    "max_probability_change": float(np.max(np.abs(p32 - p16))),
                    "windows_changing_side": int(np.sum((p32 >= 0.5) != (p16 >= 0.5)))})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--fingerprint")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with CatalogReader(args.results) as reader:
        run = choose_run(embedded_runs(reader), args.fingerprint, args.results)
        table = reads.embedding_vectors(reader, config_fingerprint=run.fingerprint)
        detected = reader.query(  # what the model detected there: the labels to train on
            "select recording_id, channel, window_index, label from detections "
            "where config_fingerprint = ?", [run.fingerprint]).to_pylist()
    # The vectors as stored: a catalog written before schema version 12 holds float32 (what this
    # compares against); a newer one float16 already, so both sides are the same numbers there.
    stored_f16 = table.num_rows - table.column("vector_f16").null_count
    v32 = vector_matrix(table, run.dim)  # (N, D)
    v16 = v32.astype(np.float16).astype(np.float32)
    row = {(r, c, w): i for i, (r, c, w) in enumerate(zip(*(table.column(k).to_pylist() for k in
                                                             ("recording_id", "channel", "window_index"))))}
    by_label: dict[str, set[int]] = {}
    for d in detected:
        i = row.get((d["recording_id"], d["channel"], d["window_index"]))
        if i is not None:
            by_label.setdefault(d["label"], set()).add(i)
    names = sorted(by_label, key=lambda k: (-len(by_label[k]), k))[:LABELS]
    result = {
        "fingerprint": run.fingerprint, "model_id": run.model_id, "windows": table.num_rows,
        "dim": run.dim, "stored_float16": stored_f16,
        "search": search(normalise_rows(v32), normalise_rows(v16)),
        "training": training(v32, v16, [by_label[n] for n in names], names),
        "parquet_bytes_per_vector": {
            "float32_list": parquet_bytes(pa.ListArray.from_arrays(
                pa.array(np.arange(0, v32.size + 1, run.dim, dtype=np.int32)),
                pa.array(v32.reshape(-1)))) / table.num_rows,
            "float16": parquet_bytes(pa.array(v32.astype(np.float16).reshape(-1))) / table.num_rows,
            "float16_blob": parquet_bytes(float16_column(v32)) / table.num_rows,
        },
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return result


if __name__ == "__main__":
    main()
