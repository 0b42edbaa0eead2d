"""CLAP backend throughput on full-size random weights (CPU): both families, two batch sizes.

Run: `.venv/bin/python -m bench.bench_clap [--windows 4] [--rounds 2] [--labels 20]`. Prints a
table and writes `bench/results/clap.json`. The cost of a forward pass does not depend on the
weight values, so random weights at the published sizes give the real cost:

- MS-CLAP 2023: HTSAT-tiny (31.3 M) + GPT-2 small (124 M), 7-s windows at 44.1 kHz; the release
  file (640 MB) is written to a temporary folder and loaded through the backend;
- transformers CLAP at `ClapConfig()` defaults = laion/clap-htsat-unfused and BioLingual's shape
  (HTSAT-tiny + RoBERTa-base, 153.5 M), 10-s windows at 48 kHz, saved as a ClapModel folder.

Measured side by side, interleaved round by round (each keeps its fastest round): `predict`
(detect + classify over `--labels` species) with `batch_size` 1 and 4 on `--windows` windows of
synthetic audio per call; `embed` at batch 4; the one-off text cost per prompt; load time.
Tokenizers are the tiny test ones (the cost of a prompt hardly depends on the vocabulary).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from bench.bench_decode import load_average, synth_chunk  # noqa: E402
from naturelm_core.backend import load_backend  # noqa: E402
from naturelm_core.clap import checkpoint  # noqa: E402
from naturelm_core.clap.msclap import MSClapConfig  # noqa: E402
from naturelm_core.clap.tiny import build_tiny_gpt2_folder, build_tiny_transformers_clap  # noqa: E402
from naturelm_core.labels import birdnet_labels  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "clap.json"


def full_size_msclap(root: Path) -> dict:
    from transformers import GPT2Config

    text_dir = build_tiny_gpt2_folder(root / "gpt2")
    GPT2Config().save_pretrained(str(text_dir))  # GPT-2 small, with the tiny tokenizer
    torch.manual_seed(0)
    model = checkpoint.build_msclap(text_dir, MSClapConfig())
    weights = checkpoint.save_release(model, root / checkpoint.RELEASE_FILE)
    n_params = sum(p.numel() for p in model.parameters())
    return {"options": dict(weights=str(weights), text_model=str(text_dir)), "params": n_params}


def full_size_transformers(root: Path) -> dict:
    from transformers import ClapConfig, ClapModel

    folder = build_tiny_transformers_clap(root / "clap")  # processor + tokenizer of the tiny build
    torch.manual_seed(0)
    model = ClapModel(ClapConfig())  # HTSAT-tiny + RoBERTa-base, 512-d
    model.save_pretrained(str(folder))
    return {"options": dict(weights=str(folder)), "params": sum(p.numel() for p in model.parameters())}


def windows(sample_rate_hz: int, window_s: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    samples = round(window_s * sample_rate_hz)
    audio = synth_chunk(0, n * samples, sample_rate_hz, 1).reshape(n, samples).astype(np.float32)
    return audio, np.full(n, samples, np.int64)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    labels = [label for label in birdnet_labels() if "_" in label][: args.labels]
    report: dict = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "load_average_1m_start": load_average(),
        "windows_per_call": args.windows,
        "labels": len(labels),
        "families": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-clap-") as tmp:
        builds = {"msclap-2023": full_size_msclap(Path(tmp) / "ms"), "transformers": full_size_transformers(Path(tmp) / "hf")}
        backends, data = {}, {}
        for family, build in builds.items():
            for batch_size in (1, 4):
                seconds = timed(lambda: backends.__setitem__(
                    (family, batch_size), load_backend("clap", labels=labels, batch_size=batch_size, **build["options"])
                ))  # fmt: skip
                report["families"].setdefault(family, {"params": build["params"]})[f"load_s_batch{batch_size}"] = round(seconds, 2)
            backend = backends[(family, 1)]
            data[family] = windows(backend.sample_rate_hz, backend.native_window_s, args.windows)
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for family in builds:
                audio, valid = data[family]
                for batch_size in (1, 4):
                    backend = backends[(family, batch_size)]
                    key = (family, f"predict_batch{batch_size}")
                    best[key] = min(best.get(key, np.inf), timed(lambda: backend.predict(audio, valid, ["detect", "classify"])))
                key = (family, "embed_batch4")
                best[key] = min(best.get(key, np.inf), timed(lambda: backends[(family, 4)].embed(audio, valid)))
                prompts = [f"round {time.perf_counter_ns()} prompt {i}" for i in range(16)]  # never cached
                key = (family, "text_16_prompts")
                best[key] = min(best.get(key, np.inf), timed(lambda: backends[(family, 4)]._texts(prompts)))
        for family in builds:
            window_s = backends[(family, 1)].native_window_s
            entry = report["families"][family]
            entry["window_s"] = window_s
            for name in ("predict_batch1", "predict_batch4", "embed_batch4"):
                seconds = best[(family, name)]
                entry[name] = {
                    "windows_per_s": round(args.windows / seconds, 2),
                    "audio_s_per_wall_s": round(args.windows * window_s / seconds, 1),
                }
            entry["text_ms_per_prompt"] = round(1000 * best[(family, "text_16_prompts")] / 16, 1)
            entry["batch4_over_batch1"] = round(best[(family, "predict_batch1")] / best[(family, "predict_batch4")], 2)
    report["load_average_1m_end"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{'family':14} {'params M':>9} {'win s':>6} {'pred b1 win/s':>14} {'pred b4 win/s':>14} {'b4/b1':>6} "
          f"{'embed b4 x RT':>14} {'text ms/prompt':>15}")
    for family, e in report["families"].items():
        print(f"{family:14} {e['params'] / 1e6:9.1f} {e['window_s']:6g} {e['predict_batch1']['windows_per_s']:14} "
              f"{e['predict_batch4']['windows_per_s']:14} {e['batch4_over_batch1']:6} "
              f"{e['embed_batch4']['audio_s_per_wall_s']:14} {e['text_ms_per_prompt']:15}")
    print(f"load average {report['load_average_1m_start']} -> {report['load_average_1m_end']}; wrote {args.out}")


if __name__ == "__main__":
    main()
