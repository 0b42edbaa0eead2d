"""BirdNET's CNN cut from the user's own model file, and the engines that run it.

`cut_cnn` rewrites the model's flatbuffer so that its graph starts at the spectrogram tensor
(``model/concatenate/concat``) and ends at the logits and, as a second output, the embedding
(``model/GLOBAL_AVG_POOL/Mean``): one call gives both. The model file's licence forbids shipping
a derived copy, so nothing derived is committed: the cut is made from the user's file at load
time and kept in a user cache folder (`cache_dir`), named by the model file's SHA-256, written
atomically so that several model actors may make it at once. The two halves in sequence are
bit-identical to the whole model in LiteRT.

Engines (`CNN_ENGINES`), each a plain class with ``run(spec) -> (logits, embeddings)``:
  openvino: OpenVINO reads the cut .tflite directly; compiled with INFERENCE_PRECISION_HINT=f32
    (on a CPU with bf16 it otherwise picks bf16 and flips answers, issue 24). The fastest exact
    engine measured here, so the default where the package is installed.
  litert: the cut .tflite in LiteRT with XNNPACK: no package beyond LiteRT; the fallback.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from naturelm_core.birdnet.frontend import CUT_TENSOR
from naturelm_core.digest import file_sha256

logger = logging.getLogger(__name__)

EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
#: Changes whenever `cut_cnn` would write a different file: part of the cached file's name.
CUT_VERSION = 1
CACHE_ENV = "DAWNCHORUS_CACHE_DIR"
CNN_ENGINES = ("openvino", "litert")


def default_cache_dir() -> Path:
    """$DAWNCHORUS_CACHE_DIR, else $XDG_CACHE_HOME/dawnchorus, else ~/.cache/dawnchorus."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dawnchorus"


def cut_cnn(model_path: Path, cache_dir: Path, model_sha256: str, spec_shape: tuple[int, int, int]) -> Path:
    """The cached cut of `model_path` (made now if absent): input `CUT_TENSOR` (-1, *spec_shape),
    outputs (logits, embedding)."""
    target = Path(cache_dir) / "birdnet" / f"{model_sha256}-cnn-v{CUT_VERSION}.tflite"
    if target.is_file():
        return target
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(Path(model_path).read_bytes(), 0)
    if len(model.subgraphs) != 1:
        raise ValueError(f"{model_path}: expected one subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    names = [t.name.decode() for t in graph.tensors]
    for name in (CUT_TENSOR, EMBEDDING_TENSOR):
        if name not in names:
            raise ValueError(f"{model_path}: no tensor named {name!r}")
    cut, embedding = names.index(CUT_TENSOR), names.index(EMBEDDING_TENSOR)
    (producer,) = [i for i, op in enumerate(graph.operators) if cut in list(op.outputs)]
    front, cnn = graph.operators[: producer + 1], graph.operators[producer + 1 :]
    made_in_front = {int(t) for op in front for t in op.outputs} - {cut}
    leaks = sorted({names[int(t)] for op in cnn for t in op.inputs if int(t) in made_in_front})
    if leaks:
        raise ValueError(f"{model_path}: the CNN also reads front-end tensors {leaks}; cannot cut at {CUT_TENSOR}")
    graph.operators = cnn
    graph.inputs = np.array([cut], dtype=np.int32)
    graph.outputs = np.array([int(graph.outputs[0]), embedding], dtype=np.int32)
    graph.tensors[cut].shape = np.array([1, *spec_shape], dtype=np.int32)
    graph.tensors[cut].shapeSignature = np.array([-1, *spec_shape], dtype=np.int32)
    model.signatureDefs = []  # the whole model's signature names INPUT, which is gone
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(builder.Output())
        os.replace(tmp, target)  # atomic: a concurrent reader sees the whole file or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("cut BirdNET's CNN at %s into %s", CUT_TENSOR, target)
    return target


class LiteRTCNN:
    """The cut CNN in one LiteRT interpreter (XNNPACK); one caller at a time."""

    name = "litert"

    def __init__(self, cnn_path: Path, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(cnn_path), num_threads=num_threads)
        (spec,) = self.interpreter.get_input_details()
        logits, embedding = self.interpreter.get_output_details()
        self.input_index, self.spec_shape = spec["index"], tuple(int(d) for d in spec["shape"][1:])
        self.output_indices = (logits["index"], embedding["index"])
        self.interpreter.allocate_tensors()
        self.batch_rows = int(spec["shape"][0])

    def run(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if spec.shape[0] != self.batch_rows:
            self.interpreter.resize_tensor_input(self.input_index, [spec.shape[0], *self.spec_shape])
            self.interpreter.allocate_tensors()
            self.batch_rows = spec.shape[0]
        self.interpreter.set_tensor(self.input_index, spec)
        self.interpreter.invoke()
        logits, embedding = (self.interpreter.get_tensor(i).copy() for i in self.output_indices)
        return logits, embedding


class OpenVINOCNN:
    """The cut CNN compiled once by OpenVINO at float32; each lane has its own infer request."""

    name = "openvino"

    def __init__(self, cnn_path: Path, num_threads: int, streams: int):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(cnn_path))
        self.compiled = core.compile_model(model, "CPU", {
            # bf16 on a CPU that has it moves logits enough to flip answers: float32 only.
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": num_threads,
            "NUM_STREAMS": streams,
        })
        self.version = ov.get_version()

    def request(self) -> "_OpenVINORequest":
        return _OpenVINORequest(self.compiled)


class _OpenVINORequest:
    name = "openvino"

    def __init__(self, compiled):
        self.request = compiled.create_infer_request()
        self.outputs = compiled.outputs

    def run(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        results = self.request.infer({0: spec})
        logits, embedding = (np.array(results[o], dtype=np.float32) for o in self.outputs)
        return logits, embedding


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True
