"""CPU benchmark of the NatureLM-audio engine on a tiny but proportioned model, plus GPU arithmetic.

Run: `.venv/bin/python -m bench.bench_naturelm [--windows 16] [--batch-size 8]`. Prints a table
and writes `bench/results/naturelm.json`. Measured side by side in one run, on the same model and
audio:

1. windows/s of the batched engine (one encode per batch, shared prefixes, one batched decode for all rows) against a
   one-window-per-generate loop (what the reference Pipeline does);
2. three prompts on one encoding (one engine call) against three separate calls (one per prompt,
   each re-encoding the audio).

The batched engine also scores every answer (from its decoding steps), which the loop does not.
Each method runs `--rounds` times, interleaved; the fastest round counts. Every answer is forced to exactly `--answer-tokens` tokens (min = max new tokens), so all methods
do the same decoding work whatever the random model says. The model is the published shape
scaled down: BEATs 3 layers (published 12), Llama 8 layers (32), Q-Former 2 (2) -- the same
layer ratios -- and widths divided by 8 with the same head counts and FFN ratios; the vocabulary
is a few hundred tokens, not 128k (so the lm_head share of decode is much smaller than on the
real model). The on-paper GPU cost uses the real shapes (`paper_cost`), see docs/naturelm.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


from naturelm_core.naturelm import prompts as P  # noqa: E402
from naturelm_core.naturelm.checkpoint import load_naturelm  # noqa: E402
from naturelm_core.audio_llm.engine import Engine, EngineConfig  # noqa: E402
from naturelm_core.naturelm.model import GenerationOptions  # noqa: E402
from naturelm_core.naturelm.tiny import TinyDims, build_tiny_checkpoint  # noqa: E402

SAMPLE_RATE_HZ = 16_000
RESULTS = Path(__file__).resolve().parent / "results" / "naturelm.json"

#: Published widths / 8, published layer counts x 1/4 (Q-Former kept at 2), same head counts.
PROPORTIONED = TinyDims(
    beats_layers=3, beats_patch_dim=64, beats_width=96, beats_ffn=384, beats_heads=12,
    conv_pos=16, conv_pos_groups=16,
    qformer_width=96, qformer_heads=12, qformer_ffn=384,
    llama_layers=8, llama_hidden=512, llama_heads=32, llama_kv_heads=8, llama_ffn=1792,
    lora_rank=32, lora_alpha=32,
)  # fmt: skip

THREE_PROMPTS = [
    P.DETECT_PROMPT,
    P.CLASSIFY_PROMPT,
    P.Prompt(prompt_id="bench-caption", task="caption", text="Caption the audio"),
]


# ------------------------------------------------------------------ on paper (real shapes)


@dataclasses.dataclass(frozen=True)
class Gpu:
    name: str
    bf16_tflops: float  # dense tensor-core peak
    hbm_gb_s: float  # memory bandwidth
    memory_gb: float


GPUS = (Gpu("A100-80GB-SXM", 312.0, 2039.0, 80.0), Gpu("L4", 121.0, 300.0, 24.0))


def paper_cost(prompt_tokens: int = 60, answer_tokens: int = 5, beams: int = 2) -> dict:
    """FLOPs and bytes per 10-s window for the published model (2 FLOPs per multiply-add)."""
    # BEATs: 496 tokens, width 768, 12 layers, FFN 3072, positional conv k=128 groups=16.
    t, d, f = 496, 768, 3072
    beats_layer = 4 * 2 * t * d * d + 2 * 2 * t * t * d + 2 * 2 * t * d * f
    beats = 12 * beats_layer + 2 * t * d * (d // 16) * 128 + 2 * t * 512 * 256 + 2 * t * 512 * d
    # Q-Former: 29 windows x 2 layers; cross-attention K/V over 17 tokens dominate.
    qf_layer = 2 * 2 * 17 * d * d + 6 * 2 * d * d + 2 * 2 * d * f
    qformer = 29 * 2 * qf_layer + 29 * 2 * d * 4096
    # Llama 3.1 8B: 32 layers, hidden 4096, 8 KV heads x 128, FFN 14336, vocab 128257 (+[PAD]).
    h, kv, ffn, vocab, layers, r = 4096, 1024, 14336, 128257, 32, 32
    body_params = layers * (2 * h * h + 2 * h * kv + 3 * h * ffn)  # q,o + k,v + MLP (norms ~0)
    lora_params = layers * r * ((h + h) * 2 + (h + kv) * 2)
    head_params = h * vocab
    per_token = 2 * (body_params + lora_params)
    prefill = prompt_tokens * per_token + 2 * head_params  # logits for the last position only
    decode_per_token = per_token + 2 * head_params
    decode = answer_tokens * beams * decode_per_token
    kv_bytes_per_token = layers * 2 * kv * 2  # K and V, bf16
    weight_bytes_per_step = 2 * (body_params + lora_params + head_params)  # streamed each step
    ctx = prompt_tokens + answer_tokens
    out = {
        "gflop": {
            "beats": beats / 1e9,
            "qformer_proj": qformer / 1e9,
            "llm_prefill": prefill / 1e9,
            "llm_decode_per_token_per_beam": decode_per_token / 1e9,
            "llm_decode": decode / 1e9,
            "total": (beats + qformer + prefill + decode) / 1e9,
        },
        "bytes": {
            "weights_streamed_per_decode_step_gb": weight_bytes_per_step / 1e9,
            "kv_cache_per_token_kib": kv_bytes_per_token / 1024,
            "kv_cache_per_window_mb": ctx * beams * kv_bytes_per_token / 1e6,
        },
        "gpus": {},
    }
    for gpu in GPUS:
        ridge = gpu.bf16_tflops * 1e12 / (gpu.hbm_gb_s * 1e9)  # FLOP per byte at the roofline knee
        # Decode step with R rows: FLOPs R * decode_per_token; bytes weights + R * ctx * kv bytes.
        # Compute-bound when R * dpt >= ridge * (W + R * ctx * kv)  =>  R >= ridge W / (dpt - ridge ctx kv).
        rows = ridge * weight_bytes_per_step / (decode_per_token - ridge * ctx * kv_bytes_per_token)
        step_ms_b1 = weight_bytes_per_step / (gpu.hbm_gb_s * 1e9) * 1e3
        kv_budget_rows = (gpu.memory_gb * 1e9 - weight_bytes_per_step - 2e9) / (ctx * kv_bytes_per_token)
        out["gpus"][gpu.name] = {
            "ridge_flop_per_byte": ridge,
            "decode_rows_for_compute_bound": rows,
            "windows_per_batch_for_compute_bound": rows / beams,
            "rows_that_fit_in_memory": kv_budget_rows,
            "decode_step_ms_at_batch_1": step_ms_b1,
            "ms_per_window_at_batch_1": answer_tokens * step_ms_b1 + (beats + qformer + prefill) / (gpu.bf16_tflops * 1e9),
            "ms_per_window_compute_bound_at_peak": out["gflop"]["total"] / gpu.bf16_tflops,
        }
    return out


# ------------------------------------------------------------------ measurements


def _windows(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(10 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    rows = [0.3 * np.sin(2 * np.pi * rng.uniform(300, 6000) * t) + 0.05 * rng.standard_normal(t.size) for _ in range(n)]
    return np.clip(np.stack(rows), -1, 1).astype(np.float32)


def _load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_window_per_generate(model, wave: np.ndarray, prompts, options: GenerationOptions) -> None:
    """The reference's loop: per window and per question, encode + generate with batch 1."""
    for row in wave:
        for prompt in prompts:
            embeds = model.encode_audio(torch.from_numpy(row[None]))
            model.generate(embeds, [prompt.text], options)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--answer-tokens", type=int, default=6)
    parser.add_argument("--num-beams", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    options = GenerationOptions(
        max_new_tokens=args.answer_tokens, min_new_tokens=args.answer_tokens, num_beams=args.num_beams
    )
    wave = _windows(args.windows)
    with tempfile.TemporaryDirectory() as tmp:
        naturelm_dir, llama_dir = build_tiny_checkpoint(tmp, PROPORTIONED)
        model = load_naturelm(str(naturelm_dir), str(llama_dir)).model
        config = EngineConfig(batch_size=args.batch_size, generation=options)
        classify = [P.CLASSIFY_PROMPT]
        Engine(model, classify, config).run(wave[:2])  # warm-up (allocator, first-call overheads)

        methods = {
            "batched": lambda: Engine(model, classify, config).run(wave),
            "loop": lambda: one_window_per_generate(model, wave, classify, options),
            "together": lambda: Engine(model, THREE_PROMPTS, config).run(wave),
            "separate": lambda: [Engine(model, [p], config).run(wave) for p in THREE_PROMPTS],
        }
        # The machine is shared: interleave the methods and keep each one's fastest round, so a
        # burst of someone else's load cannot favour one side of a ratio.
        times = {name: [] for name in methods}
        for _ in range(args.rounds):
            for name, fn in methods.items():
                times[name].append(_timed(fn))
        batched_s, loop_s, together_s, separate_s = (min(times[k]) for k in methods)

    n = args.windows
    result = {
        "config": {
            "dims": dataclasses.asdict(PROPORTIONED),
            "windows": n,
            "rounds": args.rounds,
            "timing": "fastest of the interleaved rounds",
            "load_average_1min": _load_average(),
            "batch_size": args.batch_size,
            "generation": dataclasses.asdict(options),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        "batched_vs_loop": {
            "batched_windows_per_s": n / batched_s,
            "loop_windows_per_s": n / loop_s,
            "speedup": loop_s / batched_s,
        },
        "three_prompts": {
            "one_encoding_s": together_s,
            "three_calls_s": separate_s,
            "speedup": separate_s / together_s,
        },
        "paper_cost_per_window": paper_cost(),
        "seconds": times,  # every round of every method, for medians and ranges
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    _print_table(result)
    return result


def _print_table(result: dict) -> None:
    b, t = result["batched_vs_loop"], result["three_prompts"]
    rows = [
        ("batched engine, windows/s", f"{b['batched_windows_per_s']:.2f}"),
        ("one window per generate, windows/s", f"{b['loop_windows_per_s']:.2f}"),
        ("  speedup (batched / loop)", f"{b['speedup']:.2f}x"),
        ("3 prompts, one encoding, s", f"{t['one_encoding_s']:.2f}"),
        ("3 prompts, 3 separate calls, s", f"{t['three_calls_s']:.2f}"),
        ("  speedup (separate / one encoding)", f"{t['speedup']:.2f}x"),
    ]
    cost = result["paper_cost_per_window"]
    rows.append(("paper: GFLOP per 10-s window (published model)", f"{cost['gflop']['total']:.0f}"))
    for name, gpu in cost["gpus"].items():
        rows.append((f"paper: {name} windows/batch for compute-bound decode", f"{gpu['windows_per_batch_for_compute_bound']:.0f}"))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value:>10}")  # a CLI script: printing the table is its job


if __name__ == "__main__":
    main()
