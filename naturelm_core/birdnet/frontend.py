"""BirdNET V2.4's spectrogram layers in numpy, with the constants read from the user's model file.

The model begins with two mel-spectrogram layers (``model/MEL_SPEC1``, ``model/MEL_SPEC2``) that
share one normalisation of the 3-s chunk and meet at ``model/concatenate/concat`` (N, 96, 511, 2),
where the CNN starts. In LiteRT they are most of the model's time (a reference RFFT2D kernel and
a GATHER that builds frames, neither in XNNPACK); here they are a few numpy calls:

    x -> (x - min) / (max(x - min) + eps) - offset) * scale          # per chunk, float32
    frames (hop `frame_step`, `frame_length` samples) * window       # float32
    real part of the real FFT, computed in float64                   # as LiteRT's kernel does
    @ mel filterbank^T -> squared -> ** exponent -> mel axis reversed -> (N, 96, frames, 1)

No constant is typed in here: `read_frontend` finds each op of the layers in the model file's
graph by its tensor name and type and reads its constant operand (window, filterbank, exponent,
frame length and step, normalisation constants). A model whose front end is not this graph is
refused with the op that differs. The FFT must be float64: in float32 the logits move by up to
0.35 and top-1 answers flip (issue 24); the rest follows the model's own float32 arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: The tensor the CNN starts from: both spectrograms, (N, mel bins, frames, layers).
CUT_TENSOR = "model/concatenate/concat"
#: The spectrogram layers, in the order the concatenation stacks them.
MEL_LAYERS = ("model/MEL_SPEC1", "model/MEL_SPEC2")


class FrontEndMismatch(ValueError):
    """The model file's spectrogram layers are not the graph `MelFrontEnd` reproduces."""


@dataclass(frozen=True)
class MelLayer:
    """One spectrogram layer's constants, as read from the model file."""

    frame_length: int  # samples per FFT frame (= FFT length)
    frame_step: int  # hop between frames, samples
    window: np.ndarray  # (frame_length,) float32, applied before the FFT
    filterbank: np.ndarray  # (frame_length // 2 + 1, mel bins) float32, transposed for x @ fb
    exponent: np.float32  # magnitude compression: (spec ** 2) ** exponent

    def frames(self, n_samples: int) -> int:
        return 1 + (n_samples - self.frame_length) // self.frame_step

    def __call__(self, signal: np.ndarray) -> np.ndarray:
        """(mel bins, frames) float32 of one normalised chunk (S,) float32."""
        framed = sliding_window_view(signal, self.frame_length)[:: self.frame_step]  # (T, L) view
        windowed = framed * self.window  # (T, L) float32, as the model multiplies
        real = np.fft.rfft(windowed.astype(np.float64), axis=-1).real.astype(np.float32)  # (T, F)
        mel = real @ self.filterbank  # (T, M)
        mel = np.power(mel * mel, self.exponent)  # float32 throughout
        return mel[:, ::-1].T  # (M, T): mel bins reversed (high frequencies first)


@dataclass(frozen=True)
class MelFrontEnd:
    """Both spectrogram layers: (N, S) float32 chunks -> (N, M, T, 2) float32, the CNN's input."""

    eps: np.float32
    offset: np.float32
    scale: np.float32
    layers: tuple[MelLayer, ...]

    def output_shape(self, n_samples: int) -> tuple[int, int, int]:
        mel_bins = {layer.filterbank.shape[1] for layer in self.layers}
        frames = {layer.frames(n_samples) for layer in self.layers}
        if len(mel_bins) != 1 or len(frames) != 1:
            raise FrontEndMismatch(f"the layers disagree on shape: mel bins {mel_bins}, frames {frames}")
        return mel_bins.pop(), frames.pop(), len(self.layers)

    def __call__(self, chunks: np.ndarray) -> np.ndarray:
        out = np.empty((chunks.shape[0], *self.output_shape(chunks.shape[1])), np.float32)  # (N, M, T, 2)
        for row, chunk in enumerate(chunks):  # one chunk at a time: its frames stay in cache
            shifted = chunk - chunk.min()
            normalised = (shifted / (shifted.max() + self.eps) - self.offset) * self.scale  # (S,)
            for i, layer in enumerate(self.layers):
                out[row, :, :, i] = layer(normalised)
        return out


# --- reading the constants from the model file ------------------------------------------------------


class _Graph:
    """The ops and constant tensors of a LiteRT interpreter, looked up by tensor name."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        self.tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
        self.by_name = {d["name"]: d["index"] for d in self.tensors.values()}
        # LiteRT's only listing of ops with their tensors is underscored; ai-edge-litert is pinned,
        # and should it go, the split runtime is refused (naming runtime=litert), not half-read.
        ops_details = getattr(interpreter, "_get_ops_details", None)
        if ops_details is None:
            raise FrontEndMismatch("this LiteRT has no Interpreter._get_ops_details: cannot read the graph")
        self.ops = ops_details()

    def op(self, op_name: str, output: str):
        """The op of type `op_name` whose first output is the tensor named `output`."""
        for op in self.ops:
            outputs = [self.tensors[i]["name"] for i in op["outputs"] if i >= 0]
            if outputs and outputs[0] == output:
                if op["op_name"] != op_name:
                    raise FrontEndMismatch(f"{output!r} is made by {op['op_name']}, expected {op_name}")
                return op
        raise FrontEndMismatch(f"no op makes the tensor {output!r}")

    def constant(self, index: int) -> np.ndarray:
        try:
            return np.array(self.interpreter.get_tensor(int(index)))
        except ValueError as err:
            raise FrontEndMismatch(f"tensor {self.tensors[int(index)]['name']!r} is not a constant") from err

    def operand(self, op_name: str, output: str, position: int = 1) -> np.ndarray:
        return self.constant(self.op(op_name, output)["inputs"][position])

    def named(self, name: str) -> np.ndarray:
        if name not in self.by_name:
            raise FrontEndMismatch(f"no tensor named {name!r}")
        return self.constant(self.by_name[name])


def _scalar(value: np.ndarray, what: str, dtype=np.float32):
    if value.size != 1:
        raise FrontEndMismatch(f"{what} should be one number, found shape {value.shape}")
    return dtype(value.reshape(()))


def read_frontend(interpreter) -> MelFrontEnd:
    """The front end's constants from a LiteRT interpreter of the whole BirdNET model.

    Each constant is the operand of the op that makes a named tensor of the layer; the ops'
    types are checked on the way, so a model with another front end is refused by name.
    """
    graph = _Graph(interpreter)
    first = MEL_LAYERS[0]
    graph.op("REDUCE_MIN", f"{first}/Min")
    graph.op("REDUCE_MAX", f"{first}/Max")
    eps = _scalar(graph.operand("ADD", f"{first}/add"), "the normalisation's epsilon")
    graph.op("DIV", f"{first}/truediv")
    offset = _scalar(graph.operand("SUB", f"{first}/Sub_1"), "the normalisation's offset")
    scale = _scalar(graph.operand("MUL", f"{first}/Mul"), "the normalisation's scale")
    layers = []
    for name in MEL_LAYERS:
        frame_length = _scalar(graph.named(f"{name}/stft/frame_length"), "frame_length", int)
        frame_step = _scalar(graph.named(f"{name}/stft/frame_step"), "frame_step", int)
        window = graph.operand("MUL", f"{name}/stft/mul").astype(np.float32)
        rfft = [op for op in graph.ops if op["op_name"] == "RFFT2D"
                and graph.tensors[op["outputs"][0]]["name"].startswith(f"{name}/stft/")]
        if len(rfft) != 1:
            raise FrontEndMismatch(f"{name}: expected one RFFT2D op, found {len(rfft)}")
        fft_length = graph.constant(rfft[0]["inputs"][1]).ravel().tolist()
        graph.op("CAST", f"{name}/Cast")  # complex -> float32: the real part
        fc = [op for op in graph.ops if op["op_name"] == "FULLY_CONNECTED"
              and graph.tensors[op["outputs"][0]]["name"].startswith(f"{name}/Tensordot/MatMul")]
        if len(fc) != 1 or fc[0]["inputs"][2] >= 0:
            raise FrontEndMismatch(f"{name}: expected one FULLY_CONNECTED op without bias (the mel filterbank)")
        filterbank = graph.constant(fc[0]["inputs"][1]).astype(np.float32)  # (M, F)
        square = [op for op in graph.ops if op["op_name"] == "MUL"
                  and graph.tensors[op["outputs"][0]]["name"].startswith(f"{name}/Pow;")]
        if len(square) != 1 or square[0]["inputs"][0] != square[0]["inputs"][1]:
            raise FrontEndMismatch(f"{name}: expected the spectrogram squared (MUL x, x)")
        exponent = _scalar(graph.operand("POW", f"{name}/Pow_1"), f"{name} exponent")
        axis = graph.operand("REVERSE_V2", f"{name}/ReverseV2").ravel().tolist()
        perm = graph.operand("TRANSPOSE", f"{name}/transpose").ravel().tolist()
        if fft_length != [1, frame_length] or window.shape != (frame_length,):
            raise FrontEndMismatch(f"{name}: FFT length {fft_length} / window {window.shape} do not "
                                   f"match frame_length {frame_length}")
        if filterbank.shape[1] != frame_length // 2 + 1:
            raise FrontEndMismatch(f"{name}: filterbank {filterbank.shape} does not take "
                                   f"{frame_length // 2 + 1} FFT bins")
        if axis != [2] or perm != [0, 2, 1]:
            raise FrontEndMismatch(f"{name}: reverse axis {axis} / transpose {perm}, expected [2] / [0, 2, 1]")
        layers.append(MelLayer(frame_length, frame_step, window, np.ascontiguousarray(filterbank.T), exponent))
    graph.op("CONCATENATION", CUT_TENSOR)
    return MelFrontEnd(eps, offset, scale, tuple(layers))
