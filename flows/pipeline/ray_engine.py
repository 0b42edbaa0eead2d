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
import socket
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable

from connectors.catalog import Catalog
from connectors.errors import ConfigError, ServiceError
from connectors.tables import EmbeddingRow, PredictionRow, SpeechMarkRow, WindowRow
from flows.pipeline.passes import PassSettings
from flows.pipeline.plan import Unit
from flows.pipeline.speech import unit_speech_marks
from flows.pipeline.stages import (
    UNAVAILABLE, CommitContext, DecodeOptions, DecodingPredictor, Predictor, decode_unit,
    unit_embeddings, unit_rows,
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
    #: Windows a service failed to give (storage errors, a dead endpoint): no row is committed
    #: for them, so the next run plans them again, without --retry-failed.
    windows_unavailable: int = 0
    #: service -> (windows it failed, one of its errors): what `flows.pipeline.run` reports.
    service_failures: dict[str, tuple[int, str]] = field(default_factory=dict)

    def service_failed(self, service: str, error: str, windows: int = 0) -> None:
        count, first = self.service_failures.get(service, (0, error))
        self.service_failures[service] = (count + windows, first)


def _without_unavailable(windows: list[WindowRow], result: ProcessResult) -> list[WindowRow]:
    """The unit's windows minus those a service failed to give (counted in `result`): no row is
    committed for them, so they stay unplanned work for the next run, not failed windows."""
    kept = [w for w in windows if w.status != UNAVAILABLE]
    if len(kept) == len(windows):
        return windows
    for w in windows:
        if w.status == UNAVAILABLE:
            result.windows_unavailable += 1
            error = w.error or "unavailable"
            service = error.split(": ", 1)[0]
            result.service_failed(service, error, windows=1)
    return kept


def ray_failure(exc: BaseException) -> str | None:
    """One line when `exc` (or one of its causes) is Ray itself failing - a worker, an actor or
    a node lost, an object gone - rather than an error raised by our own code inside a task."""
    import ray.exceptions as rex

    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not s for s in seen) and len(seen) < 32:
        seen.append(link)
        infra = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError,
                 rex.OwnerDiedError, rex.RaySystemError, rex.LocalRayletDiedError,
                 rex.ActorUnschedulableError, rex.OutOfMemoryError)
        if isinstance(link, infra):
            text = " ".join(str(link).split())
            return f"{type(link).__name__}: {text[:300]}"
        link = link.__cause__ or link.__context__
    return None


def ray_address_label() -> str:
    """The Ray cluster a failure names: RAY_ADDRESS, or the local one."""
    return os.environ.get("RAY_ADDRESS", "").strip() or "local cluster"


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


#: How long a RAY_ADDRESS gets to accept a TCP connection before the run ends, naming it.
RAY_CONNECT_TIMEOUT_S = 10.0
#: How long a run waits for Ray to be up (started locally, or joined) before it ends, naming it.
RAY_START_TIMEOUT_S = 120.0
#: How long a run on a remote cluster waits for a node with the GPUs a model actor asks for (an
#: autoscaler may be adding one); a local cluster without them is refused at once.
GPU_WAIT_S = 300.0


def _address_host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a RAY_ADDRESS like host:port (GCS); None for "auto" and the like."""
    text = address.strip()
    if "://" in text or text in ("auto", "local") or ":" not in text:
        return None
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def probe_ray_address(timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Refuse a RAY_ADDRESS at which nothing answers, within `timeout_s` (ServiceError naming the
    address and what was tried), instead of letting ray.init retry for minutes."""

    address = os.environ.get("RAY_ADDRESS", "").strip()
    target = _address_host_port(address) if address else None
    if target is None:
        return
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while True:
        try:
            with socket.create_connection(target, timeout=max(0.1, deadline - time.monotonic())):
                return
        except OSError as exc:
            last = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    raise ServiceError(
        f"Ray cluster at RAY_ADDRESS={address}",
        f"nothing answers there (tried TCP connections to {target[0]}:{target[1]} for "
        f"{timeout_s:g} s: {last.strerror or last}); start the cluster, or unset RAY_ADDRESS "
        "to run on a local one")


def check_gpu_placement(actor_gpus: float, model_actors: int) -> None:
    """Refuse GPU model actors that Ray could never place (no node with `actor_gpus` GPUs):
    at once on a local cluster, after GPU_WAIT_S on a remote one (an autoscaler may add a node);
    otherwise Ray waits for them forever."""
    import ray

    if actor_gpus <= 0:
        return
    remote = bool(os.environ.get("RAY_ADDRESS", "").strip())
    deadline = time.monotonic() + (GPU_WAIT_S if remote else 0.0)
    while True:
        per_node = [float(n.get("Resources", {}).get("GPU", 0.0)) for n in ray.nodes() if n.get("Alive")]
        if any(gpus >= actor_gpus for gpus in per_node):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(5.0)
    where = f"the Ray cluster at RAY_ADDRESS={os.environ['RAY_ADDRESS']}" if remote else \
        "the local Ray cluster (this host)"
    found = ", ".join(f"{g:g}" for g in per_node) or "no live node"
    waited = f" after waiting {GPU_WAIT_S:g} s for one" if remote else ""
    message = (f"--actor-gpus {actor_gpus:g}: no node of {where} has {actor_gpus:g} GPU(s) "
               f"(GPUs per node: {found}){waited}; the {model_actors} model actor(s) could "
               "never start: use --actor-gpus 0 (CPU) or a cluster with GPUs")
    if remote:
        raise ServiceError(f"Ray cluster at RAY_ADDRESS={os.environ['RAY_ADDRESS']}", message)
    raise ConfigError(message)


#: Tries to start a local Ray cluster before the run ends naming it.
LOCAL_START_ATTEMPTS = 2


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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
            probe_ray_address()
            ray.init(address=address, log_to_driver=False)
        else:
            for attempt in range(LOCAL_START_ATTEMPTS):
                try:
                    # More logical CPUs than cores: decode tasks and a model actor each reserve
                    # one, and on a 2-core laptop an actor pool holding every CPU would starve
                    # decoding forever.
                    ray.init(address="local", include_dashboard=False,
                             num_cpus=max(4, os.cpu_count() or 1), log_to_driver=False)
                    return
                except Exception as exc:
                    # Ray gives its raylet 30 s to register; on an overloaded host it may need
                    # more: stop what started and try once more before naming the failure.
                    ray.shutdown()
                    if attempt + 1 < LOCAL_START_ATTEMPTS:
                        log.info("local Ray did not start (%s); trying again", _line(exc))
                        continue
                    raise ServiceError("Ray (local cluster)", f"did not start after "
                                       f"{LOCAL_START_ATTEMPTS} tries: {_line(exc)}") from exc


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


def wait_for_ray(started: Future, timeout_s: float = RAY_START_TIMEOUT_S) -> None:
    """Wait for `start_ray`'s future; ServiceError naming the cluster when Ray is not up within
    `timeout_s` (ray.init can otherwise wait on a cluster that never answers for minutes)."""

    try:
        started.result(timeout=timeout_s)
    except FutureTimeout:
        raise ServiceError(f"Ray ({ray_address_label()})",
                           f"not up after {timeout_s:g} s (ray.init did not return)") from None


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
    check_gpu_placement(actor_gpus, model_actors)
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
    finished: list[tuple[Unit, list[WindowRow], list[PredictionRow], list[EmbeddingRow],
                         list[SpeechMarkRow]]] = []
    finished_rows = 0
    oldest = 0.0
    started = time.monotonic()

    def commit_finished() -> None:
        nonlocal finished_rows
        if not finished:
            return
        # Committing a unit again is a no-op in the catalog (a signal can land after the
        # database committed and before this bookkeeping); it is counted once here too.
        catalog.commit_units([(windows, predictions, vectors, marks)
                              for _, windows, predictions, vectors, marks in finished])
        for unit, windows, predictions, vectors, _ in finished:
            if unit.unit_id in committed:
                continue
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
                windows = _without_unavailable(windows, result)
                vectors = unit_embeddings(unit, rows, ctx)
                marks = unit_speech_marks(unit, rows, ctx.run_id, ctx.fingerprint, ctx.window_s)
                if not finished:
                    oldest = time.monotonic()
                finished.append((unit, windows, predictions, vectors, marks))
                finished_rows += len(windows) + len(predictions) + len(vectors)
                if (finished_rows >= commit_max_rows
                        or time.monotonic() - oldest >= commit_interval_s):
                    commit_finished()
    except Exception as exc:
        reason = ray_failure(exc)
        if reason is None:
            raise
        # A lost worker, node or actor: the units it held are planned again by the next run.
        log.info("Ray failed, %d units left for the next run: %s",
                  len(set(by_id) - committed - {u.unit_id for u, *_ in finished}), reason)
        result.service_failed(f"Ray ({ray_address_label()})", reason)
    finally:
        commit_finished()  # units that finished are never lost to a later failure
    # A unit whose rows never came back at all is as uncommitted as one that came back short.
    result.uncommitted_units = sorted(set(by_id) - committed)
    if result.uncommitted_units and not result.service_failures:
        log.error("%d units were not committed (a re-run plans them again): %s",
                  len(result.uncommitted_units), ", ".join(result.uncommitted_units))
    log.info("committed %d window rows of %d units in %.1f s", result.windows, result.units,
             time.monotonic() - started)
    return result


def quiet_ray_signal_handler() -> None:
    """Keep Ray's C++ failure-signal handler out of this driver (its workers keep theirs).

    Installed by the driver's core worker, it takes SIGTERM for a crash: it prints a native stack
    on the terminal, and the process then ends in SIGABRT, not in `flows.pipeline.signals`' one
    line. Ray reads the switch once, when its constants are imported; the variable is removed
    again at once so that the processes Ray starts do not inherit it.
    """

    if "RAY_DISABLE_FAILURE_SIGNAL_HANDLER" in os.environ:
        return  # the user's choice
    os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
    try:
        import ray._private.ray_constants  # noqa: F401
    finally:
        del os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"]
