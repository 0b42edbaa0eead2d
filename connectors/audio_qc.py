"""Quality per window: level, peak, clipping and dropouts, measured on the samples as decoded.

`connectors.audio` calls :func:`measure` once per analysed window, on the native-rate frames it
has just read (before the channel mix and before resampling: a clipped channel is still at full
scale there, and a dropout is still exact zeros), so nothing is read twice. The run stores the
measures and the verdict on the window's `windows` row; the effort analyses can leave windows
whose verdict is not `ok` out of effort (`docs/effort.md`, "Quality per window", says why each
threshold is what it is).

Verdicts, the first that applies:

- ``silent``: the window's RMS level is below :data:`SILENT_BELOW_DBFS` (a dead or unplugged
  microphone; no field noise floor reads that low).
- ``dropout``: a run of exact zeros of at least :data:`DROPOUT_MIN_S` inside the audio (zeros
  that start the recording or end it are codec priming and padding, not a gap).
- ``clipped``: at least :data:`CLIPPED_MIN_FRACTION` of the window's frames hold a sample at
  :data:`CLIP_LEVEL` of the format's full scale or beyond (wind, rain on the microphone).
- ``ok``: none of these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

SILENT_BELOW_DBFS = -80.0
"""A window whose RMS level (dB relative to full scale) is below this is `silent`. The quietest
3-s window in the 29 real recordings under the shared test clips reads -63 dBFS (a hydrophone);
16-bit quantisation noise sits near -101 dBFS, so a dead input reads between the two."""
CLIP_LEVEL = 0.999
"""A sample at this fraction of the format's full scale or beyond (:func:`full_scale`) counts as
clipped: within 0.009 dB of the rail, the last 33 steps of 16-bit PCM."""
CLIPPED_MIN_FRACTION = 0.01
"""A window with at least this fraction of its frames clipped is `clipped`: a loud call clips a
few peaks (far below 1 %), wind or rain on the microphone holds the rail for long stretches."""
DROPOUT_MIN_S = 0.05
"""A run of exact zeros at least this long inside the audio makes a window a `dropout`. Real
noise never holds exact zero that long (the longest run inside the shared clips is 0.3 ms);
shorter gaps lose under 2 % of a 3-s window."""
VERDICTS = ("ok", "silent", "dropout", "clipped")

#: The `windows` columns the measures fill, in order (tables.WindowRow documents them).
QUALITY_COLUMNS = ("rms_dbfs", "peak_dbfs", "clipped_fraction", "zero_run_s", "qc")


@dataclass(frozen=True)
class WindowQuality:
    rms_dbfs: float
    """RMS level of what the model hears (the channel mix, or the channel), dB re full scale."""
    peak_dbfs: float
    """Largest absolute sample of any channel, dB re full scale (1.0)."""
    clipped_fraction: float
    """Fraction of the window's frames with a sample at CLIP_LEVEL of full scale or beyond."""
    zero_run_s: float
    """Longest run of frames of exact zeros (in every channel mixed) inside the audio, seconds."""
    qc: str
    """The verdict: one of VERDICTS."""


def full_scale(subtype: str | None) -> float:
    """The largest positive sample a format holds, as soundfile's float32 read scales it.

    Integer PCM reads as k / 2**(bits-1), so its positive rail is 1 - 2**-(bits-1) (127/128 for
    8-bit: 0.999 of 1.0 would never be reached there). Float and lossy formats have 1.0.
    """
    bits = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32,
            "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32}.get((subtype or "").upper())
    return 1.0 - 2.0 ** -(bits - 1) if bits else 1.0


def _dbfs(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def _longest_run(mask: np.ndarray, skip_first: bool, skip_last: bool) -> int:
    """Longest run of True in a 1-d bool array, leaving out a run at either end when asked."""
    if not mask.any():
        return 0
    step = np.diff(mask.view(np.int8))  # (F-1,) int8: +1 where a run starts, -1 after it ends
    starts = np.flatnonzero(step == 1) + 1
    ends = np.flatnonzero(step == -1) + 1
    if mask[0]:
        starts = np.concatenate([[0], starts])
    if mask[-1]:
        ends = np.concatenate([ends, [len(mask)]])
    keep = np.ones(len(starts), bool)
    if skip_first:
        keep &= starts != 0
    if skip_last:
        keep &= ends != len(mask)
    return int((ends - starts)[keep].max(initial=0))


def measure(frames: np.ndarray, heard: np.ndarray, rate_hz: int, scale: float,
            at_start: bool, at_end: bool) -> list[WindowQuality]:
    """One window's quality per column of `heard`.

    frames: (F, C) the window's native samples of every channel (no resampling margins); heard:
    (F, K) what the model is given, K = 1 for the channel mix (clipping and zeros are then taken
    across all channels: a frame is clipped if any channel is, zero if every channel is) or
    K = C for one window per channel. `at_start` / `at_end`: the window holds the recording's
    first / last real frame, so zeros there are priming or padding, not a dropout.
    """
    n = len(frames)
    if n == 0:
        return []
    mixed = heard.shape[1] == 1 and frames.shape[1] > 1
    # Per channel, comparisons rather than np.abs: bool masks only, no float copy of the window,
    # and no reduction across the short channel axis (numpy is slow at those).
    level = np.float32(CLIP_LEVEL * scale)
    clip, zero, peaks = [], [], []
    for c in range(frames.shape[1]):
        x = frames[:, c]  # (F,)
        clip.append((x >= level) | (x <= -level))
        zero.append(x == 0)
        peaks.append(max(float(x.max()), -float(x.min())))
    if mixed:  # a frame is clipped if any channel is, zero only if every channel is
        for c in range(1, len(clip)):
            clip[0] |= clip[c]
            zero[0] &= zero[c]
        clip, zero, peaks = clip[:1], zero[:1], [max(peaks)]
    out = []
    for k in range(heard.shape[1]):
        column = heard[:, k]
        energy = float(np.dot(column, column))  # float32 dot: fast, exact enough for dB
        if energy == 0.0 and column.any():  # squares of tiny samples underflow float32
            energy = float(np.dot(column.astype(np.float64), column.astype(np.float64)))
        rms = math.sqrt(energy / n)
        rms_dbfs = _dbfs(rms)
        clipped = float(np.count_nonzero(clip[k])) / n
        zero_run_s = _longest_run(zero[k], at_start, at_end) / rate_hz
        if rms_dbfs < SILENT_BELOW_DBFS:
            verdict = "silent"
        elif zero_run_s >= DROPOUT_MIN_S:
            verdict = "dropout"
        elif clipped >= CLIPPED_MIN_FRACTION:
            verdict = "clipped"
        else:
            verdict = "ok"
        out.append(WindowQuality(rms_dbfs, _dbfs(peaks[k]), clipped, zero_run_s, verdict))
    return out


def quality_columns(quality: WindowQuality | None) -> dict[str, Any]:
    """A decoded row's quality columns (all None: not measured, the window was not analysed)."""
    if quality is None:
        return dict.fromkeys(QUALITY_COLUMNS)
    return {name: getattr(quality, name) for name in QUALITY_COLUMNS}


def quality_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The quality columns of a row that went through the engine, as `WindowRow` fields.

    A row without them, or with NaN where a batch turned None into a number, is not measured;
    nothing non-finite reaches the catalog.
    """
    out: dict[str, Any] = {}
    for name in QUALITY_COLUMNS:
        value = row.get(name)
        if name == "qc":
            out[name] = value if isinstance(value, str) and value in VERDICTS else None
        else:
            number = isinstance(value, (int, float, np.number)) and math.isfinite(float(value))
            out[name] = float(value) if number else None
    return out
