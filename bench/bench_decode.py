"""Peak memory and speed of our streaming window decode against whole-file decoding, side by side.

Run: `.venv/bin/python -m bench.bench_decode [--hours 2] [--flac-minutes 30] [--rounds 1]`.
Prints a table and writes `bench/results/decode.json`.

Two synthetic recordings are written in 60-s chunks to a temporary folder (so the generator's own
memory stays flat whatever the length): a long 48 kHz mono 16-bit WAV (`--hours`; RF64 once the
data passes the 4 GiB RIFF limit, as recorders do) and a ~30-min 44.1 kHz stereo 16-bit FLAC.
Each is then decoded to every 10-s window at 48 kHz (BirdNET's rate) and 16 kHz (NatureLM's),
each run in a FRESH Python process so one run's peak cannot hide inside another's:

- ``ours_local``: `read_header` + `plan_windows` + `iter_windows` on the recording opened through
  fsspec's local filesystem (a ``file://`` root, as the pipeline opens it), consuming windows one
  by one;
- ``ours_ranged``: the same calls on an fsspec `AbstractBufferedFile` that fetches byte ranges
  (the class s3fs's S3File derives from, with the same read-ahead cache), i.e. the s3 read path
  without a server; it also counts the bytes fetched;
- ``reference_f64``: what NatureLM-audio's inference does (`soundfile.read` of the whole file,
  float64), mean to mono, soxr over the whole array, then slice windows;
- ``reference_f32``: the same in float32 (what librosa-based tools such as older BirdNET-Analyzer
  hold), the kinder baseline.

Every run consumes each window the same way (sum of squares), so the energies cross-check that
both sides decoded the same audio. Peak RSS is the child's VmHWM; wall time covers the work after
imports (the same imports for every method). A reference run whose arrays would not fit
comfortably in the memory available is skipped with the estimate as its reason (a 24-hour file
needs ~33 GB in float64).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

REPO = Path(__file__).resolve().parents[1]

from connectors.audio import iter_windows, plan_windows, read_header  # noqa: E402
from connectors.storage import open_root  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "decode.json"
WINDOW_S = 10.0
TARGET_RATES_HZ = (48_000, 16_000)
WAV_RATE_HZ = 48_000
FLAC_RATE_HZ = 44_100
GENERATOR_CHUNK_S = 60.0
SWEEP_S = 0.5
SWEEP_PERIOD_S = 7.0
RIFF_LIMIT_BYTES = 0xFFFFFFFF - 1024  # a plain WAV's 32-bit sizes stop here; beyond it, RF64
REFERENCE_MEMORY_FRACTION = 0.6
"""A reference run is skipped when its estimated arrays exceed this share of MemAvailable: the
machine is shared, and an OOM kill would take someone else's process with it."""
METHODS = ("ours_local", "ours_ranged", "reference_f64", "reference_f32")


# ------------------------------------------------------------------ synthetic recordings


def synth_chunk(start_frame: int, frames: int, rate_hz: int, channels: int) -> np.ndarray:
    """(frames, channels) float32: -40 dBFS white noise plus a 0.5-s 2->4 kHz sweep every 7 s.

    Deterministic: the noise is seeded by the chunk's first frame, and sweeps fall on absolute times,
    so they continue across chunk boundaries.
    """
    rng = np.random.default_rng(start_frame)
    # Uniform noise (RMS 0.01): a normal draw costs several times more, and 24 hours is 1,440 chunks.
    out = rng.uniform(-0.0173, 0.0173, (frames, channels)).astype(np.float32)  # (F, C)
    sweep_frames = round(SWEEP_S * rate_hz)
    tau_s = np.arange(sweep_frames) / rate_hz
    sweep = (0.2 * np.sin(2 * np.pi * (2000 * tau_s + 2000 * tau_s**2))).astype(np.float32)
    period_frames = round(SWEEP_PERIOD_S * rate_hz)
    for channel in range(channels):
        # Each channel's sweeps are 1 s later than the previous channel's, so a mean is not a copy.
        lag = channel * rate_hz
        first = -(-(start_frame - lag - sweep_frames) // period_frames)  # first sweep still sounding
        for onset in range(first * period_frames + lag, start_frame + frames, period_frames):
            lo, hi = max(onset, start_frame), min(onset + sweep_frames, start_frame + frames)
            if hi > lo:
                out[lo - start_frame : hi - start_frame, channel] += sweep[lo - onset : hi - onset]
    return out


def write_recording(path: Path, duration_s: float, rate_hz: int, channels: int, fmt: str) -> Path:
    """Write `duration_s` of synthetic 16-bit audio in chunks; memory stays one chunk's worth."""
    total_frames = round(duration_s * rate_hz)
    if fmt == "WAV" and total_frames * channels * 2 > RIFF_LIMIT_BYTES:
        fmt = "RF64"
    chunk_frames = round(GENERATOR_CHUNK_S * rate_hz)
    with sf.SoundFile(path, "w", rate_hz, channels, subtype="PCM_16", format=fmt) as out:
        for start in range(0, total_frames, chunk_frames):
            out.write(synth_chunk(start, min(chunk_frames, total_frames - start), rate_hz, channels))
    return path


# ------------------------------------------------------------------ the s3 read path, locally


class _RangeFile(AbstractBufferedFile):
    """Buffered fsspec file whose every cache miss is one byte-range fetch, like an S3 GET."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        with open(self.path, "rb") as raw:
            raw.seek(start)
            data = raw.read(end - start)
        self.fs.fetches += 1
        self.fs.bytes_fetched += len(data)
        return data


class RangeReadFileSystem(AbstractFileSystem):
    """Local files opened as `AbstractBufferedFile`s (s3fs's file base class), counting fetches."""

    protocol = "rangefile"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fetches = 0
        self.bytes_fetched = 0

    def info(self, path, **kwargs):
        return {"name": path, "size": os.path.getsize(path), "type": "file"}

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        return _RangeFile(self, path, mode, block_size=block_size or "default",
                          cache_options=cache_options, **kwargs)


# ------------------------------------------------------------------ one measured run (child)


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _ours(path: str, target_hz: int, ranged: bool) -> dict:
    if ranged:
        fs = RangeReadFileSystem(skip_instance_cache=True)
        fs_path = path
    else:
        fs, root = open_root("file://" + os.path.dirname(path))
        fs_path = f"{root}/{os.path.basename(path)}"
    header = read_header(fs, fs_path)
    specs = plan_windows(header.duration_s, WINDOW_S, tail="pad")
    energy, count = 0.0, 0
    for window in iter_windows(fs, fs_path, header, specs, WINDOW_S, target_hz):
        energy += float(np.dot(window.samples, window.samples))
        count += 1
    extra = {}
    if ranged:
        extra = {"fetches": fs.fetches, "bytes_fetched": fs.bytes_fetched}
    return {"windows": count, "energy": energy, "audio_s": header.duration_s, **extra}


def _reference(path: str, target_hz: int, dtype: str) -> dict:
    import soxr

    data, rate_hz = sf.read(path, dtype=dtype)  # (F,) or (F, C): the whole file
    audio_s = len(data) / rate_hz
    if data.ndim == 2:
        data = data.mean(axis=1)  # (F,)
    if rate_hz != target_hz:
        data = soxr.resample(data, rate_hz, target_hz)  # (F',)
    window = round(WINDOW_S * target_hz)
    energy, count = 0.0, 0
    for start in range(0, len(data), window):
        piece = data[start : start + window]
        if len(piece) < window:  # zero-pad the tail, as our "pad" policy does
            piece = np.concatenate([piece, np.zeros(window - len(piece), piece.dtype)])
        piece = piece.astype(np.float32)  # what a model is handed
        energy += float(np.dot(piece, piece))
        count += 1
    return {"windows": count, "energy": energy, "audio_s": audio_s}


def run_child(job: dict) -> dict:
    baseline_mb = _rss_mb("VmRSS")
    started = time.perf_counter()
    if job["method"].startswith("ours"):
        out = _ours(job["path"], job["target_hz"], ranged=job["method"] == "ours_ranged")
    else:
        out = _reference(job["path"], job["target_hz"], "float64" if job["method"].endswith("f64") else "float32")
    wall_s = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so a child started by a
    # parent that just wrote the audio would report the parent's peak.
    return {**out, "wall_s": wall_s, "peak_rss_mb": _rss_mb("VmHWM"), "baseline_rss_mb": baseline_mb}


# ------------------------------------------------------------------ driver (parent)


def _mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable")


def reference_estimate_bytes(frames: int, channels: int, rate_hz: int, target_hz: int, dtype: str) -> int:
    """Arrays the whole-file reference holds at its peak: samples, mono mix, resampled copy."""
    item = 8 if dtype == "float64" else 4
    mono = frames * item if channels > 1 else 0
    resampled = math.ceil(frames * target_hz / rate_hz) * item if target_hz != rate_hz else 0
    return frames * channels * item + mono + resampled


def _launch(job: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_decode", "--child", json.dumps(job)], cwd=REPO,
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{job['method']} on {job['path']} at {job['target_hz']} Hz failed "
                           f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_file(path: Path, methods: tuple[str, ...], rounds: int) -> dict:
    """Every method at every target rate on one recording, each run in a fresh process."""
    info = sf.info(str(path))
    report = {"path_name": path.name, "format": info.format, "sample_rate_hz": info.samplerate,
              "channels": info.channels, "duration_s": info.frames / info.samplerate,
              "size_bytes": path.stat().st_size, "targets": {}}
    for target_hz in TARGET_RATES_HZ:
        runs: dict[str, dict] = {}
        for method in methods:
            reason = _skip_reason(method, info, target_hz)
            if reason:
                runs[method] = {"skipped": reason}
        # Interleave the methods round by round so a burst of load from the shared machine does
        # not land on one side of a ratio; the fastest round counts, the highest peak counts.
        for _ in range(rounds):
            for method in methods:
                if method not in runs or "skipped" not in runs[method]:
                    result = _launch({"method": method, "path": str(path), "target_hz": target_hz})
                    runs[method] = _merge_rounds(runs.get(method), result)
        runs = {method: runs[method] for method in methods}  # table order, skipped or not
        for result in runs.values():
            if "wall_s" in result:
                result["audio_s_per_wall_s"] = result["audio_s"] / result["wall_s"]
        report["targets"][str(target_hz)] = {"runs": runs, "ratios": _ratios(runs, report["size_bytes"])}
    return report


def _skip_reason(method: str, info, target_hz: int) -> str | None:
    """Why a reference run on `info` (a `soundfile.info`) would not fit in memory now, or None."""
    if not method.startswith("reference"):
        return None
    dtype = "float64" if method.endswith("f64") else "float32"
    need = reference_estimate_bytes(info.frames, info.channels, info.samplerate, target_hz, dtype)
    available = _mem_available_bytes()
    if need <= REFERENCE_MEMORY_FRACTION * available:
        return None
    return (f"needs ~{need / 1e9:.1f} GB of arrays, over {REFERENCE_MEMORY_FRACTION:.0%}"
            f" of the {available / 1e9:.1f} GB available")


def _merge_rounds(best: dict | None, result: dict) -> dict:
    """The faster of two rounds of one method, carrying the higher peak RSS of the two."""
    if best is None:
        return result
    peak_mb = max(best["peak_rss_mb"], result["peak_rss_mb"])
    kept = result if result["wall_s"] < best["wall_s"] else best
    return {**kept, "peak_rss_mb": peak_mb}


def _ratios(runs: dict, size_bytes: int) -> dict:
    ours = runs["ours_local"]  # main() refuses a method list without it
    out = {}
    for method in ("reference_f64", "reference_f32"):
        ref = runs.get(method)
        if ref is None or "skipped" in ref:
            continue
        out[method] = {
            "peak_rss_ratio_reference_over_ours": ref["peak_rss_mb"] / ours["peak_rss_mb"],
            "throughput_ratio_ours_over_reference": ours["audio_s_per_wall_s"] / ref["audio_s_per_wall_s"],
            "energy_rel_diff": abs(ours["energy"] - ref["energy"]) / max(ref["energy"], 1e-30),
        }
    ranged = runs.get("ours_ranged")
    if ranged is not None:
        out["ours_ranged"] = {
            "bytes_fetched_over_file_size": ranged["bytes_fetched"] / size_bytes,
            "peak_rss_ratio_ranged_over_local": ranged["peak_rss_mb"] / ours["peak_rss_mb"],
            "throughput_ratio_ranged_over_local": ranged["audio_s_per_wall_s"] / ours["audio_s_per_wall_s"],
        }
    return out


def load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0, help="length of the 48 kHz mono WAV")
    parser.add_argument("--flac-minutes", type=float, default=30.0, help="length of the stereo FLAC; 0 skips it")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repeats; the fastest counts")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary audio goes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or "ours_local" not in methods:
        parser.error(f"--methods must include ours_local and only name {METHODS}; got {args.methods!r}")
    if args.hours <= 0 or args.flac_minutes < 0 or args.rounds < 1:
        parser.error("--hours must be > 0, --flac-minutes >= 0 and --rounds >= 1")

    wav_bytes = args.hours * 3600 * WAV_RATE_HZ * 2
    flac_bytes = args.flac_minutes * 60 * FLAC_RATE_HZ * 2 * 2  # upper bound: noise barely compresses
    with tempfile.TemporaryDirectory(prefix="dawnchorus-bench-", dir=args.workdir) as tmp:
        free = shutil.disk_usage(tmp).free
        if wav_bytes + flac_bytes > 0.8 * free:
            raise SystemExit(f"bench_decode: {tmp} has {free / 1e9:.1f} GB free; the audio needs "
                             f"~{(wav_bytes + flac_bytes) / 1e9:.1f} GB (lower --hours or pass --workdir)")
        started = time.perf_counter()
        files = [write_recording(Path(tmp) / "long.wav", args.hours * 3600, WAV_RATE_HZ, 1, "WAV")]
        if args.flac_minutes > 0:
            files.append(write_recording(Path(tmp) / "stereo.flac", args.flac_minutes * 60, FLAC_RATE_HZ, 2, "FLAC"))
        generate_s = time.perf_counter() - started
        generator_peak_mb = _rss_mb("VmHWM")
        load_before = load_average()
        reports = [measure_file(path, methods, args.rounds) for path in files]

    result = {
        "config": {
            "hours": args.hours, "flac_minutes": args.flac_minutes, "rounds": args.rounds,
            "window_s": WINDOW_S, "methods": list(methods), "target_rates_hz": list(TARGET_RATES_HZ),
            "timing": "fastest of the interleaved rounds; peak RSS the highest",
            "generate_s": generate_s, "generator_peak_rss_mb": generator_peak_mb,
            "load_average_1min_before": load_before, "load_average_1min_after": load_average(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "files": reports,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    _print_table(result)
    return result


def _print_table(result: dict) -> None:
    # A CLI script: printing the table is its job.
    header = f"{'file':<34} {'Hz':>6} {'method':<14} {'wall s':>8} {'audio s/s':>10} {'peak MB':>8} {'+base MB':>9}"
    print(header)
    print("-" * len(header))
    for report in result["files"]:
        name = f"{report['format']} {report['sample_rate_hz']} Hz x{report['channels']} {report['duration_s'] / 3600:.2f} h"
        for target, block in report["targets"].items():
            for method, run in block["runs"].items():
                if "skipped" in run:
                    print(f"{name:<34} {target:>6} {method:<14} skipped: {run['skipped']}")
                    continue
                print(f"{name:<34} {target:>6} {method:<14} {run['wall_s']:>8.2f} {run['audio_s_per_wall_s']:>10.0f}"
                      f" {run['peak_rss_mb']:>8.0f} {run['peak_rss_mb'] - run['baseline_rss_mb']:>9.0f}")
            for method, ratio in block["ratios"].items():
                if method == "ours_ranged":
                    print(f"{'':<34} {target:>6}   byte-range path: fetched {ratio['bytes_fetched_over_file_size']:.3f}x"
                          f" the file, peak {ratio['peak_rss_ratio_ranged_over_local']:.2f}x, speed"
                          f" {ratio['throughput_ratio_ranged_over_local']:.2f}x of file://")
                else:
                    print(f"{'':<34} {target:>6}   {method}/ours peak RSS {ratio['peak_rss_ratio_reference_over_ours']:.1f}x;"
                          f" ours/{method} throughput {ratio['throughput_ratio_ours_over_reference']:.2f}x;"
                          f" energy diff {ratio['energy_rel_diff']:.1e}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(run_child(json.loads(sys.argv[2]))))
    else:
        main()
