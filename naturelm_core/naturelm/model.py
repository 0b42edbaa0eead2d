"""NatureLM-audio: BEATs -> window-level Q-Former -> projection -> Llama 3.1 + LoRA.

Attribute names equal the published checkpoint's top-level names (`beats`, `ln_audio`,
`audio_Qformer`, `audio_query_tokens`, `audio_llama_proj`, `llama_model`), so that
`naturelm_core.naturelm.checkpoint` copies release tensors in one-to-one. Building and loading live
there; this file holds the config and composes the shared modules of `naturelm_core.audio_llm`
(facts: `reference/naturelm-audio.md` §1, §3.3, §3.4). Prompt assembly, generation and the scores
are the family's (`audio_llm.model.AudioLLM`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from naturelm_core.audio_llm.beats import BEATs, BEATsConfig, FFT_SIZE, num_fbank_frames
from naturelm_core.audio_llm.model import AUDIO_CHUNK_WINDOWS, Answer, AudioLLM, GenerationOptions
from naturelm_core.audio_llm.qformer import QFormer, QFormerConfig, split_windows, window_size_tokens
from naturelm_core.naturelm import prompts as P

logger = logging.getLogger(__name__)

#: Attention projections carrying LoRA in the published model.
LORA_TARGET_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

# Published config.json keys that must hold these values: the other branches of the reference
# model are dead code or were never released.
_REQUIRED_FLAGS: dict[str, Any] = {
    "use_audio_Qformer": True,
    "window_level_Qformer": True,
    "max_pooling": False,
    "lora": True,
}
# Published keys that do not change inference here (training switches, hub names, devices).
_IGNORED_KEYS = frozenset(
    {
        "llama_path", "beats_path", "freeze_beats", "freeze_audio_QFormer", "downsample_factor",
        "audio_llama_proj_model", "freeze_audio_llama_proj", "flash_attn", "max_txt_len",
        "end_sym", "device", "audio_encoding_cache_size",
    }
)  # fmt: skip


@dataclass(frozen=True)
class NatureLMConfig:
    """The release's config.json, as far as it changes the model. Defaults = the published model.

    The published file has no Q-Former block (the reference takes bert-base's config from the
    hub); `qformer_cfg` is our extension so that tiny checkpoints can shrink it too.
    """

    beats_cfg: BEATsConfig = field(default_factory=BEATsConfig)  # the audio encoder
    qformer_cfg: QFormerConfig = field(default_factory=QFormerConfig)  # window-level Q-Former
    num_audio_query_token: int = 1  # learned queries per window (audio embeddings per window)
    second_per_window: float = 0.333333  # window length, converted at 50 tokens/s (-> 17 tokens)
    second_stride: float = 0.333333  # window hop, same conversion; must equal the length
    lora_rank: int = 32  # LoRA r on q/k/v/o
    lora_alpha: int = 32  # LoRA alpha; the delta is scaled by alpha / r (1.0 as published)
    lora_dropout: float = 0.1  # inactive at inference; kept to build the same peft config
    prompt_template: str = P.PROMPT_TEMPLATE  # user turn around the query, `{}` = the query

    def __post_init__(self) -> None:
        problems = []
        if self.num_audio_query_token < 1:
            problems.append(f"num_audio_query_token {self.num_audio_query_token} < 1")
        if window_size_tokens(self.second_per_window) != window_size_tokens(self.second_stride):
            problems.append(
                f"second_stride {self.second_stride} differs from second_per_window "
                f"{self.second_per_window}; only non-overlapping windows are supported"
            )
        if self.qformer_cfg.encoder_width != self.beats_cfg.encoder_embed_dim:
            problems.append(
                f"qformer_cfg.encoder_width {self.qformer_cfg.encoder_width} != "
                f"beats_cfg.encoder_embed_dim {self.beats_cfg.encoder_embed_dim}"
            )
        if self.lora_rank < 1:
            problems.append(f"lora_rank {self.lora_rank} < 1")
        if "{}" not in self.prompt_template:
            problems.append("prompt_template has no {} for the query")
        if problems:
            raise ValueError("invalid NatureLMConfig: " + "; ".join(problems))

    @property
    def lora_scaling(self) -> float:
        return self.lora_alpha / self.lora_rank

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config.json") -> "NatureLMConfig":
        """Read the release's config.json dict (published key names); ValueError naming `source`."""
        values = dict(values)
        for key, expected in _REQUIRED_FLAGS.items():
            if key in values and values.pop(key) != expected:
                raise ValueError(f"{source}: {key} must be {expected} (the released model)")
        if "beats_cfg" not in values:
            raise ValueError(f"{source}: required key 'beats_cfg' is missing")
        try:
            beats = BEATsConfig.from_dict(values.pop("beats_cfg"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: bad beats_cfg: {exc}") from None
        qformer_values = values.pop("qformer_cfg", None)
        try:
            if qformer_values is None:
                # bert-base, with NatureLM's overrides: 2 layers, cross-attending BEATs' width.
                qformer = QFormerConfig(encoder_width=beats.encoder_embed_dim)
            else:
                qformer = QFormerConfig(**qformer_values)
        except TypeError as exc:
            raise ValueError(f"{source}: bad qformer_cfg: {exc}") from None
        simple = {f.name for f in dataclasses.fields(cls)} - {"beats_cfg", "qformer_cfg"}
        kwargs = {k: values.pop(k) for k in list(values) if k in simple}
        if kwargs.get("prompt_template") == "":  # the reference's class default: use the published one
            kwargs.pop("prompt_template")
        unknown = sorted(set(values) - _IGNORED_KEYS)
        if unknown:
            logger.warning("%s: ignoring unknown key(s) %s", source, unknown)
        try:
            return cls(beats_cfg=beats, qformer_cfg=qformer, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the published key names (plus `qformer_cfg`)."""
        out = dataclasses.asdict(self)
        out.update(_REQUIRED_FLAGS)
        return out


class NatureLM(AudioLLM):
    """The full model. Build it with `checkpoint.build_model` / `checkpoint.load_naturelm`.

    `llama` must already have its vocabulary resized to `len(tokenizer)` (Llama + [PAD]).
    """

    DEFAULT_PROMPTS = P.DEFAULT_PROMPTS  # what the engine asks when given no prompts

    def __init__(self, config: NatureLMConfig, llama: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.config = config
        qcfg = config.qformer_cfg
        self.beats = BEATs(config.beats_cfg)
        self.ln_audio = nn.LayerNorm(config.beats_cfg.encoder_embed_dim)
        self.audio_Qformer = QFormer(qcfg)
        self.audio_query_tokens = nn.Parameter(torch.zeros(1, config.num_audio_query_token, qcfg.hidden_size))
        self.audio_llama_proj = nn.Linear(qcfg.hidden_size, llama.config.hidden_size)
        # LoRA in the Llama's own dtype (bf16 on GPU), as the reference's peft 0.11 kept it and the
        # release stores it; newer peft would upcast it to float32 and cast every input to match.
        self._wrap_llm(
            llama, tokenizer, config.lora_rank, config.lora_alpha, config.lora_dropout, LORA_TARGET_MODULES,
            pad_id=P.special_token_id(tokenizer, P.PAD_TOKEN), stop_ids=P.stop_token_ids(tokenizer),
            bos_id=P.special_token_id(tokenizer, P.BOS_TOKEN), autocast_adapter_dtype=False,
        )
        self.window_tokens = window_size_tokens(config.second_per_window)
        # The fbank runs in float64 like the reference's (its processor hands over float64 audio):
        # the front end is then bit-identical to it; float32 moves features by up to ~6e-3.
        self.fbank_dtype = torch.float64

    def _encode_chunk(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave.to(self.fbank_dtype)
        with self._audio_autocast():
            tokens = self.ln_audio(self.beats(wave))  # (B, T, E)
            windows = split_windows(tokens, self.window_tokens)  # (B, L, K, E)
            batch, n_windows, k, width = windows.shape
            windows = windows.reshape(batch * n_windows, k, width)  # (B·L, K, E)
            queries = self.audio_query_tokens.expand(batch * n_windows, -1, -1)  # (B·L, Q, H)
            pooled = self.audio_Qformer(queries, windows)  # (B·L, Q, H)
            embeds = self.audio_llama_proj(pooled)  # (B·L, Q, D)
        return embeds.reshape(batch, -1, embeds.shape[-1]).to(self.llm_dtype)  # (B, L·Q, D)

    def _tokenize_prompt(self, query: str) -> P.PromptTokens:
        return P.tokenize_prompt(self.tokenizer, query, self.config.prompt_template)

    def embeds_per_clip(self, samples: int) -> int:
        """LLM rows of one clip's audio (29 for a 10-s window of the published model)."""
        tokens = self.config.beats_cfg.num_tokens(num_fbank_frames(samples))
        return (tokens // self.window_tokens) * self.config.num_audio_query_token

    def audio_reserve_bytes(self, samples: int) -> int:
        """GPU bytes of one audio pass of AUDIO_CHUNK_WINDOWS clips of `samples` samples.

        Per clip: the float64 fbank's frames and complex128 spectrum, and BEATs' float32 attention
        scores and feed-forward activations (a few copies of each alive at once).
        """
        beats = self.config.beats_cfg
        frames = num_fbank_frames(samples)
        tokens = beats.num_tokens(frames)
        fbank = 4 * frames * FFT_SIZE * 16
        attention = 4 * beats.encoder_attention_heads * tokens * tokens * 4
        feed_forward = 4 * tokens * beats.encoder_ffn_embed_dim * 4
        return AUDIO_CHUNK_WINDOWS * (fbank + attention + feed_forward)


__all__ = ["AUDIO_CHUNK_WINDOWS", "Answer", "GenerationOptions", "LORA_TARGET_MODULES", "NatureLM", "NatureLMConfig"]
