"""From the network's heatmaps to calls, as BatDetect2 1.3.1's ``run_nms`` does it.

1. Non-maximum suppression: a pixel of the detection heatmap stays only where it equals the
   maximum of the ``nms_kernel_size`` x ``nms_kernel_size`` square around it (9 x 9 pixels:
   ~18 ms x 7.7 kHz); every other pixel becomes 0.
2. Top-k: the k highest remaining pixels, k = int(duration x ``nms_top_k_per_sec``), where
   BatDetect2 measures the duration from the *resized* width as if it were STFT frames, so the
   "duration" is about half the chunk's (1.5055 s for a 3-s chunk: k = 301, not 600). Kept as is.
3. Threshold: peaks whose detection probability exceeds ``detection_threshold`` (strictly).
4. Each peak at (row y, column x) is a call: start = time of STFT frame x / resize_factor, end =
   time of frame (x + box width) / resize_factor, where frame f's time is
   (f x hop + n_overlap) / rate; low frequency = (H - y) x (max - min) / H + min; high = low +
   box height x (max - min) / H. Class probabilities are the class channels at the peak, the
   background channel dropped (not renormalised): a call's best class probability is at most its
   detection probability.

Calls come out in time order (column, then row), as BatDetect2 sorts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from naturelm_core.batdetect2.config import BatDetect2Config
from naturelm_core.batdetect2.model import NetOutput


@dataclass(frozen=True)
class Calls:
    """The calls found in one chunk; arrays of one row per call, in time order."""

    start_s: np.ndarray  # (N,) seconds from the chunk's start
    end_s: np.ndarray  # (N,)
    low_freq_hz: np.ndarray  # (N,)
    high_freq_hz: np.ndarray  # (N,)
    detection_prob: np.ndarray  # (N,) float32
    class_probs: np.ndarray  # (N, C) float32, background dropped
    #: The heatmap's maximum over the chunk: the best peak's detection probability, whether or
    #: not it passes the threshold (0 calls can still have a best peak).
    best_detection_prob: float
    #: The best peak as a call of its own (one row, same fields), for `detect`.
    best: "Calls | None" = None

    def __len__(self) -> int:
        return int(self.start_s.shape[0])


def frame_time_s(frame: torch.Tensor | np.ndarray, config: BatDetect2Config) -> np.ndarray:
    """Seconds of STFT frame position(s), as BatDetect2's ``x_coords_to_time``."""
    frame = np.asarray(frame, dtype=np.float64)
    return (frame * config.hop_samples + config.n_overlap) / config.sample_rate_hz


def top_k(width: int, config: BatDetect2Config) -> int:
    """Peaks kept per chunk of `width` resized columns (BatDetect2's quirk: the resized width is
    taken for STFT frames, so this is about half of ``nms_top_k_per_sec`` per real second)."""
    return int(float(frame_time_s(width, config)) * config.nms_top_k_per_sec)


def suppress_non_maxima(heat: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B, 1, H, W): the heatmap where it is its neighbourhood's maximum, 0 elsewhere."""
    pad = (kernel_size - 1) // 2
    neighbourhood_max = F.max_pool2d(heat, kernel_size, stride=1, padding=pad)
    return heat * (neighbourhood_max == heat)


def _boxes(output: NetOutput, item: int, rows: torch.Tensor, cols: torch.Tensor,
           scores: torch.Tensor, config: BatDetect2Config) -> dict[str, np.ndarray]:
    height = output.detection.shape[-2]
    freq_per_row = (config.max_freq_hz - config.min_freq_hz) / height
    width_px = output.size[item, 0, rows, cols].double().numpy()
    height_px = output.size[item, 1, rows, cols].double().numpy()
    x = cols.double().numpy()
    low = (height - rows.double().numpy()) * freq_per_row + config.min_freq_hz
    n_classes = len(config.class_names)
    return {
        "start_s": frame_time_s(x / config.resize_factor, config),
        "end_s": frame_time_s((x + width_px) / config.resize_factor, config),
        "low_freq_hz": low,
        "high_freq_hz": low + height_px * freq_per_row,
        "detection_prob": scores.numpy().astype(np.float32),
        "class_probs": output.classes[item, :n_classes, rows, cols].T.numpy().astype(np.float32),  # (N, C)
    }


def find_calls(output: NetOutput, config: BatDetect2Config, detection_threshold: float) -> list[Calls]:
    """The calls of each item of a batch of equally wide chunks."""
    peaks = suppress_non_maxima(output.detection, config.nms_kernel_size)  # (B, 1, H, W)
    batch, _, height, width = peaks.shape
    scores, flat = torch.topk(peaks.reshape(batch, -1), top_k(width, config))  # (B, K)
    rows, cols = flat // width, flat % width
    found = []
    for item in range(batch):
        order = torch.argsort(cols[item] * height + rows[item])  # time order (column, then row)
        keep = order[scores[item, order] > detection_threshold]
        calls = _boxes(output, item, rows[item, keep], cols[item, keep], scores[item, keep], config)
        best = _boxes(output, item, rows[item, :1], cols[item, :1], scores[item, :1], config)
        found.append(Calls(**calls, best_detection_prob=float(scores[item, 0]),
                           best=Calls(**best, best_detection_prob=float(scores[item, 0]))))
    return found
