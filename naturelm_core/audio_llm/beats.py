"""BEATs, the audio encoder of NatureLM-audio and SALMONN (its second branch), in plain torch.

Reads top to bottom: audio constants, the Kaldi log-mel front end, the config, then the model
from its leaf modules (weight-normalised positional conv, gated relative-position attention,
deep-norm post-LN layer) up to `BEATs`. Submodule and parameter names equal the keys of the
published NatureLM-audio checkpoint after its `beats.` prefix, so loading is a strict one-to-one
copy. Facts followed: `reference/naturelm-audio.md` §1.2, §4.2 and §11.

The front end reproduces `torchaudio.compliance.kaldi.fbank` at the settings BEATs uses, without
torchaudio. It computes in the input's dtype: the reference feeds float64 audio, and float32
features differ by up to ~6e-3 after normalisation, so pass float64 for parity.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn


def _exact_div(numerator: int, denominator: int) -> int:
    if numerator % denominator:
        raise ValueError(f"{numerator} is not a multiple of {denominator}")
    return numerator // denominator


# --------------------------------------------------------------------------------------------
# Audio constants (the BEATs front end; all fixed by the published model)
# --------------------------------------------------------------------------------------------

SAMPLE_RATE_HZ = 16_000
FRAME_LENGTH_MS = 25
FRAME_SHIFT_MS = 10
FRAME_LENGTH_SAMPLES = _exact_div(SAMPLE_RATE_HZ * FRAME_LENGTH_MS, 1000)  # 400
FRAME_SHIFT_SAMPLES = _exact_div(SAMPLE_RATE_HZ * FRAME_SHIFT_MS, 1000)  # 160
FFT_SIZE = 1 << (FRAME_LENGTH_SAMPLES - 1).bit_length()  # 512: next power of two, zero padded
NUM_FFT_BINS = FFT_SIZE // 2 + 1  # 257 (rfft), the Nyquist bin gets no mel weight
NUM_MEL_BINS = 128
LOW_FREQ_HZ = 20.0
HIGH_FREQ_HZ = SAMPLE_RATE_HZ / 2  # Kaldi's high_freq=0 means Nyquist
PREEMPHASIS_COEFF = 0.97
POVEY_WINDOW_EXPONENT = 0.85  # Povey window = symmetric Hann ** 0.85
INT16_SCALE = 2**15  # BEATs scales [-1, 1] audio to the int16 range before the fbank
LOG_FLOOR = torch.finfo(torch.float32).eps  # Kaldi floors energies at float32 epsilon
FBANK_MEAN = 15.41663  # upstream BEATs normalisation constants
FBANK_STD = 6.55582


def num_fbank_frames(num_samples: int) -> int:
    """Frames `kaldi_fbank` yields for `num_samples` (snip_edges: only frames that fit)."""
    if num_samples < FRAME_LENGTH_SAMPLES:
        return 0
    return 1 + (num_samples - FRAME_LENGTH_SAMPLES) // FRAME_SHIFT_SAMPLES


def _mel(freq_hz: float) -> float:
    return 1127.0 * math.log(1.0 + freq_hz / 700.0)  # Kaldi's mel scale (natural log)


@functools.lru_cache(maxsize=1)
def _mel_filterbank() -> torch.Tensor:
    """Triangular mel filters, (NUM_MEL_BINS, NUM_FFT_BINS), as Kaldi/torchaudio build them.

    Built in float32 on purpose: torchaudio does, and the filter weights then match it to the bit
    whatever dtype the audio has. Mel bin 3 gets no FFT bin at these settings (its triangle falls
    between two 31.25 Hz grid points), so its row is all zeros and its log energy is log(eps).
    """
    mel_low = _mel(LOW_FREQ_HZ)
    mel_delta = (_mel(HIGH_FREQ_HZ) - mel_low) / (NUM_MEL_BINS + 1)
    bin_index = torch.arange(NUM_MEL_BINS, dtype=torch.float32).unsqueeze(1)  # (M, 1)
    left_mel = mel_low + bin_index * mel_delta
    center_mel = mel_low + (bin_index + 1.0) * mel_delta
    right_mel = mel_low + (bin_index + 2.0) * mel_delta
    fft_bin_hz = SAMPLE_RATE_HZ / FFT_SIZE
    fft_hz = fft_bin_hz * torch.arange(FFT_SIZE // 2, dtype=torch.float32)
    fft_mel = (1127.0 * (1.0 + fft_hz / 700.0).log()).unsqueeze(0)  # (1, FFT_SIZE/2)
    up_slope = (fft_mel - left_mel) / (center_mel - left_mel)  # (M, FFT_SIZE/2)
    down_slope = (right_mel - fft_mel) / (right_mel - center_mel)
    weights = torch.clamp_min(torch.minimum(up_slope, down_slope), 0.0)
    return F.pad(weights, (0, 1))  # (M, NUM_FFT_BINS): the Nyquist column stays zero


def _fbank_frames(waveform: torch.Tensor) -> torch.Tensor:
    """(B, S) samples at int16 scale -> (B, N, NUM_MEL_BINS) natural-log mel energies."""
    frames = waveform.unfold(-1, FRAME_LENGTH_SAMPLES, FRAME_SHIFT_SAMPLES)  # (B, N, 400)
    frames = frames - frames.mean(dim=-1, keepdim=True)  # remove DC per frame
    # Pre-emphasis uses the frame's own first sample as its predecessor (Kaldi's convention).
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)  # (B, N, 400)
    frames = frames - PREEMPHASIS_COEFF * previous
    window = torch.hann_window(
        FRAME_LENGTH_SAMPLES, periodic=False, dtype=frames.dtype, device=frames.device
    ).pow(POVEY_WINDOW_EXPONENT)
    frames = F.pad(frames * window, (0, FFT_SIZE - FRAME_LENGTH_SAMPLES))  # (B, N, 512)
    power = torch.fft.rfft(frames).abs().pow(2.0)  # (B, N, 257)
    filters = _mel_filterbank().to(dtype=frames.dtype, device=frames.device)
    mel_energies = power @ filters.T  # (B, N, 128)
    return torch.clamp_min(mel_energies, LOG_FLOOR).log()


def _check_waveform(waveform: torch.Tensor, ndim: int, name: str) -> None:
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(waveform).__name__}")
    if waveform.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {tuple(waveform.shape)}")
    if not waveform.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {waveform.dtype}")
    if waveform.shape[-1] < FRAME_LENGTH_SAMPLES:
        raise ValueError(
            f"{name}: {waveform.shape[-1]} samples is shorter than one fbank frame "
            f"({FRAME_LENGTH_SAMPLES} samples = {FRAME_LENGTH_MS} ms at {SAMPLE_RATE_HZ} Hz)"
        )


def kaldi_fbank(waveform: torch.Tensor) -> torch.Tensor:
    """Kaldi log-mel fbank of one waveform: (S,) in [-1, 1] at 16 kHz -> (N, 128), N = 1+(S-400)//160.

    Equals `torchaudio.compliance.kaldi.fbank(waveform * 2**15, num_mel_bins=128,
    sample_frequency=16000, frame_length=25, frame_shift=10)`: dither 0, Povey window,
    pre-emphasis 0.97, DC removal, 512-point power spectrum, 20 Hz to Nyquist, snip_edges, no
    energy term, natural log floored at float32 epsilon. Not normalised (see `fbank_batch`).
    """
    _check_waveform(waveform, 1, "kaldi_fbank waveform")
    return _fbank_frames((waveform * INT16_SCALE).unsqueeze(0))[0]


def fbank_batch(wave: torch.Tensor) -> torch.Tensor:
    """(B, S) waveforms in [-1, 1] -> (B, N, 128) fbank normalised as BEATs expects it.

    Rows are independent (each is what `kaldi_fbank` gives for it); the normalisation is
    (fbank - FBANK_MEAN) / (2 * FBANK_STD), the factor 2 being upstream BEATs' choice.
    """
    _check_waveform(wave, 2, "fbank_batch wave")
    return (_fbank_frames(wave * INT16_SCALE) - FBANK_MEAN) / (2 * FBANK_STD)


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BEATsConfig:
    """BEATs hyper-parameters; the defaults are the published NatureLM-audio `beats_cfg`.

    Fields marked "training only" are kept so the published dict round-trips; this inference
    implementation has no dropout, layer drop or gradient scaling, so they do not change outputs.
    """

    input_patch_size: int = 16  # square patch (frames x mel bins) of the patch-embedding conv
    embed_dim: int = 512  # channels of the patch embedding
    conv_bias: bool = False  # whether the patch-embedding conv has a bias
    encoder_layers: int = 12  # transformer layers
    encoder_embed_dim: int = 768  # transformer width D
    encoder_ffn_embed_dim: int = 3072  # hidden width of each layer's feed-forward block
    encoder_attention_heads: int = 12  # attention heads (head dim = D / heads)
    activation_fn: str = "gelu"  # feed-forward activation; only exact (erf) "gelu" is supported
    layer_wise_gradient_decay_ratio: float = 0.6  # training only: per-layer gradient scaling
    layer_norm_first: bool = False  # pre-LN layers; only False (post-LN, published) is supported
    deep_norm: bool = True  # scale residuals by (2 * encoder_layers) ** 0.25 (DeepNet)
    dropout: float = 0.0  # training only
    attention_dropout: float = 0.0  # training only
    activation_dropout: float = 0.0  # training only
    encoder_layerdrop: float = 0.05  # training only: probability of skipping a layer
    dropout_input: float = 0.0  # training only
    conv_pos: int = 128  # kernel size (tokens) of the convolutional positional embedding
    conv_pos_groups: int = 16  # groups of that convolution
    relative_position_embedding: bool = True  # add a learned relative-position attention bias
    num_buckets: int = 320  # relative-position buckets (half per direction)
    max_distance: int = 800  # distance (tokens) at which the log-spaced buckets saturate
    gru_rel_pos: bool = True  # gate the relative bias per head and query (grep_linear, grep_a)
    finetuned_model: bool = True  # build the (unused) AudioSet `predictor` head, as published
    predictor_dropout: float = 0.0  # training only
    predictor_class: int = 527  # output classes of the predictor head (AudioSet)

    def __post_init__(self) -> None:
        dim, heads = self.encoder_embed_dim, self.encoder_attention_heads
        problems = []
        if dim % heads:
            problems.append(f"encoder_embed_dim {dim} is not divisible by encoder_attention_heads {heads}")
        if dim % self.conv_pos_groups:
            problems.append(f"encoder_embed_dim {dim} is not divisible by conv_pos_groups {self.conv_pos_groups}")
        if self.input_patch_size < 1 or NUM_MEL_BINS % self.input_patch_size:
            problems.append(f"input_patch_size {self.input_patch_size} does not divide {NUM_MEL_BINS} mel bins")
        if self.activation_fn != "gelu":
            problems.append(f"activation_fn {self.activation_fn!r} is not supported (only 'gelu')")
        if self.layer_norm_first:
            problems.append("layer_norm_first=True (pre-LN) is not supported; the published model is post-LN")
        if self.relative_position_embedding and self.num_buckets < 4:
            problems.append(f"num_buckets {self.num_buckets} is too small (need >= 4)")
        if problems:
            raise ValueError("invalid BEATsConfig: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BEATsConfig":
        """Build from a `beats_cfg` dict (e.g. from config.json); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"BEATsConfig.from_dict: unknown key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**dict(values))

    @property
    def head_dim(self) -> int:
        return self.encoder_embed_dim // self.encoder_attention_heads

    @property
    def deep_norm_alpha(self) -> float:
        return (2 * self.encoder_layers) ** 0.25 if self.deep_norm else 1.0

    def num_tokens(self, num_frames: int) -> int:
        """Tokens BEATs yields for `num_frames` fbank frames (trailing partial patch dropped)."""
        return (num_frames // self.input_patch_size) * (NUM_MEL_BINS // self.input_patch_size)


# --------------------------------------------------------------------------------------------
# Leaf modules
# --------------------------------------------------------------------------------------------


def _gelu_fp32(x: torch.Tensor) -> torch.Tensor:
    # The reference runs the feed-forward GELU in float32 even under bf16 autocast.
    return F.gelu(x.float()).type_as(x)


class WeightNormConv1d(nn.Module):
    """Conv1d under old-style weight norm, stored as `weight_g` / `weight_v` like the checkpoint.

    weight = weight_g * weight_v / ||weight_v||, the norm taken over dims (0, 1) separately for
    each kernel position (torch's `weight_norm(..., dim=2)`); weight_g has shape (1, 1, K).
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.groups = groups
        weight_v = torch.randn(channels, channels // groups, kernel_size)
        weight_v *= math.sqrt(4.0 / (kernel_size * channels))  # the reference's init scale
        self.weight_v = nn.Parameter(weight_v)
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(weight_v, dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def effective_weight(self) -> torch.Tensor:
        norm = torch.linalg.vector_norm(self.weight_v, dim=(0, 1), keepdim=True)  # (1, 1, K)
        return self.weight_v * (self.weight_g / norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.effective_weight(), self.bias, padding=self.kernel_size // 2, groups=self.groups)


class _DropLastStep(nn.Module):
    """With an even kernel and padding K//2 the conv yields one extra step; drop it (SamePad)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : x.shape[-1] - self.remove]


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5-style bidirectional buckets for (key index - query index) distances.

    Half the buckets per direction (positive distances take the upper half); within a half,
    distances below a quarter of `num_buckets` get their own bucket, larger ones share
    log-spaced buckets up to `max_distance`, beyond which they all land in the half's last one.
    """
    half = num_buckets // 2
    buckets = (relative_position > 0).to(torch.long) * half
    distance = relative_position.abs()
    max_exact = half // 2
    # Clamp so distance 0 gives no log(0); those entries take the exact branch of the where below.
    log_ratio = torch.log(distance.clamp_min(1).float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (half - max_exact)).to(torch.long)
    large = torch.clamp_max(large, half - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class MultiheadAttention(nn.Module):
    """BEATs self-attention with the gated relative-position bias.

    Scores follow the reference's stabilised form: q is scaled by head_dim**-0.5 / 32, the row
    maximum is subtracted and the result multiplied back by 32. The relative bias is owned by
    layer 0 only (`relative_attention_bias`) and passed in by the encoder to every layer.
    """

    _SCORE_ALPHA = 32.0

    def __init__(self, config: BEATsConfig, owns_relative_bias: bool) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.num_heads = config.encoder_attention_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gru_rel_pos = config.gru_rel_pos
        if config.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)  # 8 = 2 gates x 4 summed terms
            self.grep_a = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))
        if owns_relative_bias:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, self.num_heads)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D), position_bias (H, T, T) or None -> (B, T, D)."""
        batch, length, dim = x.shape
        alpha = self._SCORE_ALPHA
        q = self.q_proj(x) * self.scaling
        q = q * (1.0 / alpha)
        q = q.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)
        k = self.k_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)
        v = self.v_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)

        scores = q @ k.transpose(-1, -2)  # (B, H, T, T)
        scores = (scores - scores.amax(dim=-1, keepdim=True)) * alpha
        if position_bias is not None:
            if self.gru_rel_pos:
                query_unscaled = q * alpha / self.scaling  # (B, H, T, d)
                gate_logits = self.grep_linear(query_unscaled).view(batch, self.num_heads, length, 2, 4)
                gate_a, gate_b = torch.sigmoid(gate_logits.sum(-1)).chunk(2, dim=-1)  # (B, H, T, 1) each
                gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0  # (B, H, T, 1)
                scores = scores + gate * position_bias
            else:
                scores = scores + position_bias
        probs = F.softmax(scores, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(batch, length, dim)  # (B, T, D)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    """Post-LN transformer layer with DeepNet residual scaling: x = LN(alpha * x + f(x))."""

    def __init__(self, config: BEATsConfig, owns_relative_bias: bool) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.deep_norm_alpha = config.deep_norm_alpha
        self.self_attn = MultiheadAttention(config, owns_relative_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.deep_norm_alpha + self.self_attn(x, position_bias))
        feed_forward = self.fc2(_gelu_fp32(self.fc1(x)))
        return self.final_layer_norm(x * self.deep_norm_alpha + feed_forward)


class TransformerEncoder(nn.Module):
    """Convolutional positional embedding, LayerNorm, then the post-LN layers (no final LN)."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.num_buckets = config.num_buckets
        self.max_distance = config.max_distance
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(dim, config.conv_pos, config.conv_pos_groups),
            _DropLastStep(config.conv_pos),
            nn.GELU(),
        )
        self.layer_norm = nn.LayerNorm(dim)
        owns_bias = [config.relative_position_embedding and i == 0 for i in range(config.encoder_layers)]
        self.layers = nn.ModuleList(EncoderLayer(config, owns) for owns in owns_bias)
        self.relative_position_embedding = config.relative_position_embedding

    def position_bias(self, length: int) -> torch.Tensor:
        """(H, T, T) bias from layer 0's table over the flattened 1-D token index."""
        table = self.layers[0].self_attn.relative_attention_bias
        positions = torch.arange(length, device=table.weight.device)
        relative = positions[None, :] - positions[:, None]  # (T, T): key index - query index
        buckets = relative_position_bucket(relative, self.num_buckets, self.max_distance)
        return table(buckets).permute(2, 0, 1)  # (T, T, H) -> (H, T, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)  # conv over time: (B, D, T)
        x = self.layer_norm(x)
        bias = self.position_bias(x.shape[1]) if self.relative_position_embedding else None
        for layer in self.layers:
            x = layer(x, bias)
        return x


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class BEATs(nn.Module):
    """BEATs encoder: waveform -> fbank -> 16x16 patches -> transformer tokens.

    `forward(wave (B, S)) -> (B, T, D)` with T = (N // p) * (128 // p) for N fbank frames and
    patch size p (496 tokens per 10 s for the published config). Tokens are time-major: index
    t * (128 // p) + f, f = 0 the lowest mel band. Rows of a batch never interact.
    """

    def __init__(self, config: BEATsConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BEATsConfig()
        patch = config.input_patch_size
        self.patch_embedding = nn.Conv2d(1, config.embed_dim, kernel_size=patch, stride=patch, bias=config.conv_bias)
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.post_extract_proj = (
            nn.Linear(config.embed_dim, config.encoder_embed_dim)
            if config.embed_dim != config.encoder_embed_dim
            else None
        )
        self.encoder = TransformerEncoder(config)
        if config.finetuned_model:
            # Unused at inference, but part of the published checkpoint.
            self.predictor = nn.Linear(config.encoder_embed_dim, config.predictor_class)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) in [-1, 1] at 16 kHz -> tokens (B, T, D).

        The fbank runs in the wave's dtype (float64 matches the reference best) and is then cast
        to the parameters' dtype.
        """
        features = fbank_batch(wave)  # (B, N, 128)
        if features.shape[1] < self.config.input_patch_size:
            raise ValueError(
                f"BEATs: {wave.shape[-1]} samples give {features.shape[1]} fbank frames, fewer than "
                f"one {self.config.input_patch_size}-frame patch"
            )
        features = features.to(self.patch_embedding.weight.dtype).unsqueeze(1)  # (B, 1, N, 128)
        patches = self.patch_embedding(features)  # (B, C, N // p, 128 // p)
        tokens = patches.flatten(2).transpose(1, 2)  # (B, T, C), time-major
        tokens = self.layer_norm(tokens)
        if self.post_extract_proj is not None:
            tokens = self.post_extract_proj(tokens)  # (B, T, D)
        return self.encoder(tokens)
