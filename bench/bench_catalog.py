"""The catalog at scale: every analysis over >= 10 M predictions, and a season's files before and
after `maintain`.

Run through `make bench`, or `.venv/bin/python -m bench.bench_catalog [--predictions 10e6]`.

1. Latency: a catalog of synthetic BirdNET-like results (3-s windows, a detect and three
   classify answers each, scores drawn so that a few percent pass the detection threshold) is
   bulk-loaded through `Catalog.commit_tables`, maintained, and every `sql/analyses/*.sql` query
   runs through `CatalogReader.analysis`: required parameters from `PARAMETERS` (by the names in
   each file's `-- param:` header), the others at their defaults. Repeats interleave the analyses; median and range per analysis.
2. Files: a simulated season of nightly runs (each night's units committed as the driver does,
   several units per transaction), then `maintain` with no snapshot kept and files deleted at
   once: file counts and bytes on disk before and after, and that every row is still there.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]

from bench.bench_decode import load_average  # noqa: E402
from bench.common import summary  # noqa: E402
from connectors.analyses import all_analyses  # noqa: E402
from connectors.catalog import Catalog, CatalogReader, DataFiles  # noqa: E402
from connectors.tables import PREDICTIONS, WINDOWS, RecordingRow, RunRow  # noqa: E402

RUN_ID = "bench-run"
FINGERPRINT = "bench-fp"
MODEL_ID = "birdnet-v2.4@sha256:bench"
WINDOW_S = 3.0
SPECIES = [f"Species {i:04d}" for i in range(400)]
#: A value for each required parameter an analysis header declares (`-- param: NAME TYPE -- ...`,
#: connectors/analyses.py); optional parameters keep their defaults. The synthetic catalog has one
#: fingerprint, so `agreement` compares it with itself (the same work as two: both sides are read).
PARAMETERS = {"run_id": RUN_ID, "config_fingerprint": FINGERPRINT, "fingerprint_a": FINGERPRINT,
              "fingerprint_b": FINGERPRINT, "deployment_id": "dep-000", "species": SPECIES[0]}


def analyses() -> dict[str, dict | KeyError]:
    """name -> parameter values, for every analysis in sql/analyses (discovered, never listed by
    hand); a KeyError names a required parameter PARAMETERS has no value for."""
    out: dict[str, dict | KeyError] = {}
    for analysis in all_analyses():
        required = [p.name for p in analysis.parameters if p.required]
        missing = [name for name in required if name not in PARAMETERS]
        out[analysis.name] = KeyError(missing) if missing else {n: PARAMETERS[n] for n in required}
    return out


def recording_rows(deployments: int, nights: int, hours: float) -> list[RecordingRow]:
    start = datetime(2024, 6, 1, 20, 0, tzinfo=timezone.utc)
    return [RecordingRow(
        recording_id=f"rec-{d:03d}-{n:03d}", deployment_id=f"dep-{d:03d}",
        uri=f"s3://season/dep-{d:03d}/{n:03d}.WAV", object_key=f"dep-{d:03d}/{n:03d}.WAV",
        size_bytes=int(hours * 3600 * 96_000), etag=f"e{d}{n}", mtime=start, duration_s=hours * 3600,
        frames=int(hours * 3600 * 48_000), sample_rate_hz=48_000, channels=1, format="WAV",
        subtype="PCM_16", start_utc=start + timedelta(days=n), tz_name="Europe/London",
        time_source="filename", tz_source="deployment", status="ok", error=None, run_id=RUN_ID,
        discovered_at=start) for d in range(deployments) for n in range(nights)]


def unit_tables(rec: RecordingRow, first: int, count: int, rng: np.random.Generator
                ) -> tuple[pa.Table, pa.Table]:
    """Windows [first, first+count) of `rec`, with a detect and three classify answers each."""
    index = np.arange(first, first + count, dtype=np.int32)
    offset = index * WINDOW_S
    start = np.datetime64(rec.start_utc.replace(tzinfo=None), "us") + (offset * 1e6).astype("timedelta64[us]")
    local = start + np.timedelta64(1, "h")
    day = start.astype("datetime64[D]")
    windows = WINDOWS.conform({
        "run_id": [RUN_ID] * count, "config_fingerprint": [FINGERPRINT] * count,
        "recording_id": [rec.recording_id] * count, "deployment_id": [rec.deployment_id] * count,
        "channel": np.zeros(count, np.int16), "window_index": index, "offset_s": offset,
        "window_s": np.full(count, WINDOW_S), "duration_s": np.full(count, WINDOW_S),
        "start_utc": pa.array(start, pa.timestamp("us", tz="UTC")), "start_local": local,
        "date": day, "status": ["ok"] * count, "padded": np.zeros(count, bool),
        "error": pa.nulls(count, pa.string()),
    })
    k = 4  # detect + top-3 classify
    rep = np.repeat(np.arange(count), k)
    task = np.tile(np.array(["detect", "classify", "classify", "classify"], dtype=object), count)
    rank = np.tile(np.array([1, 1, 2, 3], np.int32), count)
    species = np.array(SPECIES, dtype=object)[rng.integers(0, len(SPECIES), count * k)]
    # Beta(0.3, 3): most answers are unsure, a few percent pass 0.5 (as field audio does).
    score = np.sort(rng.beta(0.3, 3.0, (count, 3)), axis=1)[:, ::-1]
    scores = np.column_stack([score[:, 0], score]).ravel()
    label = np.where(task == "detect", "animal", species)
    predictions = PREDICTIONS.conform({
        "run_id": [RUN_ID] * (count * k), "model_id": [MODEL_ID] * (count * k),
        "config_fingerprint": [FINGERPRINT] * (count * k),
        "recording_id": [rec.recording_id] * (count * k),
        "deployment_id": [rec.deployment_id] * (count * k),
        "channel": np.zeros(count * k, np.int16), "window_index": index[rep], "offset_s": offset[rep],
        "start_utc": pa.array(start[rep], pa.timestamp("us", tz="UTC")), "start_local": local[rep],
        "date": day[rep], "task": task, "prompt_id": np.where(task == "detect", "birdnet:max-species", "birdnet:species"),
        "rank": rank, "answer_text": label, "label": label,
        "scientific_name": np.where(task == "detect", None, species), "score": scores,
    })
    return windows, predictions


def build(results: Path, deployments: int, nights: int, hours: float, units_per_commit: int,
          unit_windows: int, maintain_each_night: bool = False) -> tuple[Catalog, int]:
    rng = np.random.default_rng(0)
    catalog = Catalog(results)
    now = datetime.now(timezone.utc)
    catalog.start_run(RunRow(run_id=RUN_ID, flow="nightly", started_at=now, finished_at=None,
                             status="running", parameters="{}", config_fingerprint=FINGERPRINT,
                             model_id=MODEL_ID, code_version="bench", counts=None, host="bench",
                             pid=0, interrupted_at=None))
    recs = recording_rows(deployments, nights, hours)
    catalog.register_recordings(recs, [])
    per_rec = int(hours * 3600 / WINDOW_S)
    commits = 0
    for night in range(nights):
        tonight = [r for r in recs if r.recording_id.endswith(f"-{night:03d}")]
        starts = [(rec, first) for first in range(0, per_rec, unit_windows) for rec in tonight]
        for i in range(0, len(starts), units_per_commit):
            parts = [unit_tables(rec, first, min(unit_windows, per_rec - first), rng)
                     for rec, first in starts[i : i + units_per_commit]]
            catalog.commit_tables(pa.concat_tables([w for w, _ in parts]),
                                  pa.concat_tables([p for _, p in parts]))
            commits += 1
        if maintain_each_night:
            catalog.maintain()
    return catalog, commits


def latency(results: Path, rounds: int) -> dict:
    queries = analyses()
    runnable = {name: params for name, params in queries.items() if not isinstance(params, KeyError)}
    times: dict[str, list[float]] = {name: [] for name in runnable}
    rows: dict[str, int] = {}
    with CatalogReader(results) as reader:
        for _ in range(rounds):  # interleaved: every analysis once per round
            for name, params in runnable.items():
                started = time.perf_counter()
                table = reader.analysis(name, params)
                times[name].append(time.perf_counter() - started)
                rows[name] = table.num_rows
    return {name: ({"skipped": f"no value for required parameter(s) {params}: add them to PARAMETERS"}
                   if isinstance(params, KeyError) else {"seconds": summary(times[name]), "rows": rows[name]})
            for name, params in queries.items()}


def counts(results: Path) -> dict:
    with CatalogReader(results) as reader:
        return reader.query("select (select count(*) from windows) as windows, "
                            "(select count(*) from predictions) as predictions").to_pylist()[0]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=float, default=10e6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--season-nights", type=int, default=30)
    parser.add_argument("--season-deployments", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "catalog.json")
    args = parser.parse_args(argv)
    result = {"load_average_1min_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="dawnchorus-bench-catalog-") as tmp:
        # 1. Latency: 25 deployments x N nights of 10 h at 3-s windows, 4 answers per window.
        deployments, hours = 25, 10.0
        nights = max(1, int(np.ceil(args.predictions / (deployments * hours * 1200 * 4))))
        started = time.perf_counter()
        catalog, commits = build(Path(tmp) / "big", deployments, nights, hours, units_per_commit=160,
                                 unit_windows=100)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        catalog.maintain(retention=timedelta(0), keep_for_readers=False)
        maintain_s = time.perf_counter() - started
        catalog.close()
        result["latency"] = {"catalog": {**counts(Path(tmp) / "big"), "deployments": deployments,
                                         "nights": nights, "commits": commits, "load_s": load_s,
                                         "maintain_s": maintain_s,
                                         "files": DataFiles.under(Path(tmp) / "big" / "data").__dict__},
                             "analyses": latency(Path(tmp) / "big", args.rounds),
                             "target_s": 1.0}
        # 2. A season of nights, units committed several per transaction as the driver does.
        started = time.perf_counter()
        catalog, commits = build(Path(tmp) / "season", args.season_deployments, args.season_nights,
                                 hours=2.0, units_per_commit=6, unit_windows=100)
        season_s = time.perf_counter() - started
        before = DataFiles.under(Path(tmp) / "season" / "data")
        rows_before = counts(Path(tmp) / "season")
        started = time.perf_counter()
        report = catalog.maintain(retention=timedelta(0), keep_for_readers=False)
        catalog.close()
        result["season"] = {
            "nights": args.season_nights, "deployments": args.season_deployments,
            "hours_per_night": 2.0, "commits": commits, "build_s": season_s,
            "maintain_s": time.perf_counter() - started,
            "files_before": before.files, "bytes_before": before.bytes,
            "files_after": report.after.files, "bytes_after": report.after.bytes,
            "files_ratio_before_over_after": before.files / max(report.after.files, 1),
            "rows_before": rows_before, "rows_after": counts(Path(tmp) / "season"),
        }
    result["load_average_1min_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, default=str))  # a CLI script: printing its result is its job
