"""NatureLM-audio at GPU speed: windows/s of the cached engine against the reference's way.

Run: `.venv/bin/python -m bench.bench_naturelm_gpu [--mode auto|gpu|tiny] [--windows N]`.

- **gpu** (default when CUDA is available): builds full-size NatureLM-audio with random weights
  directly on the GPU -- Llama-3.1-8B's shape (32 layers, 4096 wide, 8 KV heads, FFN 14336) and
  vocabulary + [PAD] (128257), LoRA r 32 on q/k/v/o in bf16, BEATs and Q-Former at release size
  in fp32 under bf16 autocast, SDPA attention. Nothing is downloaded: the tokenizer is a byte-level
  BPE trained here and padded to Llama 3's layout (128000 ordinary + 256 special ids); its prompts
  are 61 rows like the real one's. Sized to finish in one 10-minute run on an H100/H200.
- **tiny** (default without CUDA): the tiny test checkpoint on CPU, a few windows -- a smoke test
  of this script, not a measurement of anything a GPU would do; the JSON says so.
- **rehearsal**: the gpu mode's full-size model (same shapes, bf16 Llama, release-size BEATs and
  Q-Former) built on the CPU, 2 windows, 1 round: proves that everything the GPU run does works
  at the real shapes (about 17 GiB of memory; tens of minutes on 2 cores) before GPU time is
  spent. Its rates say nothing about a GPU; the JSON says so.

Methods, each on the same windows, interleaved over `--rounds` after one untimed warm-up, fastest
round kept: `detect` (one forward per window), `detect_classify` (detect + free-text classify,
`--num-beams` beams), `detect_classify_candidates` (classify constrained to `--candidates`
names), `cascade_10` / `cascade_50` (classify only the windows whose detect score is in the top
10 % / 50 %), `unshared_detect_classify` (every prompt row recomputes its audio prefix),
`reference_engine_detect_classify` (batched Hugging Face `generate` + a scoring pass: the engine
before this change) and `one_window_per_generate` (the reference's way: per window and prompt,
encode + `generate` with batch 1; on `--loop-windows` windows). Free-text answers are forced to
exactly `--answer-tokens` tokens (detect's generated answer in the `generate` baselines to
`--detect-answer-tokens`), so every method does the same decoding whatever the random model says.

Writes `bench/results/naturelm_gpu.json` (`naturelm_gpu_tiny.json` in tiny mode) and prints a
table. JSON keys: `mode`, `note`, `device` (name, bf16 peak), `config`, `batch_sizes`, `methods`
(per method: windows, seconds, windows_per_s, llm_tokens, tokens_per_s, tflop, tflop_per_s,
bf16_peak_fraction, peak_memory_gib, batch_size, classified_fraction), `speedups`, `goal`
(detect + classify >= 300 windows/s on an H100/H200), `fbank` (float64 vs float32 fbank: seconds
and share of an encode, release-size BEATs on this machine's CPU). FLOPs count 2 per
multiply-add of every real (unpadded) LLM position, the logits computed and the audio side;
attention score FLOPs (< 1 % at these lengths) are left out, so rates are slight underestimates.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


from naturelm_core.naturelm import prompts as P  # noqa: E402
from naturelm_core.audio_llm.beats import BEATs, BEATsConfig, fbank_batch  # noqa: E402
from naturelm_core.naturelm.checkpoint import add_pad_token, load_naturelm  # noqa: E402
from naturelm_core.audio_llm.engine import Engine, EngineConfig  # noqa: E402
from naturelm_core.naturelm.model import GenerationOptions, NatureLM, NatureLMConfig  # noqa: E402
from naturelm_core.naturelm.tiny import TINY_SPECIES, TinyDims, build_tiny_checkpoint, build_tiny_tokenizer  # noqa: E402

SAMPLE_RATE_HZ = 16_000
RESULTS = Path(__file__).resolve().parent / "results"
GOAL_WINDOWS_PER_S = 300.0
#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched against torch's device name in order.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.0), ("H200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4),
    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
)  # fmt: skip
#: Species names for the constrained-classification method (cycled when more are asked for).
SPECIES = (*TINY_SPECIES, "Green Treefrog", "Lazuli Bunting", "Gray Wolf", "Song Sparrow", "House Wren",
           "Barred Owl", "Common Loon", "Wood Thrush", "Red-winged Blackbird", "Black-capped Chickadee",
           "Spring Peeper", "American Bullfrog", "Coyote", "Mallard")  # fmt: skip


# ------------------------------------------------------------------------------ models


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


#: Llama-3.1-8B's shape (its config.json); the vocabulary is the tokenizer's (128256).
LLAMA_31_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 8}  # fmt: skip


def full_size_model(tmp: Path, device: torch.device, llama_shape: dict = LLAMA_31_8B,
                    config: NatureLMConfig = NatureLMConfig(), dtype: torch.dtype = torch.bfloat16) -> NatureLM:
    """Published NatureLM-audio shapes with random weights, built on `device` (a few seconds)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(tmp / "tokenizer", TinyDims(bpe_vocab=4000, ordinary_vocab=128000, reserved_special=250))
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")}
    llama_config = LlamaConfig(
        vocab_size=len(tokenizer), **llama_shape, rms_norm_eps=1e-5, max_position_embeddings=131072,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=[ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]],
        tie_word_embeddings=False, attn_implementation="sdpa",
    )  # fmt: skip
    with device, _default_dtype(dtype):
        llama = LlamaForCausalLM(llama_config)  # initialised where it is built: normal(0, 0.02)
    llama, tokenizer = add_pad_token(llama, tokenizer)
    with device:  # audio side in float32 (bf16 autocast at run time), LoRA in the Llama's dtype
        model = NatureLM(config, llama, tokenizer)
    with torch.no_grad():  # peft zeroes LoRA B: give the adapters something to add
        for name, param in model.llama_model.named_parameters():
            if ".lora_B." in name:
                param.normal_(0.0, 0.02)
    return model.eval()


def tiny_model(tmp: Path) -> NatureLM:
    naturelm_dir, llama_dir = build_tiny_checkpoint(tmp / "tiny")
    return load_naturelm(str(naturelm_dir), str(llama_dir), device="cpu").model


# ------------------------------------------------------------------------------ FLOPs


def llm_flops(model: NatureLM, tokens: int, logit_positions: int) -> float:
    """2 x (body + LoRA parameters) per real position + 2 x hidden x vocab per logit position."""
    body = sum(p.numel() for n, p in model.llama_model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
    head = model.llama_model.get_output_embeddings().weight
    return 2.0 * body * tokens + 2.0 * head.shape[0] * head.shape[1] * logit_positions


def audio_flops_per_window(model: NatureLM) -> float:
    """BEATs + Q-Former + projection for one 10-s window (from the configs' shapes)."""
    b, q = model.config.beats_cfg, model.config.qformer_cfg
    t, d, f = b.num_tokens(998), b.encoder_embed_dim, b.encoder_ffn_embed_dim
    layer = 4 * 2 * t * d * d + 2 * 2 * t * t * d + 2 * 2 * t * d * f
    patch = 2 * t * b.input_patch_size**2 * b.embed_dim + 2 * t * b.embed_dim * d
    beats = b.encoder_layers * layer + 2 * t * d * (d // b.conv_pos_groups) * b.conv_pos + patch
    windows, k, h = t // model.window_tokens, model.window_tokens, q.hidden_size
    qf_layer = 2 * 2 * k * q.encoder_width * h + 6 * 2 * h * h + 2 * 2 * h * q.intermediate_size
    llm_width = model.audio_llama_proj.weight.shape[0]
    return float(beats + windows * (q.num_hidden_layers * qf_layer + 2 * h * llm_width))


def bf16_peak(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


# ------------------------------------------------------------------------------ measurements


def _windows(n: int, seed: int = 0) -> np.ndarray:
    """n 10-s windows: a tone of random pitch in noise each, so encodings differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(10 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    rows = [0.3 * np.sin(2 * np.pi * rng.uniform(300, 6000) * t) + 0.05 * rng.standard_normal(t.size) for _ in range(n)]
    return np.clip(np.stack(rows), -1, 1).astype(np.float32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_window_per_generate(model: NatureLM, wave: np.ndarray, prompts, options: dict) -> None:
    """The reference's loop: per window and per question, encode + generate with batch 1."""
    for row in wave:
        for prompt in prompts:
            embeds = model.encode_audio(torch.from_numpy(row[None]))
            model.generate(embeds, [prompt.text], options[prompt.task])


def measure(methods: dict, model: NatureLM, rounds: int, deadline: float,
            warm_up: bool = True) -> tuple[dict, dict]:
    """Time each method `rounds` times, interleaved, after one warm-up (`warm_up`); keep each
    one's fastest round.

    A method that runs out of GPU memory is recorded as failed and skipped from then on; rounds
    after `deadline` (time.monotonic) are skipped once every method has one timed round, so a
    one-shot run still writes its JSON. Returns ({name: (seconds, stats)}, {name: error}).
    """
    device = model.device
    times: dict[str, list[float]] = {name: [] for name in methods}
    stats: dict[str, dict] = {}
    failed: dict[str, str] = {}

    def attempt(name: str, fn) -> bool:
        try:
            fn()
            return True
        except torch.OutOfMemoryError as exc:
            failed[name] = f"out of GPU memory: {str(exc).splitlines()[0]}"
            torch.cuda.empty_cache()
            return False

    for name, (fn, _, _) in methods.items() if warm_up else ():  # allocator, cuBLAS heuristics, caches
        attempt(name, fn)
    for round_index in range(rounds):
        if round_index > 0 and time.monotonic() > deadline:
            break
        for name, (fn, engine, _) in methods.items():
            if name in failed:
                continue
            if engine is not None:
                engine.work.reset()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            start = time.perf_counter()
            if not attempt(name, fn):
                continue
            _sync(device)
            times[name].append(time.perf_counter() - start)
            if times[name][-1] == min(times[name]):
                work = dataclasses.asdict(engine.work) if engine is not None else None
                peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
                stats[name] = {"work": work, "peak_memory_gib": peak, "rounds": None}
    for name in stats:
        stats[name]["rounds"] = len(times[name])
    return {name: (min(times[name]), stats[name]) for name in methods if times[name]}, failed


def fbank_share(windows: int, rounds: int, device: torch.device, model: NatureLM | None = None) -> dict:
    """fbank in float64 vs float32: seconds and share of an encode.

    On CPU the encoder is release-size BEATs (98 % of the audio side's FLOPs) in fp32; on CUDA it is
    `model.encode_audio` (bf16 autocast), with its own fbank_dtype switched.
    """
    wave = torch.from_numpy(_windows(windows, seed=1)).to(device)
    if model is None:
        torch.manual_seed(0)
        beats = BEATs(BEATsConfig()).eval().to(device)
        encode = {dtype: (lambda w, dt=dtype: beats(w.to(dt))) for dtype in (torch.float64, torch.float32)}
        what = "release-size BEATs on CPU, float32 weights"
    else:
        def encode_with(dtype):
            def run(w):
                model.fbank_dtype = dtype
                try:
                    return model.encode_audio(w)
                finally:
                    model.fbank_dtype = torch.float64
            return run
        encode = {dtype: encode_with(dtype) for dtype in (torch.float64, torch.float32)}
        what = f"model.encode_audio on {device.type}"
    out: dict = {"windows": windows, "encoder": what}
    with torch.inference_mode():
        for dtype, label in ((torch.float64, "f64"), (torch.float32, "f32")):
            fb, enc = [], []
            for _ in range(rounds + 1):  # first round warms up
                _sync(device)
                start = time.perf_counter()
                fbank_batch(wave.to(dtype))
                _sync(device)
                fb.append(time.perf_counter() - start)
                start = time.perf_counter()
                encode[dtype](wave)
                _sync(device)
                enc.append(time.perf_counter() - start)
            out[f"fbank_s_{label}"], out[f"encode_s_{label}"] = min(fb[1:]), min(enc[1:])
            out[f"fbank_share_{label}"] = out[f"fbank_s_{label}"] / out[f"encode_s_{label}"]
    out["encode_f64_over_f32"] = out["encode_s_f64"] / out["encode_s_f32"]
    return out


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("auto", "gpu", "tiny", "rehearsal"), default="auto")
    parser.add_argument("--windows", type=int, help="windows per batched method (gpu 512, tiny 8)")
    parser.add_argument("--loop-windows", type=int, help="windows for one_window_per_generate (gpu 16, tiny 2)")
    parser.add_argument("--batch-size", default="auto", help="engine windows per batch, or 'auto'")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--answer-tokens", type=int, default=5)
    parser.add_argument("--detect-answer-tokens", type=int, default=2)
    parser.add_argument("--num-beams", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the table")
    parser.add_argument("--fbank-windows", type=int, default=2)
    parser.add_argument("--fbank-rounds", type=int, default=2)
    parser.add_argument("--time-budget-s", type=float, default=360.0,
                        help="no further timing rounds after this long (each method keeps at least one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    mode = ("gpu" if cuda else "tiny") if args.mode == "auto" else args.mode
    if mode == "gpu" and not cuda:
        parser.error("--mode gpu needs CUDA")
    n = args.windows or {"gpu": 512, "tiny": 8, "rehearsal": 2}[mode]
    n_loop = args.loop_windows or {"gpu": 16, "tiny": 2, "rehearsal": 1}[mode]
    if mode == "rehearsal":
        args.rounds = min(args.rounds, 1)
        args.fbank_rounds = min(args.fbank_rounds, 1)
    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    out_path = args.out or RESULTS / {"gpu": "naturelm_gpu.json", "tiny": "naturelm_gpu_tiny.json",
                                      "rehearsal": "naturelm_gpu_rehearsal.json"}[mode]
    device = torch.device("cuda" if mode == "gpu" else "cpu")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        built = time.perf_counter()
        model = full_size_model(Path(tmp), device) if mode in ("gpu", "rehearsal") else tiny_model(Path(tmp))
        _sync(device)
        build_s = time.perf_counter() - built
        result = run_methods(model, args, n, n_loop, batch_size, mode)
        result["config"]["model_build_s"] = build_s
        result["fbank"] = fbank_share(args.fbank_windows, args.fbank_rounds, torch.device("cpu"))
        if mode == "gpu":
            result["fbank_gpu"] = fbank_share(64, args.fbank_rounds, device, model)
    name = torch.cuda.get_device_name(device) if mode == "gpu" else cpu_name()
    peak = args.peak_tflops or (bf16_peak(name) if mode == "gpu" else None)
    result["device"] = {"name": name, "cuda": mode == "gpu", "bf16_peak_tflops": peak, "torch": torch.__version__,
                        "threads": torch.get_num_threads(),
                        # what the rehearsal must fit in (24 GB here); on Linux ru_maxrss is in KiB
                        "peak_resident_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    for stats in result["methods"].values():
        stats["bf16_peak_fraction"] = stats["tflop_per_s"] / peak if peak and stats["tflop_per_s"] else None
    achieved = result["methods"]["detect_classify"]["windows_per_s"]
    result["goal"] = {
        "detect_classify_windows_per_s": achieved, "target_windows_per_s": GOAL_WINDOWS_PER_S,
        "met": (achieved >= GOAL_WINDOWS_PER_S) if mode == "gpu" and achieved is not None else None,
    }  # fmt: skip
    result["total_s"] = time.perf_counter() - started
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    _print_table(result, out_path)
    return result


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_methods(model: NatureLM, args, n: int, n_loop: int, batch_size, mode: str) -> dict:
    deadline = time.monotonic() + args.time_budget_s
    wave, loop_wave = _windows(n), _windows(n_loop)
    answer = GenerationOptions(max_new_tokens=args.answer_tokens, min_new_tokens=args.answer_tokens, num_beams=args.num_beams)
    detect_answer = dataclasses.replace(answer, max_new_tokens=args.detect_answer_tokens, min_new_tokens=args.detect_answer_tokens)
    prompts = [P.DETECT_PROMPT, P.CLASSIFY_PROMPT]
    candidates = tuple(SPECIES[i % len(SPECIES)] + ("" if i < len(SPECIES) else f" {i // len(SPECIES)}") for i in range(args.candidates))

    def engine(**config) -> Engine:
        return Engine(model, prompts, EngineConfig(batch_size=batch_size, generation=answer, **config))

    shared = engine()
    with torch.inference_mode():  # detection scores set the cascade thresholds: top 10 % / top 50 %
        scores = np.array([a.score for a in shared.run(wave, ["detect"])])
    thresholds = {"cascade_10": float(np.quantile(scores, 0.9)), "cascade_50": float(np.quantile(scores, 0.5))}
    engines = {
        "detect": shared,
        "detect_classify": shared,
        "detect_classify_candidates": engine(candidates=candidates),
        "cascade_10": engine(cascade_threshold=thresholds["cascade_10"]),
        "cascade_50": engine(cascade_threshold=thresholds["cascade_50"]),
        "unshared_detect_classify": engine(path="unshared"),
        "reference_engine_detect_classify": engine(path="reference"),
    }
    outputs: dict[str, list] = {}

    def run(name: str, tasks: list[str]):
        def go():
            outputs[name] = engines[name].run(wave, tasks)
        return go

    both = ["detect", "classify"]
    # name -> (run it, the engine whose LLM work is counted (None: generate() paths, not counted), windows)
    methods = {name: (run(name, both), engines[name], n) for name in engines}
    methods["detect"] = (run("detect", ["detect"]), shared, n)
    methods["reference_engine_detect_classify"] = (run("reference_engine_detect_classify", both), None, n)
    methods["one_window_per_generate"] = (
        lambda: one_window_per_generate(model, loop_wave, prompts, {"detect": detect_answer, "classify": answer}),
        None, n_loop,
    )  # fmt: skip
    with torch.inference_mode():
        # The CPU rehearsal proves the methods run at full size; a warm-up pass would double its
        # hours on 2 cores (measured 2026-12-07: the warm-up pass alone took about 75 minutes).
        timed, failed = measure(methods, model, args.rounds, deadline, warm_up=mode != "rehearsal")
    audio = audio_flops_per_window(model)
    report = {}
    for name, (seconds, stats) in timed.items():
        windows = methods[name][2]
        work = stats["work"]
        entry = {"windows": windows, "seconds": seconds, "windows_per_s": windows / seconds,
                 "batch_size": engines[name].batch_size if name in engines else 1,
                 "peak_memory_gib": stats["peak_memory_gib"], "rounds_timed": stats["rounds"], "llm_tokens": None,
                 "tokens_per_s": None, "tflop": None, "tflop_per_s": None}  # fmt: skip
        if work is not None:
            flops = llm_flops(model, work["tokens"], work["logit_positions"]) + audio * windows
            entry.update(llm_tokens=work["tokens"], llm_positions=work["positions"], tokens_per_s=work["tokens"] / seconds,
                         tflop=flops / 1e12, tflop_per_s=flops / 1e12 / seconds)
        if name.startswith("cascade"):
            entry["threshold"] = thresholds[name]
            entry["classified_fraction"] = sum(a.prompt.task == "classify" for a in outputs[name]) / n
        report[name] = entry
    for name, error in failed.items():
        report[name] = {"error": error, "windows": methods[name][2], "windows_per_s": None, "tflop_per_s": None,
                        "batch_size": engines[name].batch_size if name in engines else 1}  # fmt: skip
    rate = {k: v["windows_per_s"] for k, v in report.items()}

    def ratio(a: str, b: str) -> float | None:
        return rate[a] / rate[b] if rate.get(a) and rate.get(b) else None

    tokens = {p.task: len(model.prompt_tokens(p.text)) for p in prompts}
    audio_rows = shared._audio_rows()
    note = {"gpu": "full-size NatureLM-audio shapes, random weights, bf16 Llama + LoRA, SDPA",
            "tiny": "TINY MODE: no CUDA here, so this ran the tiny test checkpoint on CPU. It checks that the "
                    "script works; its rates say nothing about a GPU.",
            "rehearsal": "CPU REHEARSAL: the full-size model (the gpu mode's shapes and dtypes) on this CPU, "
                         "a few windows, to prove the GPU run works at the real shapes; its rates say "
                         "nothing about a GPU."}[mode]  # fmt: skip
    return {
        "mode": {"gpu": "gpu", "tiny": "tiny-cpu", "rehearsal": "rehearsal-cpu"}[mode],
        "note": note,
        "config": {
            "windows": n, "loop_windows": n_loop, "rounds": args.rounds, "timing": "fastest of the interleaved rounds",
            "answer_tokens": args.answer_tokens, "detect_answer_tokens_in_generate_baselines": args.detect_answer_tokens,
            "num_beams": args.num_beams, "candidates": len(candidates), "length_bucket": shared.config.length_bucket,
            "attn_implementation": model.llama_model.config._attn_implementation, "llm_dtype": str(model.llm_dtype),
            "prompt_rows": {task: t + audio_rows for task, t in tokens.items()},
            "audio_gflop_per_window": audio / 1e9,
            "llm_gflop_per_token": llm_flops(model, 1, 0) / 1e9,
        },
        "batch_sizes": {"requested": args.batch_size, "engine": shared.batch_size,
                        "estimated_bytes_per_window": shared.window_bytes()},
        "methods": report,
        "speedups": {
            "detect_classify_vs_one_window_per_generate": ratio("detect_classify", "one_window_per_generate"),
            "detect_classify_vs_unshared": ratio("detect_classify", "unshared_detect_classify"),
            "detect_classify_vs_reference_engine": ratio("detect_classify", "reference_engine_detect_classify"),
            "detect_vs_detect_classify": ratio("detect", "detect_classify"),
        },
    }


def _print_table(result: dict, out_path: Path) -> None:
    print(f"{result['mode']}: {result['device']['name']} -- {result['note']}")  # a CLI script: the table is its job
    header = f"{'method':<36} {'win/s':>9} {'tok/s':>11} {'TFLOP/s':>8} {'peak':>6} {'GiB':>6} {'batch':>6}"
    print(header)
    for name, m in result["methods"].items():
        if "error" in m:
            print(f"{name:<36} FAILED: {m['error']}")
            continue

        def fmt(value, spec):
            width = spec.lstrip(">").split(".")[0]
            return format(value, spec) if value is not None else format("-", f">{width}")
        print(f"{name:<36} {m['windows_per_s']:>9.2f} {fmt(m['tokens_per_s'], '>11.0f')} {fmt(m['tflop_per_s'], '>8.2f')} "
              f"{fmt(m['bf16_peak_fraction'], '>6.1%')} {fmt(m['peak_memory_gib'], '>6.1f')} {m['batch_size']:>6}")
    for name, value in result["speedups"].items():
        print(f"  {name}: {value:.2f}x" if value is not None else f"  {name}: -")
    fb = result["fbank"]
    print(f"  fbank share of an encode ({fb['encoder']}): float64 {fb['fbank_share_f64']:.2%}, "
          f"float32 {fb['fbank_share_f32']:.2%}; encode f64/f32 {fb['encode_f64_over_f32']:.3f}")
    print(f"  wrote {out_path}")


if __name__ == "__main__":
    main()
