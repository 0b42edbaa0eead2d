"""HTSAT, the audio encoder of MS-CLAP 2023: a Swin Transformer over a folded log-mel image.

Reads top to bottom: the config, window helpers, the leaf modules (window attention with a
relative-position bias, MLP, shifted-window block, patch merging, stage, patch embedding), then
`HTSAT` with its front end. Submodule, parameter and buffer names equal the release's keys after
``audio_encoder.base.htsat.``, so loading is a strict one-to-one copy. Facts followed:
`reference/ms-clap-2023.md` §1.2-§2.

Path of one 7-s clip at the published sizes:
  wave (308700,) -> power STFT (965, 513) -> log-mel (965, 64) -> bn0 over the 64 bins
  -> bicubic stretch to (1024, 64) -> fold 4 chunks of 256 frames into a (256, 256) image
  -> 4x4 patches: 64 x 64 tokens of 96 -> stages 96/192/384/768 on 64/32/16/8 grids
  -> LayerNorm -> mean of the 64 final tokens = the 768-d clip embedding.

`tscam_conv` and `head` (AudioSet's 527 classes) are in the release and are loaded, but the
embedding never passes through them; they are kept only so the key set matches one-to-one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from naturelm_core.clap import frontend

#: Added to attention logits between tokens of different shifted-window regions (not -inf).
SHIFTED_WINDOW_MASK = -100.0


@dataclass(frozen=True)
class HTSATConfig:
    """HTSAT's constructor values. Defaults = the published MS-CLAP 2023 audio encoder."""

    n_fft: int = frontend.N_FFT  # STFT size and window length
    hop_samples: int = frontend.HOP_SAMPLES  # STFT hop
    n_mels: int = frontend.N_MELS  # mel bins (bn0's channels)
    mel_sample_rate_hz: int = frontend.MEL_SAMPLE_RATE_HZ  # the rate the mel matrix assumes
    mel_fmin_hz: float = frontend.MEL_FMIN_HZ
    mel_fmax_hz: float = frontend.MEL_FMAX_HZ
    spec_size: int = 256  # side of the square image the log-mel is folded into
    freq_ratio: int = 4  # chunks of time stacked along frequency (1024 frames -> 4 x 256)
    patch_size: int = 4  # patch-embedding kernel (square)
    patch_stride: int = 4  # patch-embedding stride (square; = patch_size, so no padding)
    embed_dim: int = 96  # channels of stage 1; doubled by each patch merging
    depths: tuple[int, ...] = (2, 2, 6, 2)  # Swin blocks per stage
    num_heads: tuple[int, ...] = (4, 8, 16, 32)  # attention heads per stage
    window_size: int = 8  # tokens per window side (8 x 8 = 64 per window)
    mlp_ratio: float = 4.0  # MLP hidden width / block width
    num_classes: int = 527  # AudioSet classes of the unused token-semantic head
    layer_norm_eps: float = 1e-5
    batch_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "num_heads", tuple(self.num_heads))
        problems = []
        if len(self.depths) != len(self.num_heads):
            problems.append(f"depths {self.depths} and num_heads {self.num_heads} differ in length")
        if self.spec_size % self.freq_ratio or self.spec_size // self.freq_ratio != self.n_mels:
            problems.append(f"spec_size {self.spec_size} / freq_ratio {self.freq_ratio} must equal n_mels {self.n_mels}")
        if self.patch_size != self.patch_stride:
            problems.append("patch_size must equal patch_stride (the release has no overlapping patches)")
        for i, heads in enumerate(self.num_heads):
            if self.stage_dim(i) % heads:
                problems.append(f"stage {i} width {self.stage_dim(i)} is not a multiple of {heads} heads")
        if self.spec_size % (self.patch_stride * 2 ** (len(self.depths) - 1)):
            problems.append("spec_size must halve exactly at every patch merging")
        for i in range(len(self.depths)):
            grid = self.spec_size // self.patch_stride // 2**i
            if grid > self.window_size and grid % self.window_size:
                problems.append(f"stage {i} grid {grid} is not a multiple of window_size {self.window_size}")
        if problems:
            raise ValueError("invalid HTSATConfig: " + "; ".join(problems))

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    def stage_dim(self, stage: int) -> int:
        return self.embed_dim * 2**stage

    def grid_size(self, stage: int) -> int:
        """Tokens per side of stage `stage`'s square grid (64, 32, 16, 8 as published)."""
        return self.spec_size // self.patch_stride // 2**stage

    @property
    def num_features(self) -> int:
        """Width of the final tokens = the clip embedding (768 as published)."""
        return self.stage_dim(self.num_stages - 1)

    @property
    def image_frames(self) -> int:
        """Frames the log-mel is stretched to before folding (1024 as published)."""
        return self.spec_size * self.freq_ratio

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "HTSATConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{source}: unknown HTSAT config key(s) {unknown}; known: {sorted(names)}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["depths"], out["num_heads"] = list(self.depths), list(self.num_heads)
        return out


# --------------------------------------------------------------------------------------------
# Window helpers
# --------------------------------------------------------------------------------------------


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window, window, C), windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)  # (B, H/w, w, W/w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)  # (B·nW, w, w, C)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, window, window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)  # (B, H/w, W/w, w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)  # (B, H, W, C)


def relative_position_index(window: int) -> torch.Tensor:
    """(w², w²) int64: row i, column j = index of (dy, dx) = pos_i - pos_j in the bias table.

    The table has (2w - 1)² rows; (dy, dx) maps to (dy + w - 1) * (2w - 1) + (dx + w - 1).
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))  # (2, w, w)
    flat = coords.flatten(1)  # (2, w²)
    delta = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0)  # (w², w², 2)
    return (delta[..., 0] + window - 1) * (2 * window - 1) + (delta[..., 1] + window - 1)


def shifted_window_mask(grid: int, window: int, shift: int) -> torch.Tensor:
    """(nW, w², w²) float32 additive mask for a cyclically shifted grid.

    After the roll, a window may hold tokens from up to 4 of the 9 regions cut by the slices
    [0, -w), [-w, -shift), [-shift, grid) on each axis; tokens of different regions must not
    attend to each other and get SHIFTED_WINDOW_MASK.
    """
    regions = torch.zeros(1, grid, grid, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in cuts:
        for cols in cuts:
            regions[:, rows, cols, :] = label
            label += 1
    labels = window_partition(regions, window).view(-1, window * window)  # (nW, w²)
    different = labels[:, None, :] != labels[:, :, None]  # (nW, w², w²)
    return torch.zeros(different.shape).masked_fill(different, SHIFTED_WINDOW_MASK)


# --------------------------------------------------------------------------------------------
# Leaf modules
# --------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus a learned relative-position bias."""

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B·nW, N, C); mask (nW, N, N) or None -> (B·nW, N, C)."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B·nW, h, N, d)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)  # (B·nW, h, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N·N, h)
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)  # (1, h, N, N)
        if mask is not None:
            n_windows = mask.shape[0]
            attn = attn.view(bw // n_windows, n_windows, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)  # (B·nW, N, C)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class SwinBlock(nn.Module):
    """Pre-norm block: x + W-MSA(LN(x)) on (shifted) windows, then x + MLP(LN(x)).

    A grid no larger than one window gets one window and no shift (the last stage as published),
    and then no `attn_mask` buffer, as in the release.
    """

    def __init__(self, config: HTSATConfig, dim: int, grid: int, num_heads: int, shift: bool) -> None:
        super().__init__()
        self.grid = grid
        self.window = min(config.window_size, grid)
        self.shift = config.window_size // 2 if shift and grid > config.window_size else 0
        eps = config.layer_norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention(dim, self.window, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))
        self.attn_mask: torch.Tensor | None
        if self.shift:
            self.register_buffer("attn_mask", shifted_window_mask(grid, self.window, self.shift))
        else:
            self.attn_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H·W, C) -> (B, H·W, C)."""
        b, n, c = x.shape
        h = w = self.grid
        y = self.norm1(x).view(b, h, w, c)  # (B, H, W, C)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(y, self.window).view(-1, self.window * self.window, c)  # (B·nW, N, C)
        windows = self.attn(windows, self.attn_mask).view(-1, self.window, self.window, c)
        y = window_reverse(windows, self.window, h, w)  # (B, H, W, C)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, n, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2 x 2 neighbours -> one token: concat (4C) -> LayerNorm -> Linear(4C, 2C) without bias."""

    def __init__(self, dim: int, grid: int, eps: float) -> None:
        super().__init__()
        self.grid = grid
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H·W, C) -> (B, H/2·W/2, 2C)."""
        b, _, c = x.shape
        x = x.view(b, self.grid, self.grid, c)  # (B, H, W, C)
        # Order: (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))  # (B, H/2·W/2, 2C)


class Stage(nn.Module):
    """`depth` Swin blocks (odd ones shifted), then a patch merging except in the last stage."""

    def __init__(self, config: HTSATConfig, stage: int) -> None:
        super().__init__()
        dim, grid = config.stage_dim(stage), config.grid_size(stage)
        heads = config.num_heads[stage]
        self.blocks = nn.ModuleList(
            SwinBlock(config, dim, grid, heads, shift=i % 2 == 1) for i in range(config.depths[stage])
        )
        self.downsample = (
            PatchMerging(dim, grid, config.layer_norm_eps) if stage < config.num_stages - 1 else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    """(B, 1, S, S) image -> (B, (S/p)², D) tokens in row-major grid order, then LayerNorm."""

    def __init__(self, config: HTSATConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, config.embed_dim, config.patch_size, stride=config.patch_stride)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.proj(image)  # (B, D, S/p, S/p)
        return self.norm(x.flatten(2).transpose(1, 2))  # (B, (S/p)², D)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def fold_to_image(logmel: torch.Tensor, config: HTSATConfig) -> torch.Tensor:
    """(B, 1, T, M) normalised log-mel -> (B, 1, S, S) image (HTSAT's reshape_wav2img).

    Time is stretched to `image_frames` by bicubic interpolation (A = -0.75, align_corners), then
    cut into `freq_ratio` consecutive chunks stacked along frequency: image row M·k + f, column t
    holds frame (S·k + t) of mel bin f.
    """
    b, c, t, m = logmel.shape
    target_t = config.image_frames
    if t > target_t or m != config.n_mels:
        raise ValueError(f"log-mel of {t} frames x {m} bins does not fit HTSAT's {target_t} x {config.n_mels}")
    if t < target_t:
        logmel = F.interpolate(logmel, (target_t, m), mode="bicubic", align_corners=True)  # (B, 1, 1024, M)
    chunk = target_t // config.freq_ratio
    x = logmel.permute(0, 1, 3, 2).reshape(b, c, m, config.freq_ratio, chunk)  # (B, 1, M, k, S)
    return x.permute(0, 1, 3, 2, 4).reshape(b, c, config.freq_ratio * m, chunk)  # (B, 1, k·M, S)


class HTSAT(nn.Module):
    """HTSAT_Swin_Transformer in eval mode: wave -> 768-d clip embedding (mean of final tokens)."""

    def __init__(self, config: HTSATConfig = HTSATConfig()) -> None:
        super().__init__()
        self.config = config
        self.spectrogram_extractor = frontend.Spectrogram(config.n_fft, config.hop_samples)
        self.logmel_extractor = frontend.LogmelFilterBank(
            config.mel_sample_rate_hz, config.n_fft, config.n_mels, config.mel_fmin_hz, config.mel_fmax_hz
        )
        self.bn0 = nn.BatchNorm2d(config.n_mels, eps=config.batch_norm_eps)
        self.patch_embed = PatchEmbed(config)
        self.layers = nn.ModuleList(Stage(config, i) for i in range(config.num_stages))
        self.norm = nn.LayerNorm(config.num_features, eps=config.layer_norm_eps)
        # Token-semantic AudioSet head: in the release, never on the embedding's path.
        last_grid = config.grid_size(config.num_stages - 1)
        self.tscam_conv = nn.Conv2d(
            config.num_features, config.num_classes, (last_grid // config.freq_ratio, 3), padding=(0, 1)
        )
        self.head = nn.Linear(config.num_classes, config.num_classes)

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) -> log-mel (B, 1, T, M) in dB, before bn0."""
        return self.logmel_extractor(self.spectrogram_extractor(wave))

    def image(self, logmel: torch.Tensor) -> torch.Tensor:
        """log-mel (B, 1, T, M) -> bn0 over mel bins -> folded image (B, 1, S, S)."""
        x = self.bn0(logmel.transpose(1, 3)).transpose(1, 3)  # mel bins as BatchNorm channels
        return fold_to_image(x, self.config)

    def tokens(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 1, S, S) -> final normed tokens (B, g², C) of the last stage."""
        x = self.patch_embed(image)
        for stage in self.layers:
            x = stage(x)
        return self.norm(x)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) prepared clips -> clip embeddings (B, num_features)."""
        return self.tokens(self.image(self.logmel(wave))).mean(dim=1)
