"""A cheap, deterministic stand-in model with the real output shapes, for pipeline tests.

Its answers follow from simple signal measurements, so a test that synthesises audio of known
content knows the answer in advance:

- detect: P(animal) rises smoothly with the window's loudness. With the RMS level of the valid
  samples in dBFS (20 log10 rms, full scale = 1.0), P = 1 / (1 + exp(-(level - threshold) / slope))
  with threshold -30 dBFS and slope 2 dB: a -6 dBFS tone scores ~1, -60 dBFS noise ~0.
- classify: one answer, the dominant frequency (FFT peak of the valid samples, DC excluded) rounded
  to the nearest 100 Hz, as "tone 1200 Hz"; its score is the fraction of the spectral power that
  lies within +-50 Hz of the peak (1.0 for a pure tone, small for white noise).

With `events=True` classify locates calls instead, as an event model (BatDetect2) does: one
classify answer per call, with its time-frequency box (`Prediction.start_s` .. `high_freq_hz`):

- STFT of the valid samples (Hann frames of EVENT_FRAME samples, hop EVENT_HOP), kept to the
  band (`band_low_hz` .. `band_high_hz`, default the whole band);
- a frame is active when its in-band RMS level (dBFS, Parseval over the band's bins) reaches
  `threshold_dbfs`; contiguous runs of active frames are calls;
- a call's times are its run's extent (first frame's start to last frame's end, within the valid
  samples); its frequencies those holding the middle EVENT_ENERGY_FRACTION of its energy (the
  5 % and 95 % points of its spectrum summed over the run, as Raven's Freq 5 % / 95 %);
- its label the frequency of its spectrum's median energy rounded to `event_step_hz`
  ("call 45 kHz"), stable along an FM sweep where the peak bin is not; its score and
  detection_score both P(call), detect's logistic of the run's mean in-band level.

`band_hz` and `min_recording_rate_hz` are options, so tests can stand in for an ultrasonic model
(a 384 kHz placeholder with band 10-120 kHz refusing 48 kHz files). Windows with no valid samples
get no predictions, like every backend.
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
EVENT_FRAME = 512  # event mode: STFT frame, samples (1.3 ms at 384 kHz)
EVENT_HOP = 256  # event mode: STFT hop, samples
EVENT_ENERGY_FRACTION = 0.9  # event mode: a call's box holds this much of its energy


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
      threshold_dbfs: RMS level at which detect scores 0.5 (and, in event mode, the in-band
        frame level at which a frame is part of a call).
      slope_db: dB per e-fold of the detect odds; smaller is a sharper threshold.
      events: classify locates calls (one answer per call, with its box) instead of one answer
        per window.
      band_low_hz, band_high_hz: the band analysed (`band_hz`; default 0 to half the rate).
      min_recording_rate_hz: recordings below it are refused by the pipeline (not resampled up).
      event_step_hz: event labels round the call's median frequency to this.
    """

    name = "placeholder"
    embedding_dim = EMBEDDING_BANDS
    #: Like NatureLM-audio's, so pipeline tests cut the windows the heavier backend would.
    native_window_s = 10.0

    def __init__(
        self, *, sample_rate_hz: int = 16_000, threshold_dbfs: float = -30.0, slope_db: float = 2.0,
        events: bool = False, band_low_hz: float = 0.0, band_high_hz: float | None = None,
        min_recording_rate_hz: int | None = None, event_step_hz: float = 5_000.0,
    ):
        if sample_rate_hz < 1:
            raise BackendError(f"sample_rate_hz must be >= 1, got {sample_rate_hz}")
        if not slope_db > 0:
            raise BackendError(f"slope_db must be > 0, got {slope_db}")
        nyquist_hz = sample_rate_hz / 2
        high_hz = nyquist_hz if band_high_hz is None else float(band_high_hz)
        if not 0 <= band_low_hz < high_hz <= nyquist_hz:
            raise BackendError(f"band {band_low_hz:g}-{high_hz:g} Hz: expected 0 <= low < high <= "
                               f"{nyquist_hz:g} Hz (half of sample_rate_hz)")
        if min_recording_rate_hz is not None and min_recording_rate_hz < 1:
            raise BackendError(f"min_recording_rate_hz must be >= 1, got {min_recording_rate_hz}")
        if not event_step_hz > 0:
            raise BackendError(f"event_step_hz must be > 0, got {event_step_hz}")
        self.sample_rate_hz = int(sample_rate_hz)
        self.threshold_dbfs = float(threshold_dbfs)
        self.slope_db = float(slope_db)
        self.events = bool(events)
        self._band_hz = (float(band_low_hz), high_hz)
        self._band_given = band_low_hz != 0.0 or band_high_hz is not None
        self.min_recording_rate_hz = None if min_recording_rate_hz is None else int(min_recording_rate_hz)
        self.event_step_hz = float(event_step_hz)

    @property
    def band_hz(self) -> tuple[float, float]:
        return self._band_hz

    @property
    def model_id(self) -> str:
        return "placeholder-v1@none"

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sample_rate_hz": self.sample_rate_hz,
            "threshold_dbfs": self.threshold_dbfs,
            "slope_db": self.slope_db,
            "frequency_step_hz": FREQUENCY_STEP_HZ,
            "peak_band_hz": PEAK_BAND_HZ,
        }
        # Only what is asked for, so the window-level placeholder keeps its fingerprint.
        if self._band_given:
            out["band_hz"] = list(self._band_hz)
        if self.events:
            out["events"] = {"frame": EVENT_FRAME, "hop": EVENT_HOP, "step_hz": self.event_step_hz,
                             "energy_fraction": EVENT_ENERGY_FRACTION}
        return out

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
                elif self.events:
                    predictions += self.locate_calls(item, samples)
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

    def locate_calls(self, item: int, samples: np.ndarray) -> list[Prediction]:
        """One classify answer per call in the valid samples (module docstring, event mode)."""
        rate = self.sample_rate_hz
        if samples.shape[0] < EVENT_FRAME:
            return []
        n_frames = 1 + (samples.shape[0] - EVENT_FRAME) // EVENT_HOP
        window = np.hanning(EVENT_FRAME)
        starts = np.arange(n_frames) * EVENT_HOP
        frames = samples.astype(np.float64)[starts[:, None] + np.arange(EVENT_FRAME)]  # (F, N)
        power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (F, N/2 + 1)
        freqs_hz = np.fft.rfftfreq(EVENT_FRAME, d=1.0 / rate)
        in_band = (freqs_hz >= self._band_hz[0]) & (freqs_hz <= self._band_hz[1]) & (freqs_hz > 0)
        power, freqs_hz = power[:, in_band], freqs_hz[in_band]  # (F, K)
        # Parseval: a one-sided bin holds 2|X|^2 / (N sum w^2) of the frame's mean square.
        mean_square = 2.0 * power.sum(axis=1) / (EVENT_FRAME * float(np.sum(window ** 2)))
        with np.errstate(divide="ignore"):
            level_dbfs = 10.0 * np.log10(mean_square)  # (F,)
        active = level_dbfs >= self.threshold_dbfs
        calls: list[Prediction] = []
        edges = np.flatnonzero(np.diff(np.concatenate(([0], active.astype(np.int8), [0]))))
        for first, stop in zip(edges[::2], edges[1::2]):  # runs [first, stop) of active frames
            spectrum = power[first:stop].sum(axis=0)  # (K,)
            cumulative = np.cumsum(spectrum) / spectrum.sum()
            tail = (1.0 - EVENT_ENERGY_FRACTION) / 2
            low_hz = float(freqs_hz[int(np.searchsorted(cumulative, tail))])
            high_hz = float(freqs_hz[min(len(freqs_hz) - 1, int(np.searchsorted(cumulative, 1 - tail)))])
            median_hz = float(freqs_hz[int(np.searchsorted(cumulative, 0.5))])
            step = self.event_step_hz
            label = f"call {round(median_hz / step) * step / 1000:g} kHz"
            mean_level = 10.0 * np.log10(float(np.mean(mean_square[first:stop])))
            probability = self.detect_probability(mean_level)
            calls.append(Prediction(
                item=item, task="classify", prompt_id="placeholder:stft-events",
                answer_text=label, label=label, scientific_name=None, score=probability,
                start_s=float(starts[first]) / rate,
                end_s=min(float(starts[stop - 1] + EVENT_FRAME), float(samples.shape[0])) / rate,
                low_freq_hz=low_hz, high_freq_hz=high_hz, detection_score=probability,
            ))
        return calls
