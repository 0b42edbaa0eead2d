"""`make bench`: every benchmark in one run; writes bench/results/latest.json and docs/benchmarks.md.

`.venv/bin/python -m bench.run_all [--hours 6] [--rounds 1] [--predictions 10e6]`, or `--quick`
(`make bench-quick`: every section at a small size, a few minutes, written to bench/results/quick.*
so that a smoke never replaces the committed figures). The sections
(each also runs alone) are bench_pipeline.py (efficiency, incumbents, decode workers, null model,
memory), bench_catalog.py (analysis latency, files before and after maintain) and
bench_naturelm.py (the NatureLM-audio CPU engine ratios), bench_similar.py (similarity search
over a season's embeddings: the in-memory scan against SQL) and bench_learn.py (training and
applying a classifier over stored embeddings). Every figure is a median over repeats
with its range; ratios are taken within a round, between methods run back to back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from bench import bench_catalog, bench_pipeline  # noqa: E402
from bench.bench_decode import load_average  # noqa: E402
from bench.common import machine, summary  # noqa: E402

LATEST = REPO / "bench" / "results" / "latest.json"
DOC = REPO / "docs" / "benchmarks.md"
#: `--quick`: every section runs, at sizes that check the benchmark works, not what it measures.
QUICK = {"hours": 0.2, "decode_hours": 0.05, "memory_hours": "0.05,0.1", "predictions": 2e5,
         "catalog_rounds": 1, "season_nights": 3, "season_deployments": 2, "naturelm_rounds": 1,
         "similar_windows": 2e4, "birdnet_windows": 12, "learn_windows": 1e4,
         "out": REPO / "bench" / "results" / "quick.json", "doc": REPO / "bench" / "results" / "quick.md"}
TARGETS = {"pipeline_efficiency": 0.85, "speedup_vs_incumbent": 1.5, "analysis_latency_s": 1.0,
           "ceiling_over_litert": 1.7, "embeddings_overhead": 0.05}


def naturelm(rounds: int) -> dict:
    out = REPO / "bench" / "results" / "naturelm.json"
    subprocess.run([sys.executable, "-m", "bench.bench_naturelm", "--rounds", str(rounds),
                    "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    raw = json.loads(out.read_text())
    s = raw["seconds"]
    return {
        "batched_over_loop": {"speedup": summary([l / b for l, b in zip(s["loop"], s["batched"])]),
                              "batched_s": summary(s["batched"]), "loop_s": summary(s["loop"])},
        "one_encoding_over_three_calls": {
            "speedup": summary([sep / tog for sep, tog in zip(s["separate"], s["together"])]),
            "together_s": summary(s["together"]), "separate_s": summary(s["separate"])},
        "config": raw["config"],
    }


def similar(windows: float) -> dict:
    out = REPO / "bench" / "results" / "similar.json"
    subprocess.run([sys.executable, "-m", "bench.bench_similar", "--windows", str(windows),
                    "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    return json.loads(out.read_text())


def learn_section(windows: float) -> dict:
    """`dawnchorus learn` over a season of stored embeddings (`bench_learn.py`, one run)."""
    out = REPO / "bench" / "results" / "learn.json"
    subprocess.run([sys.executable, "-m", "bench.bench_learn", "--windows", str(windows),
                    "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    return json.loads(out.read_text())


def birdnet_runtimes(windows: int, rounds: int) -> dict:
    """BirdNET's runtimes side by side in one process (`bench_birdnet.py --sections runtimes`):
    the split ceiling over LiteRT's whole model, and the cost of embeddings."""
    from bench import bench_birdnet

    return bench_birdnet.main(["--sections", "runtimes", "--windows", str(windows), "--rounds", str(rounds),
                               "--out", str(REPO / "bench" / "results" / "birdnet.json")])


def headline(details: dict) -> dict:
    eff, dec, mem, cat = (details.get(k, {}) for k in ("efficiency", "decode", "memory", "catalog"))
    out: dict = {}
    if eff:
        out["pipeline_efficiency"] = {**eff["pipeline_efficiency"], "target": TARGETS["pipeline_efficiency"]}
        out["speedup_vs_incumbent"] = {**eff["speedup_vs_birdnetlib"], "incumbent": "birdnetlib 0.18.1",
                                       "target": TARGETS["speedup_vs_incumbent"]}
        out["speedup_vs_birdnet"] = {**eff["speedup_vs_birdnet"], "incumbent": "birdnet 1.3.1"}
        out["audio_s_per_wall_s"] = {"ours": eff["ours_audio_s_per_s"], "ceiling": eff["ceiling_audio_s_per_s"],
                                     **{t: eff[f"{t}_audio_s_per_s"] for t in ("birdnetlib", "birdnet")
                                        if f"{t}_audio_s_per_s" in eff}}
        if "ceiling_over_litert" in eff:
            out["ceiling_over_litert"] = {**eff["ceiling_over_litert"], "runtime": eff.get("ceiling_runtime"),
                                          "target": TARGETS["ceiling_over_litert"]}
    if "birdnet" in details:
        r = details["birdnet"]["runtimes"]
        out["birdnet_runtimes"] = {"over_litert": r["over_litert"], "default": r["default"],
                                   "embeddings_overhead": r["embeddings_overhead"],
                                   "embeddings_overhead_target": TARGETS["embeddings_overhead"]}
    if dec:
        out["decode_workers_2_over_1"] = dec["decode_workers_speedup_2_over_1"]
        out["null_model_run_over_raw_decode"] = dec["null_run_over_raw_decode"]
    if mem:
        out["peak_memory_mb"] = {k: v["peak_mb"] for k, v in mem.items()}
    if cat:
        out["analysis_latency_s"] = {k: v.get("seconds", v) for k, v in cat["latency"]["analyses"].items()}
        out["catalog_predictions"] = cat["latency"]["catalog"]["predictions"]
        out["season_files"] = {k: cat["season"][k] for k in ("files_before", "files_after",
                                                             "bytes_before", "bytes_after")}
    if "naturelm" in details:
        n = details["naturelm"]
        out["naturelm_cpu"] = {"batched_over_loop": n["batched_over_loop"]["speedup"],
                               "one_encoding_over_three_calls": n["one_encoding_over_three_calls"]["speedup"]}
    if "similar" in details:
        s = details["similar"]
        out["similar_search"] = {k: s[k] for k in ("windows", "dim", "load_s", "scan_s_median",
                                                  "sql_scan_s", "sql_over_scan", "sql_agrees_top5")}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0, help="audio of the efficiency run (>= 6)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the pipeline comparisons")
    parser.add_argument("--decode-hours", type=float, default=1.0)
    parser.add_argument("--memory-hours", default="1,6,24")
    parser.add_argument("--predictions", type=float, default=10e6)
    parser.add_argument("--catalog-rounds", type=int, default=3)
    parser.add_argument("--season-nights", type=int, default=30)
    parser.add_argument("--season-deployments", type=int, default=4)
    parser.add_argument("--naturelm-rounds", type=int, default=3)
    parser.add_argument("--similar-windows", type=float, default=1e6)
    parser.add_argument("--birdnet-windows", type=int, default=96,
                        help="10-s windows of audio in the BirdNET runtimes section")
    parser.add_argument("--birdnet-rounds", type=int, default=3)
    parser.add_argument("--learn-windows", type=float, default=1e5,
                        help="stored embeddings the learn section trains and applies over")
    parser.add_argument("--sections", default="pipeline,birdnet,catalog,naturelm,similar,learn")
    parser.add_argument("--pipeline-json", type=Path,
                        help="reuse this bench_pipeline.py result instead of running the pipeline section")
    parser.add_argument("--out", type=Path, default=LATEST)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke of every section at small sizes, to bench/results/quick.*")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    sections = args.sections.split(",")
    started = time.perf_counter()
    details: dict = {"load_average_1min_before": load_average()}
    if args.pipeline_json:
        details.update(json.loads(args.pipeline_json.read_text()))
    elif "pipeline" in sections:
        details.update(bench_pipeline.main([
            "--hours", str(args.hours), "--rounds", str(args.rounds), "--decode-hours", str(args.decode_hours),
            "--memory-hours", args.memory_hours, "--out", str(REPO / "bench" / "results" / "pipeline.json")]))
    if "birdnet" in sections:
        details["birdnet"] = birdnet_runtimes(args.birdnet_windows, args.birdnet_rounds)
    if "catalog" in sections:
        details["catalog"] = bench_catalog.main(["--predictions", str(args.predictions), "--rounds",
                                                 str(args.catalog_rounds),
                                                 "--season-nights", str(args.season_nights),
                                                 "--season-deployments", str(args.season_deployments),
                                                 "--out", str(REPO / "bench" / "results" / "catalog.json")])
    if "naturelm" in sections:
        details["naturelm"] = naturelm(args.naturelm_rounds)
    if "similar" in sections:
        details["similar"] = similar(args.similar_windows)
    if "learn" in sections:
        details["learn"] = learn_section(args.learn_windows)
    details["load_average_1min_after"] = load_average()
    latest = {"machine": machine(), "wall_s": time.perf_counter() - started,
              "command": "make bench-quick" if args.quick else "make bench " + " ".join(argv or sys.argv[1:]),
              **headline(details), "details": details}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(latest, indent=2, default=str) + "\n", encoding="utf-8")
    from bench.report import render

    args.doc.write_text(render(latest), encoding="utf-8")
    return latest


if __name__ == "__main__":
    main()
