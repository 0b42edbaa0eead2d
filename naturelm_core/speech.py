"""Human speech detection for the privacy gate (`docs/privacy.md`): Silero VAD on every window.

The model is the ONNX file that ships inside the `silero-vad` wheel
(`silero_vad/data/silero_vad.onnx`, MIT), run with onnxruntime. The package's own Python modules
import torchaudio, which does not import beside this project's CPU torch, so the file is located
through the package's metadata and nothing of `silero_vad` is imported.

What the model takes (read from the file: inputs `input` (B, 64 + 512) float32, `state`
(2, B, 128) float32, `sr` int64 scalar; outputs `output` (B, 1), `stateN` (2, B, 128)): 16 kHz
mono in frames of 512 samples (32 ms), each prefixed by the last 64 samples before it, with a
recurrent state carried from frame to frame. The output is the probability that the frame holds
speech.

A window is marked as speech when at least `MIN_SPEECH_S` seconds of its frames have a
probability of at least `SPEECH_PROB` (`SpeechRule`). Each window is judged on its own (state
reset at its start), as windows are decoded on their own, and many windows go through the model
at once as one batch, frame by frame.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

#: The rate and framing the model was trained for.
SPEECH_RATE_HZ = 16_000
FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
FRAME_S = FRAME_SAMPLES / SPEECH_RATE_HZ  # 0.032 s
STATE_SHAPE = (2, 128)  # (layers, units) of the recurrent state; (2, B, 128) with the batch
#: A frame counts as speech at this probability or above (Silero's own default threshold).
SPEECH_PROB = 0.5
#: A window is speech when its speech frames add up to at least this many seconds.
MIN_SPEECH_S = 0.5
PACKAGE = "silero-vad"
MODEL_FILE = "silero_vad/data/silero_vad.onnx"


class SpeechDetectorError(RuntimeError):
    """The speech detector cannot run here (package or runtime missing)."""


@dataclass(frozen=True)
class SpeechRule:
    """When a window counts as speech: `min_speech_s` seconds of frames at `frame_prob` or more."""

    frame_prob: float = SPEECH_PROB
    min_speech_s: float = MIN_SPEECH_S

    def __post_init__(self) -> None:
        if not 0.0 < self.frame_prob <= 1.0 or self.min_speech_s <= 0.0:
            raise ValueError(f"speech rule {self}: expected frame_prob in (0, 1] and "
                             "min_speech_s > 0")


@dataclass(frozen=True)
class SpeechResult:
    """The detector's verdict on one window."""

    speech_s: float  # seconds of frames at or above the rule's probability
    max_prob: float  # the highest frame probability
    speech: bool  # the window passes the rule


def model_path() -> Path:
    """The packaged ONNX model, found through the package's metadata (no import of it)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SpeechDetectorError(f"the {PACKAGE} package is not installed: pip install --no-deps "
                                  f"{PACKAGE} (see requirements.txt)") from None
    path = Path(str(dist.locate_file(MODEL_FILE)))
    if not path.is_file():
        raise SpeechDetectorError(f"{PACKAGE} {dist.version}: no {MODEL_FILE} in the package")
    return path


def detector_id() -> str:
    """Name and version of the detector, as recorded with each mark."""
    return f"{PACKAGE} {importlib.metadata.version(PACKAGE)} onnx"


def to_speech_rate(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """(B, T) float32 windows at `sample_rate_hz` -> (B, T') at 16 kHz (soxr, all windows in one call)."""
    audio = np.asarray(audio, np.float32)
    if sample_rate_hz == SPEECH_RATE_HZ:
        return audio
    return np.ascontiguousarray(soxr.resample(audio.T, sample_rate_hz, SPEECH_RATE_HZ).T)  # (B, T')


class SileroVad:
    """Silero VAD over batches of windows. Not thread-safe: one per actor or thread."""

    def __init__(self, rule: SpeechRule = SpeechRule(), threads: int = 1):
        try:
            import onnxruntime
        except ImportError:
            raise SpeechDetectorError("onnxruntime is not installed (see requirements.txt)") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(model_path()), sess_options=options, providers=["CPUExecutionProvider"])
        names = [i.name for i in self.session.get_inputs()]
        if names != ["input", "state", "sr"]:
            raise SpeechDetectorError(f"{model_path()}: inputs {names}, expected input, state, sr")
        self.rule = rule
        self.detector_id = detector_id()

    def frame_probs(self, audio: np.ndarray) -> np.ndarray:
        """(B, T) 16-kHz windows -> (B, F) speech probabilities, F = ceil(T / 512)."""
        audio = np.asarray(audio, np.float32)
        batch, n = audio.shape
        frames = max(1, -(-n // FRAME_SAMPLES))
        padded = np.zeros((batch, CONTEXT_SAMPLES + frames * FRAME_SAMPLES), np.float32)
        padded[:, CONTEXT_SAMPLES:CONTEXT_SAMPLES + n] = audio
        state = np.zeros((STATE_SHAPE[0], batch, STATE_SHAPE[1]), np.float32)  # (2, B, 128)
        sr = np.array(SPEECH_RATE_HZ, np.int64)
        out = np.empty((batch, frames), np.float32)
        for f in range(frames):
            chunk = padded[:, f * FRAME_SAMPLES:f * FRAME_SAMPLES + CONTEXT_SAMPLES + FRAME_SAMPLES]
            prob, state = self.session.run(None, {"input": chunk, "state": state, "sr": sr})
            out[:, f] = prob[:, 0]  # (B, 1) -> (B,)
        return out

    def detect(self, audio: np.ndarray, valid_samples: np.ndarray, sample_rate_hz: int
               ) -> list[SpeechResult]:
        """A verdict per window: (B, T) windows at `sample_rate_hz`, each real for its first
        `valid_samples` (the rest is padding, which is silence to the model)."""
        audio = np.array(audio, np.float32)
        if audio.ndim != 2:
            raise ValueError(f"speech detection: expected (windows, samples), got {audio.shape}")
        for row, valid in enumerate(np.asarray(valid_samples, np.int64)):
            audio[row, max(0, int(valid)):] = 0.0
        probs = self.frame_probs(to_speech_rate(audio, sample_rate_hz))
        speech_s = (probs >= self.rule.frame_prob).sum(axis=1) * FRAME_S
        return [SpeechResult(speech_s=float(s), max_prob=float(p.max()),
                             speech=bool(s >= self.rule.min_speech_s - 1e-9))
                for s, p in zip(speech_s, probs)]
