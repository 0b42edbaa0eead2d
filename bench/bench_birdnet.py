"""BirdNET backend throughput: chunk batching, and where an end-to-end 10-s window's time goes.

Run: `.venv/bin/python -m bench.bench_birdnet [--windows 32] [--rounds 3]`. Prints a table and
writes `bench/results/birdnet.json`. Measured side by side in one run, on the same synthetic audio
(-40 dBFS noise with 2->4 kHz sweeps):

1. windows/s of `BirdNETBackend.predict` (tasks detect + classify) on 10-s windows at 48 kHz, with
   ``chunk_batch_size`` 1 (one 3-s chunk per interpreter call) against 16 (pooled chunks), handed
   ``--batch-windows`` windows per call as the pipeline's model stage is;
2. end to end per 10-s window through the pipeline's own stage functions without Ray:
   `flows.pipeline.ray_engine.decode_unit` (seek, read, mix, resample, cut) then `flows.pipeline.ray_engine.Predictor`
   (the model actor's __call__ on a numpy batch), on a 48 kHz mono WAV (no resampling) and a
   44.1 kHz stereo FLAC (mean + resampling), with decode alone and inference alone timed too.

3. the runtimes (issue 24), on native 3-s windows, ``--batch-windows`` per call: LiteRT's whole
   model (the reference) against the split runtime (numpy front end + the cut CNN) with each CNN
   engine, and the cost of embeddings: `predict_and_embed` (one pass) and `predict` then `embed`
   (two passes, what `--embeddings` did before) over `predict` alone.

Methods are interleaved round by round and each keeps its fastest round, so a burst of load on
the shared machine cannot favour one side of a ratio. LiteRT uses `--threads` threads (default:
every core), the backend's own default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from bench.bench_decode import load_average, synth_chunk, write_recording  # noqa: E402
from connectors.audio import plan_windows  # noqa: E402
from flows.pipeline.stages import DecodeOptions, Predictor, decode_unit  # noqa: E402
from connectors.storage import object_version  # noqa: E402
from fsspec.implementations.local import LocalFileSystem  # noqa: E402
from naturelm_core.birdnet.backend import CHUNK_SAMPLES, SAMPLE_RATE_HZ, BirdNETBackend, chunk_starts  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "birdnet.json"
WINDOW_S = 10.0
TASKS = ("detect", "classify")
E2E_FILES = (  # (name, sample rate, channels, libsndfile format)
    ("mono48k.wav", 48_000, 1, "WAV"),
    ("stereo44k.flac", 44_100, 2, "FLAC"),
)


def synthetic_windows(n_windows: int) -> np.ndarray:
    """(n_windows, 480000) float32: consecutive 10-s windows of the synthetic recording."""
    window_samples = round(WINDOW_S * SAMPLE_RATE_HZ)
    audio = synth_chunk(0, n_windows * window_samples, SAMPLE_RATE_HZ, 1)  # (F, 1)
    return audio.reshape(n_windows, window_samples)  # (B, 480000)


def predict_all(backend: BirdNETBackend, audio: np.ndarray, batch_windows: int) -> int:
    """Predictions for every window, `batch_windows` per call; returns how many answers."""
    valid = np.full(len(audio), audio.shape[1], np.int64)
    answers = 0
    for first in range(0, len(audio), batch_windows):
        batch = slice(first, first + batch_windows)
        answers += len(backend.predict(audio[batch], valid[batch], TASKS))
    return answers


def make_units(path: Path, duration_s: float, batch_windows: int) -> list[dict]:
    """Units of `batch_windows` consecutive windows, shaped as `flows.pipeline.plan.Unit.as_item` ships them."""
    specs = plan_windows(duration_s, WINDOW_S, tail="pad")
    size_bytes, version_tag = object_version(LocalFileSystem(), str(path))
    units = []
    for first in range(0, len(specs), batch_windows):
        span = specs[first : first + batch_windows]
        units.append({
            "unit_id": f"{path.name}:{first}", "uri": str(path), "path": str(path), "channels": [0],
            "size_bytes": size_bytes, "version_tag": version_tag,
            "windows": [[s.index, s.offset_s, s.duration_s, s.padded] for s in span],
        })
    return units


def as_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """Decoded rows as the numpy column batch Ray Data hands the model stage."""
    return {
        "unit_id": np.array([r["unit_id"] for r in rows], dtype=object),
        "window_index": np.array([r["window_index"] for r in rows], np.int64),
        "channel": np.array([r["channel"] for r in rows], np.int64),
        "status": np.array([r["status"] for r in rows], dtype=object),
        "error": np.array([r["error"] for r in rows], dtype=object),
        "valid_samples": np.array([r["valid_samples"] for r in rows], np.int64),
        "duration_s": np.array([r["duration_s"] for r in rows], np.float64),
        "padded": np.array([r["padded"] for r in rows], bool),
        "audio": np.stack([r["audio"] for r in rows]),  # (B, 480000)
    }


def runtime_methods(windows: np.ndarray, batch_windows: int, threads: int | None) -> dict[str, Callable[[], object]]:
    """Timed callables of the runtimes section over native (N, 144000) windows."""
    from naturelm_core.birdnet.split import CNN_ENGINES, openvino_available

    backends = {"litert": BirdNETBackend(runtime="litert", num_threads=threads)}
    for engine in CNN_ENGINES:
        if engine != "openvino" or openvino_available():
            backends[f"split-{engine}"] = BirdNETBackend(runtime="split", cnn_engine=engine, num_threads=threads)
    valid = np.full(len(windows), windows.shape[1], np.int64)
    default = next(name for name in backends if name.startswith("split-"))

    def over_batches(call: Callable[[np.ndarray, np.ndarray], object]) -> Callable[[], object]:
        def run() -> None:
            for first in range(0, len(windows), batch_windows):
                call(windows[first : first + batch_windows], valid[first : first + batch_windows])
        return run

    methods = {f"{name}:predict": over_batches(lambda a, v, b=b: b.predict(a, v, TASKS))
               for name, b in backends.items()}
    for name in ("litert", default):
        b = backends[name]
        methods[f"{name}:predict_and_embed"] = over_batches(lambda a, v, b=b: b.predict_and_embed(a, v, TASKS))
        methods[f"{name}:predict_then_embed"] = over_batches(
            lambda a, v, b=b: (b.predict(a, v, TASKS), b.embed(a, v)))
    for b in backends.values():  # warm-up: allocation at this batch size, first-call costs
        b.predict_and_embed(windows[:batch_windows], valid[:batch_windows], TASKS)
    return methods


def summarize_runtimes(best: dict[str, float], n_windows: int) -> dict:
    """Figures of the runtimes section from each method's fastest round."""
    names = sorted({k.split(":")[0] for k in best})
    default = "split-openvino" if "split-openvino:predict" in best else "split-litert"
    out: dict = {
        "ms_per_3s_window": {n: 1e3 * best[f"{n}:predict"] / n_windows for n in names},
        "over_litert": {n: best["litert:predict"] / best[f"{n}:predict"] for n in names if n != "litert"},
        "default": default,
    }
    for n in ("litert", default):
        out[f"{n}_embeddings_overhead_one_pass"] = best[f"{n}:predict_and_embed"] / best[f"{n}:predict"] - 1
        out[f"{n}_embeddings_overhead_two_passes"] = best[f"{n}:predict_then_embed"] / best[f"{n}:predict"] - 1
    out["embeddings_overhead"] = out[f"{default}_embeddings_overhead_one_pass"]
    return out


def _model_id() -> str:
    from naturelm_core.birdnet.backend import BIRDNET_MODEL_FILE
    from naturelm_core.birdnet.split import file_sha256
    from naturelm_core.labels import birdnet_asset

    return f"birdnet-v2.4@sha256:{file_sha256(birdnet_asset(BIRDNET_MODEL_FILE))[:12]}"


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=32, help="10-s windows per measured pass")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats; the fastest counts")
    parser.add_argument("--batch-windows", type=int, default=16, help="windows per predict call (pipeline default)")
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads (default: every core)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--sections", default="batching,e2e,runtimes",
                        help="comma-separated: batching, e2e, runtimes")
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    if args.windows < 1 or args.rounds < 1 or args.batch_windows < 1:
        parser.error("--windows, --rounds and --batch-windows must each be >= 1")

    audio = synthetic_windows(args.windows)
    n_native = int(args.windows * WINDOW_S // 3)  # the same audio as native 3-s windows
    backends = {size: BirdNETBackend(chunk_batch_size=size, num_threads=args.threads) for size in (1, 16)} \
        if "batching" in sections else {}
    model_options = {"chunk_batch_size": 16, "num_threads": args.threads}
    predictor = Predictor("birdnet", model_options, TASKS) if "e2e" in sections else None

    with tempfile.TemporaryDirectory(prefix="dawnchorus-bench-") as tmp:
        duration_s = args.windows * WINDOW_S
        options = {}
        units = {}
        for name, rate_hz, channels, fmt in E2E_FILES:
            path = write_recording(Path(tmp) / name, duration_s, rate_hz, channels, fmt)
            options[name] = DecodeOptions(source=tmp, storage_options={}, window_s=WINDOW_S,
                                          sample_rate_hz=SAMPLE_RATE_HZ, channel_policy="mean")
            units[name] = make_units(path, duration_s, args.batch_windows)
        decoded = {name: [as_batch(decode_unit(u, options[name])) for u in units[name]] for name in units}
        for name, batches in decoded.items():  # a decode failure would make the timings meaningless
            bad = {s for b in batches for s in b["status"]} - {"ok"}
            if bad:
                raise SystemExit(f"bench_birdnet: decoding {name} gave windows with status {sorted(bad)}")

        methods: dict[str, Callable[[], object]] = {}
        if "batching" in sections:
            methods["predict_chunk_batch_1"] = lambda: predict_all(backends[1], audio, args.batch_windows)
            methods["predict_chunk_batch_16"] = lambda: predict_all(backends[16], audio, args.batch_windows)
            for backend in backends.values():  # warm-up: interpreter allocation, first-call costs
                predict_all(backend, audio[:1], 1)
        if "e2e" in sections:
            for name in units:
                methods[f"{name}:decode"] = lambda n=name: [decode_unit(u, options[n]) for u in units[n]]
                methods[f"{name}:infer"] = lambda n=name: [predictor(b) for b in decoded[n]]
                methods[f"{name}:end_to_end"] = lambda n=name: [
                    predictor(as_batch(decode_unit(u, options[n]))) for u in units[n]
                ]
            predictor(decoded[E2E_FILES[0][0]][0])
        if "runtimes" in sections:
            native = audio.reshape(-1)[: n_native * CHUNK_SAMPLES].reshape(n_native, CHUNK_SAMPLES)  # (N, 144000)
            methods.update({f"runtime:{k}": fn for k, fn in
                            runtime_methods(native, args.batch_windows, args.threads).items()})

        load_before = load_average()
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.rounds):
            for name, fn in methods.items():
                times[name].append(_timed(fn))
        best = {name: min(values) for name, values in times.items()}

    n = args.windows
    chunks_per_window = len(chunk_starts(audio.shape[1], CHUNK_SAMPLES))
    result: dict = {
        "config": {
            "windows": n, "window_s": WINDOW_S, "chunks_per_window": chunks_per_window,
            "native_windows": n_native, "sections": sorted(sections),
            "batch_windows": args.batch_windows, "rounds": args.rounds, "tasks": list(TASKS),
            "threads": args.threads or os.cpu_count(), "model_id": _model_id(),
            "timing": "fastest of the interleaved rounds",
            "load_average_1min_before": load_before, "load_average_1min_after": load_average(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "seconds": times,
    }
    if "batching" in sections:
        b1, b16 = best["predict_chunk_batch_1"], best["predict_chunk_batch_16"]
        result["chunk_batching"] = {
            "chunk_batch_1_windows_per_s": n / b1,
            "chunk_batch_16_windows_per_s": n / b16,
            "chunk_batch_1_ms_per_chunk": 1e3 * b1 / (n * chunks_per_window),
            "chunk_batch_16_ms_per_chunk": 1e3 * b16 / (n * chunks_per_window),
            "speedup_16_over_1": b1 / b16,
        }
    if "e2e" in sections:
        end_to_end = {}
        for name, rate_hz, channels, _ in E2E_FILES:
            decode_s, infer_s, e2e_s = (best[f"{name}:{part}"] for part in ("decode", "infer", "end_to_end"))
            end_to_end[name] = {
                "sample_rate_hz": rate_hz, "channels": channels,
                "decode_ms_per_window": 1e3 * decode_s / n,
                "infer_ms_per_window": 1e3 * infer_s / n,
                "end_to_end_ms_per_window": 1e3 * e2e_s / n,
                "end_to_end_windows_per_s": n / e2e_s,
                "end_to_end_over_infer": e2e_s / infer_s,
                # From the separately timed stages: decode is a few % of the work, smaller than the
                # round-to-round noise of the end-to-end time on a shared machine.
                "decode_share": decode_s / (decode_s + infer_s),
                "audio_s_per_wall_s": n * WINDOW_S / e2e_s,
            }
        result["end_to_end"] = end_to_end
    if "runtimes" in sections:
        result["runtimes"] = summarize_runtimes(
            {k.split(":", 1)[1]: v for k, v in best.items() if k.startswith("runtime:")}, n_native)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    _print_table(result)
    return result


def _print_table(result: dict) -> None:
    rows = []
    if "chunk_batching" in result:
        c = result["chunk_batching"]
        rows += [
            ("predict, chunk_batch_size 1, windows/s", f"{c['chunk_batch_1_windows_per_s']:.2f}"),
            ("predict, chunk_batch_size 16, windows/s", f"{c['chunk_batch_16_windows_per_s']:.2f}"),
            ("  ms per 3-s chunk (1 / 16)", f"{c['chunk_batch_1_ms_per_chunk']:.1f} / {c['chunk_batch_16_ms_per_chunk']:.1f}"),
            ("  speedup (16 / 1)", f"{c['speedup_16_over_1']:.2f}x"),
        ]
    for name, e in result.get("end_to_end", {}).items():
        rows += [
            (f"{name}: decode ms per 10-s window", f"{e['decode_ms_per_window']:.1f}"),
            (f"{name}: infer ms per 10-s window", f"{e['infer_ms_per_window']:.1f}"),
            (f"{name}: decode+infer ms per 10-s window", f"{e['end_to_end_ms_per_window']:.1f}"),
            (f"  {name}: decode share, decode / (decode + infer)", f"{e['decode_share']:.1%}"),
            (f"  {name}: end to end / infer alone", f"{e['end_to_end_over_infer']:.3f}x"),
            (f"  {name}: audio s per wall s", f"{e['audio_s_per_wall_s']:.1f}"),
        ]
    if "runtimes" in result:
        r = result["runtimes"]
        rows += [(f"{n}: ms per 3-s window (predict)", f"{ms:.1f}") for n, ms in r["ms_per_3s_window"].items()]
        rows += [(f"  {n} over litert (whole model)", f"{x:.2f}x") for n, x in r["over_litert"].items()]
        for n in ("litert", r["default"]):
            rows += [(f"  {n}: embeddings overhead, one pass / two passes",
                      f"{r[f'{n}_embeddings_overhead_one_pass']:+.1%} / {r[f'{n}_embeddings_overhead_two_passes']:+.1%}")]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value:>12}")  # a CLI script: printing the table is its job


if __name__ == "__main__":
    main()
