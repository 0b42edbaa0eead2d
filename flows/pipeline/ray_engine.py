"""The Ray Data wiring of decode → infer → commit (the stages themselves are in `flows.pipeline.stages`).

Work units stream through `decode_unit` (CPU tasks) and `Predictor` (model actors, loaded once
each, batched), or, for models on CPU, through `DecodingPredictor` (both stages in each model
actor; `decode_placement`). The driver gathers each unit's rows as they arrive; finished units
wait at most the run's `commit_interval_s` (or `COMMIT_MAX_ROWS` rows) and then commit together in one
catalog transaction. A unit is never split across transactions, so a crash or a retried task
never loses or duplicates a row, and one commit (one Parquet file per table and partition) covers
many units.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from connectors.catalog import Catalog
from connectors.errors import ConfigError
from connectors.tables import EmbeddingRow, PredictionRow, WindowRow
from flows.pipeline.passes import PassSettings
from flows.pipeline.plan import Unit
from flows.pipeline.stages import (
    CommitContext, DecodeOptions, DecodingPredictor, Predictor, decode_unit, unit_embeddings, unit_rows,
)

log = logging.getLogger(__name__)

#: Ray Data input blocks at most: past a thousand units, blocks of a few units each keep Ray's
#: scheduling overhead flat on very large backlogs.
MAX_BLOCKS = 1024
#: Units per call of a decoding model actor: it decodes the next while it answers one (the
#: first of each call is not overlapped), and answers stream back batch by batch either way.
UNITS_PER_ACTOR_CALL = 4


def quiet_ray_data_progress() -> Callable[[], None]:
    """Ray Data draws progress bars of its own on stderr: off (the CLI draws its own during a
    run); the function returned turns them back on."""
    try:
        import ray.data
    except Exception:
        return lambda: None
    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars
    ctx.enable_progress_bars = False

    def restore() -> None:
        ctx.enable_progress_bars = before

    return restore


def resolve_decode_placement(placement: str, actor_gpus: float) -> str:
    """"tasks" or "actor" for a `decode_placement` setting ("auto": actor unless on GPUs)."""
    if placement == "auto":
        return "tasks" if actor_gpus > 0 else "actor"
    if placement not in ("tasks", "actor"):
        raise ConfigError(f"decode_placement must be auto, tasks or actor, got {placement!r}")
    return placement


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


_RAY_INIT = threading.Lock()
_STARTER = threading.Lock()
_starting: Future | None = None  # the background start in flight, or the one that succeeded


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local one (never a stale cluster file).

    Safe from any thread; a call while another thread is starting Ray waits for it.
    """
    import ray

    with _RAY_INIT:
        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        check_ray_address()
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # More logical CPUs than cores: decode tasks and a model actor each reserve one, and
            # on a 2-core laptop an actor pool holding every CPU would starve decoding forever.
            ray.init(address="local", include_dashboard=False,
                     num_cpus=max(4, os.cpu_count() or 1), log_to_driver=False)


class _NotMainThread(logging.Filter):
    """Drops Ray's warning that a background start sets no SIGTERM handler (we set it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def start_ray() -> Future:
    """Start Ray (`ensure_ray`) in the background; the future is done once it is up.

    A bad RAY_ADDRESS is refused here, at once. The starting thread then stays alive for the
    rest of the process: a local Ray's processes are started with PR_SET_PDEATHSIG, which Linux
    fires when the *thread* that started them ends, so a finished starter would take the cluster
    down with it. Ray sets its SIGTERM handler (SIGTERM -> SystemExit, so `finally` blocks record
    the run's end) only from the main thread; called from there, this sets the same one.
    """
    import ray

    global _starting
    check_ray_address()
    with _STARTER:
        if _starting is not None and not (_starting.done() and (
                _starting.exception() is not None or not ray.is_initialized())):
            return _starting  # already starting, or started and still up
        _starting = _start_in_background()
        return _starting


def _start_in_background() -> Future:
    import ray

    started: Future = Future()
    if ray.is_initialized():
        started.set_result(None)
        return started
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
    logging.getLogger("ray._private.worker").addFilter(_NotMainThread())

    def owner() -> None:
        try:
            ensure_ray()
        except BaseException as exc:  # raised where the run waits for Ray
            started.set_exception(exc)
            return
        started.set_result(None)
        threading.Event().wait()  # keep the cluster's parent thread alive (see above)

    threading.Thread(target=owner, name="dawnchorus-ray", daemon=True).start()
    return started


def process_units(units: list[Unit], catalog: Catalog, ctx: CommitContext, *, decode: DecodeOptions,
                  options: PassSettings,
                  on_commit: Callable[[ProcessResult, Unit], None] | None = None,
                 on_analysed: Callable[[int, float], None] | None = None) -> ProcessResult:
    """Run every unit through Ray Data; commit finished units in batches (whole units only).

    `options` is the pass (`flows.pipeline.passes`): its model and tasks, and the run's knobs.

    `on_commit(result, unit)` is called for each unit once its transaction has committed;
    `on_analysed(windows, audio_s)` as each batch of answered windows reaches the driver (before
    it commits), so a progress bar moves with the model rather than with the commits.
    `options.decode_placement`: "tasks" decodes in Ray tasks of their own, `decode_workers` at most at
    once (None: as many as the CPUs allow), each unit's windows going to the model actors through
    the object store; "actor" decodes in the model actors themselves (`DecodingPredictor`), which
    on CPU saves the copies and the tasks' share of the cores; "auto" is "actor" unless the model
    actors hold GPUs (there decoding must spread over the node's CPUs to keep a GPU fed).
    """
    result = ProcessResult()
    if not units:
        return result
    import ray

    o = options
    model, model_options, tasks, embeddings, candidates = (
        o.model, o.model_options, o.tasks, o.embeddings, o.candidates)
    batch_size, model_actors, decode_cpus, actor_cpus, actor_gpus = (
        o.batch_size, o.model_actors, o.decode_cpus, o.actor_cpus, o.actor_gpus)
    decode_workers, decode_placement = o.decode_workers, o.decode_placement
    commit_interval_s, commit_max_rows = o.commit_interval_s, o.commit_max_rows

    ensure_ray()
    by_id = {u.unit_id: u for u in units}
    ds = ray.data.from_items([u.as_item() for u in units],
                             override_num_blocks=min(len(units), MAX_BLOCKS))
    predictor = {"model": model, "model_options": model_options, "tasks": tasks,
                 "embeddings": embeddings, "candidates": candidates}
    if resolve_decode_placement(decode_placement, actor_gpus) == "actor":
        ds = ds.map_batches(
            DecodingPredictor,
            fn_constructor_kwargs={"decode": decode, "batch_size": batch_size, **predictor},
            batch_size=UNITS_PER_ACTOR_CALL, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=model_actors),
            num_cpus=actor_cpus, num_gpus=actor_gpus,
        )
    else:
        ds = ds.flat_map(decode_unit, fn_kwargs={"options": decode}, num_cpus=decode_cpus,
                         concurrency=decode_workers)
        ds = ds.map_batches(
            Predictor, fn_constructor_kwargs=predictor, batch_size=batch_size,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=model_actors),
            num_cpus=actor_cpus, num_gpus=actor_gpus,
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
            rows_in_batch = batch.to_pylist()
            if on_analysed is not None and rows_in_batch:
                on_analysed(len(rows_in_batch),
                            sum(float(r.get("duration_s") or 0.0) for r in rows_in_batch))
            for row in rows_in_batch:
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
