"""The window-level Q-Former of the audio-LLM family, in plain torch, plus its windowing arithmetic.

NatureLM-audio cuts the BEATs token sequence (SALMONN the 1500 fused Whisper+BEATs rows) into non-overlapping windows of 17 tokens and lets
one learned query cross-attend to each window through a 2-layer BERT-style Q-Former (the
LAVIS/BLIP-2 fork). Only the parts that run on queries exist here: the embeddings LayerNorm and,
per layer, self-attention, cross-attention and the query feed-forward block. Module names equal
the published checkpoint keys after its `audio_Qformer.` prefix, so loading is a strict copy.

Facts followed: `reference/naturelm-audio.md` §1.3, §1.4 and §4.2; `reference/salmonn.md` §1.5
(the same module with a cross-attention width of 2048).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from naturelm_core.audio_llm.beats import BEATsConfig, SAMPLE_RATE_HZ, num_fbank_frames

# The reference turns seconds into tokens at 1500 tokens per 30 s, a constant inherited from
# SALMONN/Whisper (BEATs really yields 49.6 tokens/s); kept because the model was trained so.
_WINDOW_TOKENS_PER_30_S = 1500
DEFAULT_SECOND_PER_WINDOW = 0.333333


@dataclass(frozen=True)
class QFormerConfig:
    """Q-Former hyper-parameters; the defaults are the published ones (bert-base, 2 layers)."""

    hidden_size: int = 768  # width H of the queries and every layer
    num_hidden_layers: int = 2  # BERT layers
    num_attention_heads: int = 12  # heads of self- and cross-attention (head dim = H / heads)
    intermediate_size: int = 3072  # hidden width of the query feed-forward block
    encoder_width: int = 768  # width E of the tokens cross-attended to (BEATs' output)
    layer_norm_eps: float = 1e-12  # epsilon of every LayerNorm (BERT's value)
    max_position_embeddings: int = 512  # length of the unused `position_ids` buffer
    cross_attention_freq: int = 1  # layer i has cross-attention when i % freq == 0 (1: all)

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"invalid QFormerConfig: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.cross_attention_freq < 1:
            raise ValueError(f"invalid QFormerConfig: cross_attention_freq {self.cross_attention_freq} < 1")


class BertSelfAttention(nn.Module):
    """Multi-head attention; keys/values come from `encoder_hidden_states` when given (cross)."""

    def __init__(self, config: QFormerConfig, is_cross_attention: bool) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        kv_width = config.encoder_width if is_cross_attention else config.hidden_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(kv_width, config.hidden_size)
        self.value = nn.Linear(kv_width, config.hidden_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, d)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None) -> torch.Tensor:
        source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = self._heads(self.query(hidden_states))  # (B, H, Q, d)
        k = self._heads(self.key(source))  # (B, H, K, d)
        v = self._heads(self.value(source))  # (B, H, K, d)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # (B, H, Q, K)
        context = F.softmax(scores, dim=-1) @ v  # (B, H, Q, d)
        batch, _, length, _ = context.shape
        return context.transpose(1, 2).reshape(batch, length, -1)  # (B, Q, H*d)


class BertSelfOutput(nn.Module):
    """Projection and post-LN residual after an attention block."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden_states) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: QFormerConfig, is_cross_attention: bool = False) -> None:
        super().__init__()
        self.self = BertSelfAttention(config, is_cross_attention)
        self.output = BertSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.self(hidden_states, encoder_hidden_states), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden_states))  # exact (erf) GELU, BERT's "gelu"


class BertOutput(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden_states) + residual)


class BertLayer(nn.Module):
    """Self-attention over the queries, cross-attention to the window, query feed-forward.

    The text feed-forward (`intermediate`, `output`) of the BLIP-2 layer is absent: NatureLM
    deletes it, and queries never use it.
    """

    def __init__(self, config: QFormerConfig, layer_index: int) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.has_cross_attention = layer_index % config.cross_attention_freq == 0
        if self.has_cross_attention:
            self.crossattention = BertAttention(config, is_cross_attention=True)
        self.intermediate_query = BertIntermediate(config)
        self.output_query = BertOutput(config)

    def forward(self, queries: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.attention(queries)
        if self.has_cross_attention:
            x = self.crossattention(x, encoder_hidden_states)
        return self.output_query(self.intermediate_query(x), x)


class BertEncoder(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config, i) for i in range(config.num_hidden_layers))

    def forward(self, queries: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            queries = layer(queries, encoder_hidden_states)
        return queries


class BertEmbeddings(nn.Module):
    """Only the LayerNorm applied to the query embeddings remains (no word/position tables)."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # Unused; kept non-persistent so the checkpoint's copy is optional for the loader.
        position_ids = torch.arange(config.max_position_embeddings).unsqueeze(0)  # (1, P)
        self.register_buffer("position_ids", position_ids, persistent=False)

    def forward(self, query_embeds: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(query_embeds)


class BertModel(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)


class QFormer(nn.Module):
    """`forward(query_embeds (N, Q, H), encoder_hidden_states (N, K, E)) -> (N, Q, H)`.

    N is the number of windows (batch x windows per clip), Q the queries per window (1 for the
    published model), K the tokens per window (17).
    """

    def __init__(self, config: QFormerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or QFormerConfig()
        self.bert = BertModel(config)

    def forward(self, query_embeds: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        config = self.config
        if query_embeds.dim() != 3 or query_embeds.shape[-1] != config.hidden_size:
            raise ValueError(
                f"QFormer: query_embeds must be (N, Q, {config.hidden_size}), got {tuple(query_embeds.shape)}"
            )
        if (
            encoder_hidden_states.dim() != 3
            or encoder_hidden_states.shape[-1] != config.encoder_width
            or encoder_hidden_states.shape[0] != query_embeds.shape[0]
        ):
            raise ValueError(
                f"QFormer: encoder_hidden_states must be ({query_embeds.shape[0]}, K, {config.encoder_width}), "
                f"got {tuple(encoder_hidden_states.shape)}"
            )
        queries = self.bert.embeddings(query_embeds)
        return self.bert.encoder(queries, encoder_hidden_states)


# --------------------------------------------------------------------------------------------
# Windowing arithmetic
# --------------------------------------------------------------------------------------------


def window_size_tokens(second_per_window: float = DEFAULT_SECOND_PER_WINDOW) -> int:
    """Tokens per Q-Former window: round(1500 * seconds / 30) (17 for the published 0.333333 s)."""
    size = round(_WINDOW_TOKENS_PER_30_S * second_per_window / 30.0)
    if size < 1:
        raise ValueError(f"second_per_window {second_per_window} gives a window of {size} tokens")
    return size


def split_windows(tokens: torch.Tensor, size: int) -> torch.Tensor:
    """(B, T, D) -> (B, L, size, D): non-overlapping windows of consecutive tokens.

    Stride equals `size`; trailing tokens that do not fill a window are dropped, so
    L = (T - size) // size + 1, as the reference's F.unfold gives.
    """
    if tokens.dim() != 3:
        raise ValueError(f"split_windows: tokens must be (B, T, D), got shape {tuple(tokens.shape)}")
    if size < 1 or tokens.shape[1] < size:
        raise ValueError(f"split_windows: {tokens.shape[1]} tokens cannot hold one window of {size}")
    return tokens.unfold(1, size, size).transpose(-1, -2)  # (B, L, D, size) -> (B, L, size, D)


def audio_token_count(num_samples: int, second_per_window: float = DEFAULT_SECOND_PER_WINDOW) -> int:
    """Audio embeddings NatureLM-audio gives for `num_samples` at 16 kHz (published config).

    Frames N = 1 + (S - 400) // 160, BEATs tokens = 8 * (N // 16), windows = (tokens - w) // w + 1
    for window size w: 29 for 10 s, 14 for 5 s, 8 for 3 s.
    """
    tokens = BEATsConfig().num_tokens(num_fbank_frames(num_samples))
    size = window_size_tokens(second_per_window)
    if tokens < size:
        seconds = num_samples / SAMPLE_RATE_HZ
        raise ValueError(
            f"audio_token_count: {num_samples} samples ({seconds:.3f} s) give {tokens} BEATs tokens, "
            f"fewer than one {size}-token window"
        )
    return (tokens - size) // size + 1
