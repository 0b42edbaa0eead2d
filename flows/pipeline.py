"""The Ray Data wiring of decode → infer → commit (the stages themselves are in `flows.stages`).

Work units stream through `decode_unit` (CPU tasks) and `Predictor` (model actors, loaded once
each, batched). The driver gathers each unit's rows as they arrive; finished units wait at most
`COMMIT_INTERVAL_S` (or `COMMIT_MAX_ROWS` rows) and then commit together in one catalog
transaction. A unit is never split across transactions, so a crash or a retried task never loses
or duplicates a row, and one commit (one Parquet file per table and partition) covers many units.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from connectors.catalog import Catalog
from connectors.errors import ConfigError
from connectors.tables import EmbeddingRow, PredictionRow, WindowRow
from flows.plan import Unit
from flows.stages import CommitContext, DecodeOptions, Predictor, decode_unit, unit_embeddings, unit_rows

log = logging.getLogger(__name__)

#: Ray Data input blocks at most: past a thousand units, blocks of a few units each keep Ray's
#: scheduling overhead flat on very large backlogs.
MAX_BLOCKS = 1024
#: Finished units wait at most this long for company before they commit: a crash loses at most
#: this much finished work (re-planned, never duplicated), and a night writes one file per table
#: and partition per interval instead of one per unit.
COMMIT_INTERVAL_S = 15.0
#: ... or until they hold this many window + prediction rows (bounded driver memory).
COMMIT_MAX_ROWS = 200_000


@dataclass
class ProcessResult:
    units: int = 0
    windows: int = 0
    windows_failed: int = 0
    predictions: int = 0
    embeddings: int = 0
    uncommitted_units: list[str] = field(default_factory=list)


def check_ray_address() -> None:
    """Refuse a RAY_ADDRESS this pipeline cannot use, before any work (ConfigError, one line).

    Ray Client (`ray://host:10001`) cannot run Ray Data 2.60: its streaming executor needs the
    driver's own core worker, which a client does not have (it fails with "'Worker' object has no
    attribute 'core_worker'"), and the client server's start-up is itself unreliable
    (ray-project/ray#63202). Run the driver inside the cluster instead - a Prefect worker pod
    (infra/prefect-k8s-work-pool.json) or `ray job submit` - with RAY_ADDRESS=<head>:6379.
    """
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address.startswith("ray://"):
        raise ConfigError(
            f"RAY_ADDRESS={address}: Ray Client (ray://) addresses cannot run Ray Data pipelines; "
            "run the driver inside the cluster (a Prefect worker pod or `ray job submit`) with "
            "RAY_ADDRESS=<head>:6379 (docs/deploy.md)"
        )


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local one (never a stale cluster file)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    check_ray_address()
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
                  actor_gpus: float, embeddings: bool = False, candidates: bool = False,
                  decode_workers: int | None = None,
                  on_commit: Callable[[ProcessResult, Unit], None] | None = None,
                  commit_interval_s: float = COMMIT_INTERVAL_S,
                  commit_max_rows: int = COMMIT_MAX_ROWS) -> ProcessResult:
    """Run every unit through Ray Data; commit finished units in batches (whole units only).

    `on_commit(result, unit)` is called for each unit once its transaction has committed.
    `decode_workers` caps the decode tasks running at once (None: as many as the CPUs allow).
    """
    result = ProcessResult()
    if not units:
        return result
    import ray

    ensure_ray()
    by_id = {u.unit_id: u for u in units}
    ds = ray.data.from_items([u.as_item() for u in units],
                             override_num_blocks=min(len(units), MAX_BLOCKS))
    ds = ds.flat_map(decode_unit, fn_kwargs={"options": decode}, num_cpus=decode_cpus,
                     concurrency=decode_workers)
    ds = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": model, "model_options": model_options, "tasks": tasks,
                               "embeddings": embeddings, "candidates": candidates},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=model_actors),
        num_cpus=actor_cpus,
        num_gpus=actor_gpus,
    )
    pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
    committed: set[str] = set()
    finished: list[tuple[Unit, list[WindowRow], list[PredictionRow], list[EmbeddingRow]]] = []
    finished_rows = 0
    oldest = 0.0
    started = time.monotonic()

    def commit_finished() -> None:
        nonlocal finished_rows
        if not finished:
            return
        catalog.commit_units([(windows, predictions, vectors)
                              for _, windows, predictions, vectors in finished])
        for unit, windows, predictions, vectors in finished:
            committed.add(unit.unit_id)
            result.units += 1
            result.windows += len(windows)
            result.windows_failed += sum(w.status == "failed" for w in windows)
            result.predictions += len(predictions)
            result.embeddings += len(vectors)
            if on_commit is not None:
                on_commit(result, unit)
        log.debug("committed %d units in one transaction (%d/%d)", len(finished), result.units,
                  len(units))
        finished.clear()
        finished_rows = 0

    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                unit = by_id[row["unit_id"]]
                pending[unit.unit_id].append(row)
                if len(pending[unit.unit_id]) < unit.expected_rows:
                    continue
                rows = pending.pop(unit.unit_id)
                windows, predictions = unit_rows(unit, rows, ctx)
                vectors = unit_embeddings(unit, rows, ctx)
                if not finished:
                    oldest = time.monotonic()
                finished.append((unit, windows, predictions, vectors))
                finished_rows += len(windows) + len(predictions) + len(vectors)
                if (finished_rows >= commit_max_rows
                        or time.monotonic() - oldest >= commit_interval_s):
                    commit_finished()
    finally:
        commit_finished()  # units that finished are never lost to a later failure
    # A unit whose rows never came back at all is as uncommitted as one that came back short.
    result.uncommitted_units = sorted(set(by_id) - committed)
    if result.uncommitted_units:
        log.error("%d units were not committed (a re-run plans them again): %s",
                  len(result.uncommitted_units), ", ".join(result.uncommitted_units))
    log.info("committed %d window rows of %d units in %.1f s", result.windows, result.units,
             time.monotonic() - started)
    return result
