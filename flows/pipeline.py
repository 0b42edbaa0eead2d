"""Decode → infer → commit on Ray Data.

Work units stream through two stages: `decode_unit` (CPU tasks: seek into the recording, cut and
resample its windows) and `Predictor` (model actors, loaded once each, batched). The driver gathers
each unit's window rows as they arrive and commits the unit — effort rows, predictions and any
failure — in one catalog transaction, so a crash or a retried task never loses or duplicates a row.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from connectors.audio import WindowSpec, iter_windows, read_header
from connectors.errors import InputError
from connectors.catalog import Catalog
from connectors.storage import open_root
from flows.plan import Unit, zone
from naturelm_core.backend import load_backend

log = logging.getLogger(__name__)

WINDOWS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("config_fingerprint", pa.string()), ("recording_id", pa.string()),
    ("deployment_id", pa.string()), ("channel", pa.int16()), ("window_index", pa.int32()),
    ("offset_s", pa.float64()), ("window_s", pa.float64()), ("duration_s", pa.float64()),
    ("start_utc", pa.timestamp("us", tz="UTC")), ("start_local", pa.timestamp("us")),
    ("date", pa.date32()), ("status", pa.string()), ("padded", pa.bool_()),
    ("error", pa.string()),
])
PREDICTIONS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("model_id", pa.string()), ("config_fingerprint", pa.string()),
    ("recording_id", pa.string()), ("deployment_id", pa.string()), ("channel", pa.int16()),
    ("window_index", pa.int32()), ("offset_s", pa.float64()),
    ("start_utc", pa.timestamp("us", tz="UTC")), ("start_local", pa.timestamp("us")),
    ("date", pa.date32()), ("task", pa.string()), ("prompt_id", pa.string()),
    ("rank", pa.int32()), ("answer_text", pa.string()), ("label", pa.string()),
    ("scientific_name", pa.string()), ("score", pa.float64()),
])
MAX_BLOCKS = 1024

FAILURES_SCHEMA = pa.schema([("recording_id", pa.string()), ("error", pa.string())])


@dataclass(frozen=True)
class DecodeOptions:
    source: str
    storage_options: dict[str, Any]
    window_s: float
    sample_rate_hz: int
    channel_policy: str


def decode_unit(unit: dict[str, Any], options: DecodeOptions) -> list[dict[str, Any]]:
    """Every (window, channel) row of one unit; a decode error fails the rows it left, not the run."""
    n_samples = round(options.window_s * options.sample_rate_hz)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    error = None
    try:
        fs, _ = open_root(options.source, options.storage_options)
        header = read_header(fs, unit["path"], uri=unit["uri"])
        specs = [WindowSpec(int(i), float(o), float(d), bool(p)) for i, o, d, p in unit["windows"]]
        for w in iter_windows(fs, unit["path"], header, specs, options.window_s,
                              options.sample_rate_hz, options.channel_policy, uri=unit["uri"]):
            rows[(w.index, w.channel)] = {
                "audio": w.samples, "valid_samples": w.valid_samples, "status": w.status,
                "error": None,
            }
    except InputError as exc:  # the file's problem is recorded on its windows; the run goes on
        error = str(exc)
    except Exception as exc:  # anything else a decoder throws is the file's problem too
        error = f"{unit['uri']}: {type(exc).__name__}: {exc}"
    if error:
        log.warning("unit %s failed: %s", unit["unit_id"], error)
    out = []
    for index, *_ in unit["windows"]:
        for channel in unit["channels"]:
            row = rows.get((int(index), int(channel))) or {
                "audio": np.zeros(n_samples, np.float32), "valid_samples": 0,
                "status": "failed", "error": error or "window not decoded",
            }
            out.append({"unit_id": unit["unit_id"], "window_index": int(index),
                        "channel": int(channel), **row})
    return out


class Predictor:
    """Ray Data's model stage: the backend loads once per actor and answers batches of windows."""

    def __init__(self, model: str, model_options: dict[str, Any], tasks: tuple[str, ...]):
        self.backend = load_backend(model, **model_options)
        self.tasks = tasks

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["unit_id"])
        answers: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        status = np.array(batch["status"], dtype=object)
        error = np.array(batch["error"], dtype=object)
        todo = np.flatnonzero(status == "ok")
        if len(todo):
            audio = np.stack([np.asarray(batch["audio"][i], np.float32) for i in todo])
            valid = np.asarray(batch["valid_samples"], np.int64)[todo]
            try:
                for p in self.backend.predict(audio, valid, self.tasks):
                    answers[todo[p.item]].append({
                        "task": p.task, "prompt_id": p.prompt_id, "rank": p.rank,
                        "answer_text": p.answer_text, "label": p.label,
                        "scientific_name": p.scientific_name, "score": float(p.score),
                    })
            except Exception as exc:  # a model failure fails these windows, recorded, not the run
                log.exception("model failed on a batch")
                status[todo] = "failed"
                error[todo] = f"model error: {type(exc).__name__}: {exc}"
        return {
            "unit_id": batch["unit_id"],
            "window_index": batch["window_index"],
            "channel": batch["channel"],
            "status": status,
            "error": error,
            "predictions": np.array([json.dumps(a) for a in answers], dtype=object),
        }


@dataclass
class CommitContext:
    run_id: str
    fingerprint: str
    model_id: str
    window_s: float


@dataclass
class ProcessResult:
    units: int = 0
    windows: int = 0
    windows_failed: int = 0
    predictions: int = 0
    uncommitted_units: list[str] = field(default_factory=list)


def unit_tables(unit: Unit, rows: Iterable[dict[str, Any]], ctx: CommitContext
                ) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The windows, predictions and failures rows of one finished unit."""
    spec = {w[0]: w for w in unit.windows}
    tz = zone(unit.tz_name)
    win_rows, pred_rows, failures = [], [], {}
    for r in sorted(rows, key=lambda r: (r["window_index"], r["channel"])):
        # Ray turns an all-None column into NaNs on its way through numpy batches.
        error = r["error"] if isinstance(r["error"], str) and r["error"] else None
        index, offset_s, duration_s, padded = spec[r["window_index"]]
        start = unit.start_utc + timedelta(seconds=offset_s) if unit.start_utc else None
        local = start.astimezone(tz).replace(tzinfo=None) if start else None
        date = start.date() if start else None
        key = {"recording_id": unit.recording_id, "deployment_id": unit.deployment_id,
               "channel": r["channel"], "window_index": index}
        win_rows.append({
            "run_id": ctx.run_id, "config_fingerprint": ctx.fingerprint, **key,
            "offset_s": offset_s, "window_s": ctx.window_s,
            "duration_s": duration_s if r["status"] != "empty" else 0.0,
            "start_utc": start, "start_local": local, "date": date, "status": r["status"],
            "padded": padded, "error": error,
        })
        if r["status"] == "failed":
            failures.setdefault(unit.recording_id, error or "failed")
        for p in json.loads(r["predictions"]):
            pred_rows.append({
                "run_id": ctx.run_id, "model_id": ctx.model_id,
                "config_fingerprint": ctx.fingerprint, **key, "offset_s": offset_s,
                "start_utc": start, "start_local": local, "date": date, **p,
            })
    return (
        pa.Table.from_pylist(win_rows, WINDOWS_SCHEMA),
        pa.Table.from_pylist(pred_rows, PREDICTIONS_SCHEMA),
        pa.Table.from_pylist(
            [{"recording_id": k, "error": v} for k, v in failures.items()], FAILURES_SCHEMA
        ),
    )


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local one (never a stale cluster file)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # More logical CPUs than cores: decode tasks and a model actor each reserve one, and on a
        # 2-core laptop an actor pool holding every CPU would starve decoding forever.
        ray.init(address="local", include_dashboard=False,
                 num_cpus=max(4, os.cpu_count() or 1), log_to_driver=False)


def process_units(units: list[Unit], catalog: Catalog, ctx: CommitContext, *, decode: DecodeOptions,
                  model: str, model_options: dict[str, Any], tasks: tuple[str, ...],
                  batch_size: int, model_actors: int, decode_cpus: float, actor_cpus: float,
                  actor_gpus: float) -> ProcessResult:
    """Run every unit through Ray Data and commit each one as soon as all its rows are back."""
    result = ProcessResult()
    if not units:
        return result
    import ray

    ensure_ray()
    by_id = {u.unit_id: u for u in units}
    # One block per unit lets every unit start on its own worker; past a thousand, blocks of a
    # few units each keep Ray's scheduling overhead flat on very large backlogs.
    ds = ray.data.from_items([u.as_dict() for u in units],
                             override_num_blocks=min(len(units), MAX_BLOCKS))
    ds = ds.flat_map(decode_unit, fn_kwargs={"options": decode}, num_cpus=decode_cpus)
    ds = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": model, "model_options": model_options, "tasks": tasks},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=model_actors),
        num_cpus=actor_cpus,
        num_gpus=actor_gpus,
    )
    pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
    committed: set[str] = set()
    total_rows = sum(u.expected_rows for u in units)
    started = time.monotonic()
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            unit = by_id[row["unit_id"]]
            pending[unit.unit_id].append(row)
            if len(pending[unit.unit_id]) < unit.expected_rows:
                continue
            windows, predictions, failures = unit_tables(unit, pending.pop(unit.unit_id), ctx)
            catalog.commit_unit(windows, predictions, failures)
            committed.add(unit.unit_id)
            result.units += 1
            result.windows += windows.num_rows
            result.windows_failed += sum(s == "failed" for s in windows["status"].to_pylist())
            result.predictions += predictions.num_rows
            elapsed = time.monotonic() - started
            log.info("committed unit %d/%d (%s, windows %d-%d) — %.1f windows/s",
                     result.units, len(units), unit.uri, unit.windows[0][0], unit.windows[-1][0],
                     result.windows / max(elapsed, 1e-9))
    # A unit whose rows never came back at all is as uncommitted as one that came back short.
    result.uncommitted_units = sorted(set(by_id) - committed)
    if result.uncommitted_units:
        log.error("%d units were not committed (a re-run plans them again): %s",
                  len(result.uncommitted_units), ", ".join(result.uncommitted_units))
    log.info("committed %d of %d planned window rows in %.1f s", result.windows, total_rows,
             time.monotonic() - started)
    return result
