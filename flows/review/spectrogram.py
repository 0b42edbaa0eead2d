"""A spectrogram of a short span as a PNG, rendered on the server (numpy STFT, matplotlib Agg).

The reviewed window is marked by two lines, so a reviewer sees the window and its context. The
frequency axis spans the band the window's model analysed when it is known, and ultrasonic
windows use short frames (flows/review/ultrasound.py).
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from connectors.clips import Span
from flows.review.ultrasound import ULTRASONIC_FRAME_S, Listening

#: STFT frame length, seconds (a power of two of samples near this is used).
FRAME_S = 0.02
#: Frames overlap by this fraction.
OVERLAP = 0.75
#: Dynamic range shown below the loudest bin, dB.
RANGE_DB = 80.0
WIDTH_PX, HEIGHT_PX, DPI = 900, 300, 100


def stft_db(samples: np.ndarray, sample_rate_hz: int, frame_s: float = FRAME_S
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(power in dB (bins, frames), frame centre times s, bin frequencies Hz) of a Hann STFT
    whose frame is the power of two of samples nearest `frame_s`."""
    n_fft = 1 << max(6, int(round(np.log2(frame_s * sample_rate_hz))))
    hop = max(1, int(n_fft * (1.0 - OVERLAP)))
    padded = np.pad(samples.astype(np.float64), (n_fft // 2, n_fft // 2))
    n_frames = max(1, 1 + (len(padded) - n_fft) // hop)
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]  # (T, n_fft)
    frames = padded[np.minimum(index, len(padded) - 1)] * np.hanning(n_fft)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (T, n_fft // 2 + 1)
    db = 10.0 * np.log10(np.maximum(power, 1e-20)).T  # (F, T)
    times_s = np.arange(n_frames) * hop / sample_rate_hz
    freqs_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    return db, times_s, freqs_hz


def spectrogram_figure(span: Span, window_start_s: float, window_end_s: float, title: str = "",
                       listen: Listening = Listening(1, None)) -> Figure:
    """The span's spectrogram; the x axis is seconds from the start of the file, the y axis the
    band `listen` names (0 to Nyquist when None)."""
    frame_s = ULTRASONIC_FRAME_S if listen.ultrasonic else FRAME_S
    db, times_s, freqs_hz = stft_db(span.samples, span.sample_rate_hz, frame_s)
    if listen.band_hz is not None:  # the loudest bin *in the band* sets the colour scale
        low, high = listen.band_hz
        inside = (freqs_hz >= low) & (freqs_hz <= high)
        if inside.any():
            db, freqs_hz = db[inside], freqs_hz[inside]
    top = float(db.max())
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.07, 0.16, 0.91, 0.74))
    extent = (span.start_s + times_s[0], span.start_s + times_s[-1] + 1e-9,
              freqs_hz[0] / 1000.0, freqs_hz[-1] / 1000.0)
    axes.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma",
                vmin=top - RANGE_DB, vmax=top, interpolation="nearest")
    for x in (window_start_s, window_end_s):
        axes.axvline(x, color="#7fdbff", linewidth=1.5, linestyle="--")
    axes.set_xlabel("seconds from the start of the file")
    axes.set_ylabel("kHz")
    if title:
        axes.set_title(title, fontsize=10)
    return figure


def spectrogram_png(span: Span, window_start_s: float, window_end_s: float, title: str = "",
                    listen: Listening = Listening(1, None)) -> bytes:
    """`spectrogram_figure` as PNG bytes."""
    out = io.BytesIO()
    spectrogram_figure(span, window_start_s, window_end_s, title, listen).savefig(out, format="png")
    return out.getvalue()
