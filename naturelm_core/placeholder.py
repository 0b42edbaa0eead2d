"""A cheap, deterministic stand-in model with the real output shapes, for pipeline tests.

Its answers follow from simple signal measurements, so a test that synthesises audio of known
content knows the answer in advance:

- detect: P(animal) rises smoothly with the window's loudness. With the RMS level of the valid
  samples in dBFS (20 log10 rms, full scale = 1.0), P = 1 / (1 + exp(-(level - threshold) / slope))
  with threshold -30 dBFS and slope 2 dB: a -6 dBFS tone scores ~1, -60 dBFS noise ~0.
- classify: one answer, the dominant frequency (FFT peak of the valid samples, DC excluded) rounded
  to the nearest 100 Hz, as "tone 1200 Hz"; its score is the fraction of the spectral power that
  lies within +-50 Hz of the peak (1.0 for a pure tone, small for white noise).

Windows with no valid samples get no predictions, like every backend.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from naturelm_core.backend import BackendError, ModelBackend, Prediction, check_batch, check_tasks

SUPPORTED_TASKS = ("detect", "classify")
FREQUENCY_STEP_HZ = 100  # classify labels are rounded to this
PEAK_BAND_HZ = 50.0  # half-width of the band around the peak counted as "the tone"
EMBEDDING_BANDS = 32  # embed: spectral bands per vector


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale 1.0; -inf for silence."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    with np.errstate(divide="ignore"):
        return float(20.0 * np.log10(rms))


def dominant_tone(samples: np.ndarray, sample_rate_hz: int) -> tuple[int, float]:
    """(peak frequency rounded to FREQUENCY_STEP_HZ, fraction of power within PEAK_BAND_HZ).

    Silence (no power outside DC) has no tone: (0, 0.0).
    """
    power = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs_hz = np.fft.rfftfreq(samples.shape[0], d=1.0 / sample_rate_hz)
    power[0] = 0.0  # a DC offset is not a tone
    total = float(power.sum())
    if total <= 0.0:
        return 0, 0.0
    peak_hz = float(freqs_hz[int(np.argmax(power))])
    in_band = np.abs(freqs_hz - peak_hz) <= PEAK_BAND_HZ
    fraction = min(1.0, float(power[in_band].sum()) / total)
    rounded_hz = int(round(peak_hz / FREQUENCY_STEP_HZ)) * FREQUENCY_STEP_HZ
    return rounded_hz, fraction


class PlaceholderBackend(ModelBackend):
    """Deterministic signal-measurement "model" (see the module docstring).

    Options (keyword):
      sample_rate_hz: the rate the pipeline must resample to (16 kHz, like NatureLM-audio).
      threshold_dbfs: RMS level at which detect scores 0.5.
      slope_db: dB per e-fold of the detect odds; smaller is a sharper threshold.
    """

    name = "placeholder"
    embedding_dim = EMBEDDING_BANDS
    #: Like NatureLM-audio's, so pipeline tests cut the windows the heavier backend would.
    native_window_s = 10.0

    def __init__(
        self, *, sample_rate_hz: int = 16_000, threshold_dbfs: float = -30.0, slope_db: float = 2.0
    ):
        if sample_rate_hz < 1:
            raise BackendError(f"sample_rate_hz must be >= 1, got {sample_rate_hz}")
        if not slope_db > 0:
            raise BackendError(f"slope_db must be > 0, got {slope_db}")
        self.sample_rate_hz = int(sample_rate_hz)
        self.threshold_dbfs = float(threshold_dbfs)
        self.slope_db = float(slope_db)

    @property
    def model_id(self) -> str:
        return "placeholder-v1@none"

    def settings(self) -> dict[str, Any]:
        return {
            "sample_rate_hz": self.sample_rate_hz,
            "threshold_dbfs": self.threshold_dbfs,
            "slope_db": self.slope_db,
            "frequency_step_hz": FREQUENCY_STEP_HZ,
            "peak_band_hz": PEAK_BAND_HZ,
        }

    def embedding_settings(self) -> dict[str, Any]:
        return {"dim": EMBEDDING_BANDS, "form": "sqrt of band power fractions, equal-width bands "
                "to Nyquist, L2-normalised"}

    def embed(self, audio: np.ndarray, valid_samples: np.ndarray) -> np.ndarray:
        """(B, 32) float32: the spectral shape of each window's valid samples (unit length), so
        that the same sound gives the same vector whatever its level."""
        check_batch(audio, valid_samples)
        out = np.zeros((audio.shape[0], EMBEDDING_BANDS), dtype=np.float32)
        for item in range(audio.shape[0]):
            n_valid = int(valid_samples[item])
            if n_valid == 0:
                raise ValueError(f"placeholder embed: row {item} has no valid samples")
            power = np.abs(np.fft.rfft(audio[item, :n_valid].astype(np.float64))) ** 2
            bands = np.array([b.sum() for b in np.array_split(power, EMBEDDING_BANDS)])
            vector = np.sqrt(bands / max(bands.sum(), 1e-30) + 1e-12)
            out[item] = vector / np.linalg.norm(vector)
        return out

    def detect_probability(self, level_dbfs: float) -> float:
        """Logistic in dB; silence (-inf dBFS) gives exactly 0."""
        x = (level_dbfs - self.threshold_dbfs) / self.slope_db
        decay = math.exp(-abs(x))  # never overflows, also for x = -inf
        return 1.0 / (1.0 + decay) if x >= 0 else decay / (1.0 + decay)

    def predict(
        self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]
    ) -> list[Prediction]:
        wanted = check_tasks("placeholder", tasks, SUPPORTED_TASKS)
        check_batch(audio, valid_samples)
        predictions: list[Prediction] = []
        for item in range(audio.shape[0]):
            n_valid = int(valid_samples[item])
            if n_valid == 0:
                continue
            samples = audio[item, :n_valid]
            for task in wanted:
                if task == "detect":
                    level = rms_dbfs(samples)
                    predictions.append(
                        Prediction(
                            item=item,
                            task="detect",
                            prompt_id="placeholder:rms",
                            answer_text=f"rms {level:.1f} dBFS",
                            label="animal",
                            scientific_name=None,
                            score=self.detect_probability(level),
                        )
                    )
                else:
                    freq_hz, fraction = dominant_tone(samples, self.sample_rate_hz)
                    text = f"tone {freq_hz} Hz"
                    predictions.append(
                        Prediction(
                            item=item,
                            task="classify",
                            prompt_id="placeholder:fft-peak",
                            answer_text=text,
                            label=text,
                            scientific_name=None,
                            score=fraction,
                        )
                    )
        return predictions
