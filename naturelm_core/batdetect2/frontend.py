"""Audio -> BatDetect2's network input, step by step as BatDetect2 1.3.1 computes it.

For one chunk of audio at the model's rate (256 kHz), ``compute_spectrogram`` in BatDetect2:

1. pads the audio with zeros so the resized spectrogram's width is a multiple of
   ``spec_divide_factor`` (32) and at least 64 columns (`padded_length`);
2. takes the magnitude STFT without centring: periodic Hann window of ``n_fft`` (512) samples,
   hop 128 (librosa's ``stft(center=False)``: float64 FFT of float32 frames, stored as complex64);
3. drops the DC bin and flips the rows so the top row is the highest frequency;
4. keeps the rows of the band (10-120 kHz: 220 rows of 500 Hz);
5. scales it: PCEN (librosa ``pcen`` of the magnitudes times 2**31, with ``sr`` = rate / 10 and
   librosa's defaults: hop 512, gain 0.98, bias 2, power 0.5, time constant 0.4 s, eps 1e-6), or
   ``log1p`` with BatDetect2's scaling, or nothing;
6. subtracts each row's mean over time and clips at zero (``denoise_spec_avg``);
7. resizes to (128, width / 2) with bilinear interpolation (``align_corners=False``).

The numbers are computed in the precision librosa uses (float64 FFT and PCEN filter, float32
between steps), so the same audio gives the same tensor within float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from naturelm_core.batdetect2.config import BatDetect2Config

# librosa.pcen's defaults, which BatDetect2 does not override (it passes only sr).
PCEN_HOP_LENGTH = 512
PCEN_GAIN = 0.98
PCEN_BIAS = 2.0
PCEN_POWER = 0.5
PCEN_TIME_CONSTANT_S = 0.4
PCEN_EPS = 1e-6
#: BatDetect2 scales magnitudes by 2**31 before PCEN (int32 full scale) and passes sr / 10.
PCEN_INPUT_SCALE = float(2**31)
PCEN_SR_DIVISOR = 10


def padded_length(n_samples: int, config: BatDetect2Config) -> int:
    """Samples after BatDetect2's ``pad_audio``: the resized spectrogram width becomes a multiple
    of ``spec_divide_factor`` and at least ``spec_divide_factor / resize_factor`` columns."""
    width = int(((n_samples - config.n_overlap) // config.hop_samples) * config.resize_factor)
    min_width = int(config.spec_divide_factor / config.resize_factor)
    if width < min_width:
        target_width = min_width
    elif width % config.spec_divide_factor == 0:
        return n_samples
    else:
        target_width = math.ceil(width / config.spec_divide_factor) * config.spec_divide_factor
    # Resized columns -> STFT frames -> samples, truncated as BatDetect2's x_coord_to_sample does.
    return int(int(target_width / config.resize_factor) * config.hop_samples + config.n_overlap)


def magnitude_stft(audio: np.ndarray, config: BatDetect2Config) -> np.ndarray:
    """(n_fft // 2 + 1, frames) float32 magnitudes of float32 audio, frames not centred."""
    n_fft, hop = config.n_fft, config.hop_samples
    if audio.shape[0] < n_fft:
        raise ValueError(f"need at least {n_fft} samples for one STFT frame, got {audio.shape[0]}")
    n_frames = 1 + (audio.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop][:n_frames]  # (T, n_fft)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann, float64
    spectrum = np.fft.rfft(frames * window, axis=-1).astype(np.complex64)  # (T, n_fft // 2 + 1)
    return np.abs(spectrum).T  # (F, T) float32


def pcen(magnitudes: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """librosa.pcen(magnitudes * 2**31, sr=sample_rate_hz / 10) with librosa's defaults, float32.

    The smoother is the first-order filter y[t] = b x[t] + (1 - b) y[t-1] along time, started from
    librosa's initial state (as if y[-1] = 1, whatever the input's level).
    """
    scaled = magnitudes.astype(np.float32) * np.float32(PCEN_INPUT_SCALE)  # (F, T) exact: power of 2
    t_frames = PCEN_TIME_CONSTANT_S * (sample_rate_hz / PCEN_SR_DIVISOR) / float(PCEN_HOP_LENGTH)
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    keep = 1.0 - b
    smooth = np.empty(scaled.shape, dtype=np.float64)
    previous = np.ones(scaled.shape[0], dtype=np.float64)
    for t in range(scaled.shape[1]):  # a recursion: ~6000 short steps per 3-s chunk
        previous = b * scaled[:, t].astype(np.float64) + keep * previous
        smooth[:, t] = previous
    gain = np.exp(-PCEN_GAIN * (np.log(PCEN_EPS) + np.log1p(smooth / PCEN_EPS)))
    out = (PCEN_BIAS**PCEN_POWER) * np.expm1(PCEN_POWER * np.log1p(scaled * gain / PCEN_BIAS))
    return out.astype(np.float32)


def log_scale(magnitudes: np.ndarray, config: BatDetect2Config) -> np.ndarray:
    """BatDetect2's "log" scaling: log1p(2 / (sr * sum(symmetric Hann**2)) * magnitudes)."""
    window = np.hanning(int(config.fft_win_length_s * config.sample_rate_hz))
    scaling = 2.0 * (1.0 / config.sample_rate_hz) * (1.0 / (np.abs(window) ** 2).sum())
    return np.log1p(scaling * magnitudes)


def band_spectrogram(audio: np.ndarray, config: BatDetect2Config) -> np.ndarray:
    """(rows of the band, frames): steps 2-6 on already padded float32 audio."""
    magnitudes = magnitude_stft(audio, config)
    flipped = magnitudes[1:][::-1]  # (F - 1, T): DC dropped, highest frequency first
    top, bottom = config.crop_rows
    if flipped.shape[0] < top:  # a band reaching above Nyquist: zero rows on top
        flipped = np.vstack([np.zeros((top - flipped.shape[0], flipped.shape[1]), np.float32), flipped])
    cropped = flipped[flipped.shape[0] - top : flipped.shape[0] - bottom]  # (220, T)
    if config.spec_scale == "pcen":
        spec = pcen(cropped, config.sample_rate_hz)
    elif config.spec_scale == "log":
        spec = log_scale(cropped, config)
    else:
        spec = np.ascontiguousarray(cropped)
    if config.denoise_spec_avg:
        spec = np.clip(spec - spec.mean(axis=1)[:, None], 0, None)
    if config.max_scale_spec:
        spec = spec / (spec.max() + 10e-6)
    return spec


def network_input(audio: np.ndarray, config: BatDetect2Config) -> torch.Tensor:
    """(1, 1, input_height, width) float32: the network's input for one chunk of float32 audio
    at ``config.sample_rate_hz`` (padded here, as BatDetect2 pads it)."""
    audio = np.asarray(audio, dtype=np.float32)
    target = padded_length(audio.shape[0], config)
    if target > audio.shape[0]:
        audio = np.concatenate([audio, np.zeros(target - audio.shape[0], np.float32)])
    spec = torch.from_numpy(np.ascontiguousarray(band_spectrogram(audio, config), dtype=np.float32))
    spec = spec[None, None]  # (1, 1, rows, frames)
    size = (config.input_height, int(spec.shape[-1] * config.resize_factor))
    return F.interpolate(spec, size=size, mode="bilinear", align_corners=False)
