"""The MS-CLAP 2023 audio front end: clip length, repeat padding, STFT power, log-mel.

Reads top to bottom: audio constants, the clip rule (`fit_clip`), the slaney mel filterbank, then
the two modules HTSAT owns (`Spectrogram`, `LogmelFilterBank`). Their parameter names equal the
release's keys under ``audio_encoder.base.htsat.`` (``spectrogram_extractor.stft.conv_real.weight``,
``...conv_imag.weight``, ``logmel_extractor.melW``): the release stores the three fixed kernels,
and its copies replace the ones computed here when it loads.

Facts followed: `reference/ms-clap-2023.md` §1. Two of them are surprising and kept on purpose:

- the audio is 44.1 kHz, but the mel matrix is built for 32 kHz with fmax 14 kHz (HTSAT's own
  config module, not the yml the wrapper passes and HTSAT ignores), so every band sits 1.378x
  higher than its nominal frequency. The weights were trained that way.
- a clip shorter than 7 s is tiled (repeat padding), never zero padded; a longer one is cut at
  a random offset by msclap. Here a longer clip is refused: the caller cuts 7-s windows itself,
  so the same audio always gives the same answer.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _exact_div(numerator: int, denominator: int) -> int:
    if numerator % denominator:
        raise ValueError(f"{numerator} is not a multiple of {denominator}")
    return numerator // denominator


# --------------------------------------------------------------------------------------------
# Audio constants (all fixed by the published model)
# --------------------------------------------------------------------------------------------

SAMPLE_RATE_HZ = 44_100  # the rate audio is resampled to (config_2023.yml sampling_rate)
CLIP_S = 7  # config_2023.yml duration
CLIP_SAMPLES = SAMPLE_RATE_HZ * CLIP_S  # 308700
N_FFT = 1024  # STFT size = window length (periodic Hann)
HOP_SAMPLES = 320
N_FREQ_BINS = N_FFT // 2 + 1  # 513
N_MELS = 64
MEL_SAMPLE_RATE_HZ = 32_000  # the rate HTSAT's mel matrix assumes (not the audio's rate)
MEL_FMIN_HZ = 50.0
MEL_FMAX_HZ = 14_000.0
LOG_AMIN = 1e-10  # power floor before 10 log10 (-100 dB)
LOG_REF = 1.0  # reference power: 0 dB


def num_stft_frames(num_samples: int, n_fft: int = N_FFT, hop: int = HOP_SAMPLES) -> int:
    """Frames of a centred STFT (n_fft // 2 reflect padding each side) of `num_samples`."""
    padded = num_samples + 2 * (n_fft // 2)
    return 1 + (padded - n_fft) // hop


CLIP_FRAMES = num_stft_frames(CLIP_SAMPLES)  # 965


def fit_clip(samples: np.ndarray, clip_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """One mono clip cut or tiled to exactly `clip_samples` (float32), as msclap prepares it.

    Shorter (or equal) input is repeated ceil(clip / n) times and the first `clip_samples` kept.
    Longer input is refused: msclap would take one random crop of it.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"fit_clip: expected one mono clip (samples,), got shape {samples.shape}")
    n = samples.shape[0]
    if n == 0:
        raise ValueError("fit_clip: empty clip")
    if n > clip_samples:
        raise ValueError(
            f"clip of {n} samples is longer than the model's {clip_samples} "
            f"({clip_samples / SAMPLE_RATE_HZ:g} s at {SAMPLE_RATE_HZ} Hz); cut windows of at most that length"
        )
    repeats = -(-clip_samples // n)  # ceil
    return np.tile(samples, repeats)[:clip_samples]


# --------------------------------------------------------------------------------------------
# Slaney mel filterbank (librosa.filters.mel defaults: slaney scale, slaney area normalisation)
# --------------------------------------------------------------------------------------------

_SLANEY_F_SP = 200.0 / 3  # Hz per mel below the break
_SLANEY_BREAK_HZ = 1000.0  # linear below, logarithmic above
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_F_SP  # 15
_SLANEY_LOGSTEP = math.log(6.4) / 27.0  # mels per log-Hz above the break


def hz_to_mel_slaney(freq_hz: np.ndarray) -> np.ndarray:
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    linear = freq_hz / _SLANEY_F_SP
    with np.errstate(divide="ignore"):
        log = _SLANEY_BREAK_MEL + np.log(np.maximum(freq_hz, 1e-300) / _SLANEY_BREAK_HZ) / _SLANEY_LOGSTEP
    return np.where(freq_hz >= _SLANEY_BREAK_HZ, log, linear)


def mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_F_SP
    log = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, log, linear)


def slaney_mel_filterbank(
    sample_rate_hz: int = MEL_SAMPLE_RATE_HZ,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin_hz: float = MEL_FMIN_HZ,
    fmax_hz: float = MEL_FMAX_HZ,
) -> np.ndarray:
    """Triangular filters (n_fft // 2 + 1, n_mels) float32, laid out as HTSAT's ``melW``.

    Triangles are linear in Hz between mel-spaced corners; each is scaled to unit area
    (2 / bandwidth). Computed in float64, returned as float32.
    """
    fft_hz = np.linspace(0.0, sample_rate_hz / 2, n_fft // 2 + 1)  # (F,)
    corners_mel = np.linspace(hz_to_mel_slaney(fmin_hz), hz_to_mel_slaney(fmax_hz), n_mels + 2)
    corners_hz = mel_to_hz_slaney(corners_mel)  # (M + 2,)
    widths_hz = np.diff(corners_hz)  # (M + 1,)
    offsets = corners_hz[:, None] - fft_hz[None, :]  # (M + 2, F)
    rising = -offsets[:-2] / widths_hz[:-1, None]  # (M, F)
    falling = offsets[2:] / widths_hz[1:, None]  # (M, F)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (corners_hz[2:] - corners_hz[:-2]))[:, None]
    return weights.T.astype(np.float32)  # (F, M)


def dft_kernels(n_fft: int = N_FFT) -> tuple[np.ndarray, np.ndarray]:
    """(real, imag) STFT kernels (n_fft // 2 + 1, 1, n_fft) float32: periodic Hann x DFT rows.

    Row k, tap n: window[n] * cos(2 pi k n / N) and -window[n] * sin(2 pi k n / N). The phase is
    reduced modulo N in integers first, so large k * n lose no precision.
    """
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)  # periodic Hann (scipy fftbins=True)
    phase = 2.0 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft  # (K, N)
    real = (np.cos(phase) * window[None, :]).astype(np.float32)
    imag = (-np.sin(phase) * window[None, :]).astype(np.float32)
    return real[:, None, :], imag[:, None, :]


# --------------------------------------------------------------------------------------------
# Modules (names = release keys)
# --------------------------------------------------------------------------------------------


class STFT(nn.Module):
    """Centred STFT as two strided 1-D convolutions with fixed DFT x window kernels."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP_SAMPLES) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        n_bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, n_bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, n_bins, n_fft, stride=hop, bias=False)
        real, imag = dft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real))
            self.conv_imag.weight.copy_(torch.from_numpy(imag))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave (B, S) -> (real, imag), each (B, 1, T, K) with T = num_stft_frames(S)."""
        x = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")  # (B, 1, S + N)
        real = self.conv_real(x)[:, None].transpose(2, 3)  # (B, 1, T, K)
        imag = self.conv_imag(x)[:, None].transpose(2, 3)  # (B, 1, T, K)
        return real, imag


class Spectrogram(nn.Module):
    """Power spectrogram |X|^2 (B, 1, T, K)."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP_SAMPLES) -> None:
        super().__init__()
        self.stft = STFT(n_fft, hop)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(wave)
        return real.square() + imag.square()


class LogmelFilterBank(nn.Module):
    """Power spectrogram (B, 1, T, K) -> log-mel in dB (B, 1, T, M), floor -100 dB, no top_db."""

    def __init__(
        self,
        sample_rate_hz: int = MEL_SAMPLE_RATE_HZ,
        n_fft: int = N_FFT,
        n_mels: int = N_MELS,
        fmin_hz: float = MEL_FMIN_HZ,
        fmax_hz: float = MEL_FMAX_HZ,
    ) -> None:
        super().__init__()
        mel = slaney_mel_filterbank(sample_rate_hz, n_fft, n_mels, fmin_hz, fmax_hz)
        self.melW = nn.Parameter(torch.from_numpy(mel), requires_grad=False)  # (K, M)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        mel_power = torch.matmul(power, self.melW)  # (B, 1, T, M)
        offset_db = 10.0 * math.log10(max(LOG_AMIN, LOG_REF))  # 0 dB for ref 1.0
        return 10.0 * torch.log10(torch.clamp(mel_power, min=LOG_AMIN)) - offset_db
