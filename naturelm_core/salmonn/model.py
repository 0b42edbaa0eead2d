"""SALMONN: Whisper encoder + BEATs, fused -> window-level Q-Former -> projection -> Vicuna + LoRA.

Composes the family's shared modules (`naturelm_core.audio_llm`: BEATs, the Q-Former, the
LoRA-wrapped Llama and everything after the audio) with SALMONN's Whisper branch and fusion.
Attribute names equal the reference's (`speech_encoder`, `ln_speech`, `beats`, `ln_audio`,
`speech_Qformer`, `speech_query_tokens`, `speech_llama_proj`, `llama_model`), so the release's
keys are our state-dict keys (facts: `reference/salmonn.md` §1, §2, §10).

Per clip (16 kHz, 1 to 30 s):
1. Whisper: log-mel of the clip zero-padded to 30 s -> encoder -> 1500 rows x 1280, `ln_speech`.
2. BEATs on the unpadded clip (float64 fbank) -> 8 * (frames // 16) tokens x 768, `ln_audio`,
   then zero rows appended up to 1500 (after the LayerNorm).
3. Concatenate along features, Whisper first: 1500 x 2048.
4. 88 windows of 17 consecutive rows (stride 17, the last 4 rows dropped); one query per window
   through the 2-layer Q-Former (cross-attention width 2048); `speech_llama_proj` -> 88 x LLM width.
Every clip gives 88 speech embeddings, whatever its length.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from naturelm_core.audio_llm.beats import FFT_SIZE, SAMPLE_RATE_HZ, BEATs, BEATsConfig, num_fbank_frames
from naturelm_core.audio_llm.model import Answer, AudioLLM, GenerationOptions
from naturelm_core.audio_llm.qformer import QFormer, QFormerConfig, split_windows, window_size_tokens
from naturelm_core.salmonn import prompts as P
from naturelm_core.salmonn.whisper import N_FRAMES, log_mel

logger = logging.getLogger(__name__)

#: peft's per-architecture default for "llama" (the reference passes no target_modules).
LORA_TARGET_MODULES: tuple[str, ...] = ("q_proj", "v_proj")
#: Rows of the fused sequence: Whisper's encoder output for 30 s (3000 mel frames, stride 2).
FUSED_ROWS = N_FRAMES // 2
MIN_SAMPLES = SAMPLE_RATE_HZ  # shorter clips are zero-padded to 1 s (the 2024 code)
MAX_SAMPLES = 30 * SAMPLE_RATE_HZ  # Whisper's 30 s
#: The reference's decoding (`configs/decode_config.yaml`): 4 beams, 200 new tokens, and with
#: transformers 4.28's hidden BOS `min_length=1` is met before the first new token, so `</s>` may
#: come first (min_new_tokens 0).
SALMONN_GENERATION = GenerationOptions(max_new_tokens=200, num_beams=4, min_new_tokens=0)


@dataclass(frozen=True)
class SALMONNConfig:
    """The reference's constructor arguments that change inference; defaults = the release.

    `beats_cfg` comes from the BEATs file, `whisper_width` from the Whisper folder; the release
    checkpoint holds neither. `lora_alpha` is a load-time choice (32 as trained, 24 in the 7B demo).
    """

    beats_cfg: BEATsConfig = field(default_factory=BEATsConfig)
    whisper_width: int = 1280  # Whisper-large-v2 d_model
    qformer_cfg: QFormerConfig = field(default_factory=lambda: QFormerConfig(encoder_width=1280 + 768))
    num_speech_query_token: int = 1
    second_per_window: float = 0.333333  # -> 17 rows
    second_stride: float = 0.333333  # must equal the window
    lora_rank: int = 8
    lora_alpha: float = 32.0
    lora_dropout: float = 0.1
    prompt_template: str = P.PROMPT_TEMPLATE

    def __post_init__(self) -> None:
        problems = []
        if self.qformer_cfg.encoder_width != self.whisper_width + self.beats_cfg.encoder_embed_dim:
            problems.append(f"qformer_cfg.encoder_width {self.qformer_cfg.encoder_width} != whisper_width "
                            f"{self.whisper_width} + BEATs width {self.beats_cfg.encoder_embed_dim}")
        if window_size_tokens(self.second_per_window) != window_size_tokens(self.second_stride):
            problems.append("second_stride differs from second_per_window; only non-overlapping windows exist")
        if self.num_speech_query_token < 1 or self.lora_rank < 1 or not self.lora_alpha > 0:
            problems.append("num_speech_query_token, lora_rank and lora_alpha must be positive")
        if "{}" not in self.prompt_template:
            problems.append("prompt_template has no {} for the query")
        if problems:
            raise ValueError("invalid SALMONNConfig: " + "; ".join(problems))

    @property
    def window_rows(self) -> int:
        return window_size_tokens(self.second_per_window)

    @property
    def n_windows(self) -> int:
        return (FUSED_ROWS - self.window_rows) // self.window_rows + 1  # 88


def prepare_clip(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The reference's `prepare_one_sample` for one decoded file: first channel (not the mean),
    16 kHz only, zero-padded to 1 s, first 30 s kept; float64 as soundfile returns it."""
    if sample_rate != SAMPLE_RATE_HZ:
        raise ValueError(f"SALMONN takes {SAMPLE_RATE_HZ} Hz audio, got {sample_rate} Hz (resample first)")
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2:
        audio = audio[:, 0]
    if audio.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (samples, channels), got shape {audio.shape}")
    if audio.shape[0] < MIN_SAMPLES:
        audio = np.pad(audio, (0, MIN_SAMPLES - audio.shape[0]))
    return audio[:MAX_SAMPLES]


class SALMONN(AudioLLM):
    """The full model; build it with `checkpoint.load_salmonn`.

    `whisper_encoder` is transformers' WhisperEncoder, `mel_filters` its extractor's (201, 80)
    filters; `llama` a LlamaForCausalLM whose vocabulary holds [PAD] (`checkpoint.add_pad_token`).
    """

    DEFAULT_PROMPTS = P.DEFAULT_PROMPTS
    cuda_autocast_dtype = torch.float16  # the reference's autocast on GPU
    audio_chunk = 16  # clips per audio pass: Whisper attends 1500 rows for every clip
    hidden_bos = True  # beam lengths as transformers 4.28 counts them (trap 9)

    def __init__(self, config: SALMONNConfig, whisper_encoder: nn.Module, mel_filters: np.ndarray | torch.Tensor,
                 llama: nn.Module, tokenizer: Any, stop_ids: tuple[int, ...]) -> None:
        super().__init__()
        self.config = config
        qcfg = config.qformer_cfg
        width = getattr(whisper_encoder.config, "d_model", config.whisper_width)
        if width != config.whisper_width:
            raise ValueError(f"Whisper encoder width {width} != config whisper_width {config.whisper_width}")
        self.speech_encoder = whisper_encoder
        self.ln_speech = nn.LayerNorm(config.whisper_width)
        self.beats = BEATs(config.beats_cfg)
        self.ln_audio = nn.LayerNorm(config.beats_cfg.encoder_embed_dim)
        self.speech_Qformer = QFormer(qcfg)
        self.speech_query_tokens = nn.Parameter(torch.zeros(1, config.num_speech_query_token, qcfg.hidden_size))
        self.speech_llama_proj = nn.Linear(qcfg.hidden_size, llama.config.hidden_size)
        self.register_buffer("mel_filters", torch.as_tensor(np.asarray(mel_filters), dtype=torch.float32),
                             persistent=False)
        # peft 0.3 kept LoRA in float32 and cast the input to it (the sum back to the input dtype):
        # newer peft does the same with autocast_adapter_dtype=True.
        self._wrap_llm(
            llama, tokenizer, config.lora_rank, config.lora_alpha, config.lora_dropout, LORA_TARGET_MODULES,
            pad_id=tokenizer.convert_tokens_to_ids(P.PAD_TOKEN), stop_ids=stop_ids,
            bos_id=tokenizer.convert_tokens_to_ids(P.BOS_TOKEN), autocast_adapter_dtype=True,
        )
        # BEATs' fbank runs in float64, as the reference's soundfile audio is float64.
        self.fbank_dtype = torch.float64

    # ---------------------------------------------------------------- audio side

    def fuse(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) on the device -> fused rows (B, 1500, whisper + BEATs width)."""
        if wave.shape[1] > MAX_SAMPLES:
            raise ValueError(f"SALMONN takes clips of at most 30 s ({MAX_SAMPLES} samples), got {wave.shape[1]}")
        if wave.shape[1] < MIN_SAMPLES:
            wave = F.pad(wave, (0, MIN_SAMPLES - wave.shape[1]))
        mel = log_mel(wave, self.mel_filters)  # (B, 80, 3000) float32, 30 s padded
        with self._audio_autocast():
            speech = self.ln_speech(self.speech_encoder(mel).last_hidden_state)  # (B, 1500, 1280)
            audio = self.ln_audio(self.beats(wave.to(self.fbank_dtype)))  # (B, T, 768), unpadded clip
            if audio.shape[1] < speech.shape[1]:  # zero rows after the LayerNorm
                audio = F.pad(audio, (0, 0, 0, speech.shape[1] - audio.shape[1]))
            elif audio.shape[1] > speech.shape[1]:  # the reference pads Whisper instead (cannot happen <= 30 s)
                speech = F.pad(speech, (0, 0, 0, audio.shape[1] - speech.shape[1]))
            return torch.cat([speech, audio.to(speech.dtype)], dim=-1)  # Whisper first

    def _encode_chunk(self, wave: torch.Tensor) -> torch.Tensor:
        return self.speech_embeds(self.fuse(wave))

    def speech_embeds(self, fused: torch.Tensor) -> torch.Tensor:
        """Fused rows (B, 1500, W) -> speech embeddings (B, 88 * Q, D) in the LLM dtype."""
        with self._audio_autocast():
            windows = split_windows(fused, self.config.window_rows)  # (B, 88, 17, 2048)
            batch, n_windows, rows, width = windows.shape
            windows = windows.reshape(batch * n_windows, rows, width)
            queries = self.speech_query_tokens.expand(batch * n_windows, -1, -1)  # (B·88, Q, 768)
            pooled = self.speech_Qformer(queries, windows)  # (B·88, Q, 768)
            embeds = self.speech_llama_proj(pooled)  # (B·88, Q, D)
        return embeds.reshape(batch, -1, embeds.shape[-1]).to(self.llm_dtype)  # (B, 88·Q, D)

    def _tokenize_prompt(self, query: str) -> P.PromptTokens:
        return P.tokenize_prompt(self.tokenizer, query, self.bos_id, self.config.prompt_template)

    def embeds_per_clip(self, samples: int) -> int:
        """88 per clip (times the queries per window), for any length from 1 to 30 s."""
        return self.config.n_windows * self.config.num_speech_query_token

    def audio_reserve_bytes(self, samples: int) -> int:
        """GPU bytes of one audio pass of `audio_chunk` clips.

        Per clip: the float32 STFT of 30 s (complex, 201 x 3001, a few copies), Whisper's
        per-layer activations (attention scores heads x 1500^2 and the 4x feed-forward, float32
        upper bound), BEATs' fbank and attention over the clip's tokens as for NatureLM-audio.
        """
        cfg = self.speech_encoder.config
        stft = 4 * (N_FRAMES + 1) * (FFT_SIZE // 2 + 1) * 8
        attention = 3 * cfg.encoder_attention_heads * FUSED_ROWS * FUSED_ROWS * 4
        feed_forward = 4 * FUSED_ROWS * cfg.encoder_ffn_dim * 4
        beats = self.config.beats_cfg
        frames = num_fbank_frames(max(samples, MIN_SAMPLES))
        tokens = beats.num_tokens(frames)
        beats_bytes = 4 * frames * FFT_SIZE * 16 + 4 * beats.encoder_attention_heads * tokens * tokens * 4
        return self.audio_chunk * (stft + attention + feed_forward + beats_bytes)


__all__ = ["Answer", "GenerationOptions", "LORA_TARGET_MODULES", "SALMONN", "SALMONNConfig", "SALMONN_GENERATION",
           "prepare_clip"]
