"""NatureLM-audio: BEATs -> window-level Q-Former -> projection -> Llama 3.1 + LoRA.

Attribute names equal the published checkpoint's top-level names (`beats`, `ln_audio`,
`audio_Qformer`, `audio_query_tokens`, `audio_llama_proj`, `llama_model`), so that
`naturelm_core.naturelm.checkpoint` copies release tensors in one-to-one. Building and loading live there;
this file holds the config, the module, prompt assembly with left padding, generation and the
scores (facts: `reference/naturelm-audio.md` §1, §3.3, §3.4).

Scores (all probabilities in [0, 1]):
- `yes_no_probability`: P(yes) = the next-token distribution after the prompt, restricted to the
  yes ids and the no ids of `prompts.yes_no_token_ids` and renormalised over them.
- `not_none_probability`: 1 - P(first answer token is a "None" spelling), for species-list prompts.
- `sequence_probability`: product of the model's probabilities of the answer's tokens, times
  P(stop) = the summed probability of the three stop tokens after the last one when the answer
  ended on a stop token. The stop term makes "Green Tree" and "Green Treefrog" different answers.
- `candidate_probabilities`: `sequence_probability` of each candidate text (teacher forced, stop
  term included), normalised over the candidate list.
Every distribution here excludes the added [PAD] token: its output row is not part of the release
(it is re-initialised when the vocabulary is resized) and is masked to -inf.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from peft import LoraConfig, TaskType, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import GenerationConfig

from naturelm_core.naturelm import prompts as P
from naturelm_core.naturelm.beats import BEATs, BEATsConfig
from naturelm_core.naturelm.qformer import QFormer, QFormerConfig, split_windows, window_size_tokens

logger = logging.getLogger(__name__)

#: Upper bound on the float32 logits one scoring pass materialises (rows are chunked to fit).
SCORING_LOGITS_BYTES = 256 << 20
#: Windows per pass of the audio side (bounds its activations: BEATs' attention and the fbank).
AUDIO_CHUNK_WINDOWS = 64
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


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings; defaults = the published `configs/inference.yml` `generate` block.

    temperature (0.1) is not listed: sampling is off, so it never applies. The reference's extra
    stop on token id 2 (a Llama 2 leftover that checks only the first row) is not reproduced.
    """

    max_new_tokens: int = 300  # answer length cap, stop token included
    num_beams: int = 2  # 1 = greedy
    min_new_tokens: int = 1  # the reference's min_length=1 counts generated tokens only
    repetition_penalty: float = 1.0  # 1.0 = off
    length_penalty: float = 1.0  # beam score = sum log p / length ** length_penalty

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.num_beams < 1 or self.min_new_tokens < 0:
            raise ValueError(f"invalid GenerationOptions: {self}")


@dataclass(frozen=True)
class Answer:
    """One generated answer."""

    text: str  # decoded answer, special tokens removed, stripped
    token_ids: tuple[int, ...]  # generated ids without the stop token
    stopped: bool  # ended on a stop token (False: hit max_new_tokens)


class NatureLM(nn.Module):
    """The full model. Build it with `checkpoint.build_model` / `checkpoint.load_naturelm`.

    `llama` must already have its vocabulary resized to `len(tokenizer)` (Llama + [PAD]).
    """

    def __init__(self, config: NatureLMConfig, llama: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        vocab = llama.get_input_embeddings().weight.shape[0]
        if vocab != len(tokenizer):
            raise ValueError(f"Llama vocabulary {vocab} != tokenizer size {len(tokenizer)} (resize first)")
        qcfg = config.qformer_cfg
        self.beats = BEATs(config.beats_cfg)
        self.ln_audio = nn.LayerNorm(config.beats_cfg.encoder_embed_dim)
        self.audio_Qformer = QFormer(qcfg)
        self.audio_query_tokens = nn.Parameter(torch.zeros(1, config.num_audio_query_token, qcfg.hidden_size))
        self.audio_llama_proj = nn.Linear(qcfg.hidden_size, llama.config.hidden_size)
        lora = LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(LORA_TARGET_MODULES),
        )
        # LoRA in the Llama's own dtype (bf16 on GPU), as the reference's peft 0.11 kept it and the
        # release stores it; newer peft would upcast it to float32 and cast every input to match.
        self.llama_model = get_peft_model(llama, lora, autocast_adapter_dtype=False)
        self.window_tokens = window_size_tokens(config.second_per_window)
        self.merging_alpha = 1.0
        # The fbank runs in float64 like the reference's (its processor hands over float64 audio):
        # the front end is then bit-identical to it; float32 moves features by up to ~6e-3.
        self.fbank_dtype = torch.float64
        self.pad_id = P.special_token_id(tokenizer, P.PAD_TOKEN)
        self.stop_ids = P.stop_token_ids(tokenizer)
        self._prompt_cache: dict[str, P.PromptTokens] = {}

    # ---------------------------------------------------------------- audio side

    @property
    def device(self) -> torch.device:
        return self.audio_llama_proj.weight.device

    @property
    def llm_dtype(self) -> torch.dtype:
        return self.llama_model.get_input_embeddings().weight.dtype

    def _audio_autocast(self) -> contextlib.AbstractContextManager:
        # On CUDA the audio side keeps fp32 weights and computes in bf16, as the reference does;
        # on CPU it runs in fp32 (a float32 oracle, and CPU bf16 autocast is slow).
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) in [-1, 1] at 16 kHz -> audio embeddings (B, L * Q, D) in the LLM dtype.

        The wave is cast to `fbank_dtype` on the model's device (copy float32 to the GPU, widen
        there); rows are encoded AUDIO_CHUNK_WINDOWS at a time.
        """
        if wave.dim() != 2:
            raise ValueError(f"encode_audio: wave must be (batch, samples), got {tuple(wave.shape)}")
        wave = wave.to(self.device)
        chunks = [self._encode_chunk(wave[i : i + AUDIO_CHUNK_WINDOWS]) for i in range(0, wave.shape[0], AUDIO_CHUNK_WINDOWS)]
        return torch.cat(chunks) if len(chunks) > 1 else chunks[0]

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

    # ---------------------------------------------------------------- LoRA merging

    def set_merging_alpha(self, alpha: float) -> None:
        """Scale every LoRA delta by `alpha`: W = W0 + alpha * (lora_alpha / r) * B A.

        0 gives the base Llama, 1 the released model. Unlike the reference, setting 1.0 after
        another value does restore the released model.
        """
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"merging_alpha must be a finite number >= 0, got {alpha}")
        n_layers = 0
        for module in self.llama_model.modules():
            if isinstance(module, LoraLayer):
                for adapter in module.scaling:
                    module.scaling[adapter] = alpha * self.config.lora_scaling
                n_layers += 1
        if n_layers == 0:
            raise RuntimeError("no LoRA layers found in llama_model")
        self.merging_alpha = float(alpha)

    # ---------------------------------------------------------------- prompts

    def prompt_tokens(self, query: str) -> P.PromptTokens:
        cached = self._prompt_cache.get(query)
        if cached is None:
            cached = P.tokenize_prompt(self.tokenizer, query, self.config.prompt_template)
            self._prompt_cache[query] = cached
        return cached

    def assemble(
        self,
        audio_embeds: torch.Tensor,
        queries: Sequence[str],
        continuations: Sequence[Sequence[int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Input embeddings for rows (audio_embeds[i], queries[i], continuations[i]).

        Prompts are LEFT-padded so they all end at column `prompt_end`; continuation tokens
        (teacher forcing) follow and are right-padded. Returns (embeds (R, T, D), attention
        mask (R, T), position ids (R, T), prompt_end); positions count real tokens only, so a
        row's numbers do not depend on the padding its batch needed.
        """
        rows = len(queries)
        if audio_embeds.dim() != 3 or audio_embeds.shape[0] != rows:
            raise ValueError(f"assemble: need ({rows}, N, D) audio embeddings, got {tuple(audio_embeds.shape)}")
        continuations = continuations if continuations is not None else [()] * rows
        embed = self.llama_model.get_input_embeddings()
        n_audio, width = audio_embeds.shape[1], audio_embeds.shape[2]
        tokens = [self.prompt_tokens(q) for q in queries]
        prompt_lens = [len(t) + n_audio for t in tokens]
        prompt_end = max(prompt_lens)
        cont_len = max((len(c) for c in continuations), default=0)
        total = prompt_end + cont_len
        embeds = torch.zeros(rows, total, width, dtype=self.llm_dtype, device=self.device)
        mask = torch.zeros(rows, total, dtype=torch.long, device=self.device)
        for i, (tok, cont) in enumerate(zip(tokens, continuations)):
            ids = torch.tensor([*tok.before_audio, *tok.after_audio, *cont], device=self.device)
            text = embed(ids)  # (n_text, D)
            n_before, n_after = len(tok.before_audio), len(tok.after_audio)
            row = torch.cat(
                [
                    text[:n_before],
                    audio_embeds[i].to(self.device, self.llm_dtype),
                    text[n_before : n_before + n_after],
                    text[n_before + n_after :],
                ]
            )  # (prompt + continuation, D)
            start = prompt_end - prompt_lens[i]
            embeds[i, start : start + row.shape[0]] = row
            mask[i, start : start + row.shape[0]] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return embeds, mask, positions, prompt_end

    # ---------------------------------------------------------------- forward passes

    def _logits(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, keep: int) -> torch.Tensor:
        """Float32 logits (R, keep, V) of the last `keep` positions, [PAD] masked to -inf."""
        out = self.llama_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep
        )
        logits = out.logits.float()
        logits[..., self.pad_id] = float("-inf")  # [PAD] is never an answer
        return logits

    @torch.inference_mode()
    def next_token_log_probs(self, audio_embeds: torch.Tensor, queries: Sequence[str]) -> torch.Tensor:
        """Log-probabilities (R, V) of the first answer token of each row."""
        embeds, mask, positions, _ = self.assemble(audio_embeds, queries)
        return torch.log_softmax(self._logits(embeds, mask, positions, keep=1)[:, -1], dim=-1)

    @torch.inference_mode()
    def continuation_log_probs(
        self,
        audio_embeds: torch.Tensor,
        queries: Sequence[str],
        continuations: Sequence[Sequence[int]],
        stopped: Sequence[bool],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced scores of given answers: (first-token log-probs (R, V), log P(answer) (R,)).

        log P(answer) = sum of the answer tokens' log-probs, plus log P(any stop token) after the
        answer for rows whose `stopped` is True. Rows are processed in chunks so that the float32
        logits of a chunk stay under SCORING_LOGITS_BYTES (a 128k vocabulary is 0.5 MB a position).
        """
        rows = len(queries)
        steps = max((len(c) for c in continuations), default=0) + 1  # answer tokens + the stop
        vocab = self.llama_model.get_output_embeddings().weight.shape[0]
        chunk = max(1, SCORING_LOGITS_BYTES // (steps * vocab * 4))
        stops = list(self.stop_ids)
        firsts, totals = [], []
        for start in range(0, rows, chunk):
            part = slice(start, min(rows, start + chunk))
            embeds, mask, positions, end = self.assemble(audio_embeds[part], queries[part], continuations[part])
            keep = embeds.shape[1] - end + 1  # this chunk's longest answer + 1: from the last prompt column
            log_probs = torch.log_softmax(self._logits(embeds, mask, positions, keep=keep), dim=-1)  # (r, keep, V)
            firsts.append(log_probs[:, 0])
            for i, (cont, stop) in enumerate(zip(continuations[part], stopped[part])):
                ids = torch.tensor(list(cont), dtype=torch.long, device=log_probs.device)
                total = log_probs[i, torch.arange(len(cont), device=log_probs.device), ids].sum()
                if stop:
                    total = total + torch.logsumexp(log_probs[i, len(cont), stops], dim=0)
                totals.append(total)
        return torch.cat(firsts), torch.stack(totals)

    # ---------------------------------------------------------------- generation

    def _hf_generation_config(self, options: GenerationOptions) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=options.max_new_tokens,
            min_new_tokens=options.min_new_tokens,
            num_beams=options.num_beams,
            do_sample=False,
            repetition_penalty=options.repetition_penalty,
            length_penalty=options.length_penalty,
            early_stopping=False,
            eos_token_id=list(self.stop_ids),
            pad_token_id=self.pad_id,
            bos_token_id=P.special_token_id(self.tokenizer, P.BOS_TOKEN),
            suppress_tokens=[self.pad_id],
            num_return_sequences=1,
        )

    @torch.inference_mode()
    def generate(
        self, audio_embeds: torch.Tensor, queries: Sequence[str], options: GenerationOptions = GenerationOptions()
    ) -> list[Answer]:
        """One answer per row (audio_embeds[i], queries[i]); rows may have different prompts."""
        embeds, mask, positions, _ = self.assemble(audio_embeds, queries)
        out = self.llama_model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            generation_config=self._hf_generation_config(options),
        )
        answers = []
        for row in out.tolist():  # inputs_embeds only: the output holds new tokens only
            ids, stopped = [], False
            for token in row:
                if token in self.stop_ids:
                    stopped = True
                    break
                if token == self.pad_id:  # filler after another row of the batch finished
                    break
                ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            answers.append(Answer(text=text, token_ids=tuple(ids), stopped=stopped))
        return answers

    # ---------------------------------------------------------------- scores

    def yes_no_probability(self, first_token_log_probs: torch.Tensor) -> torch.Tensor:
        """P(yes) (R,) from first-token log-probs (R, V), renormalised over the yes/no ids."""
        yes_ids, no_ids = P.yes_no_token_ids(self.tokenizer)
        yes = torch.logsumexp(first_token_log_probs[:, list(yes_ids)], dim=-1)
        no = torch.logsumexp(first_token_log_probs[:, list(no_ids)], dim=-1)
        return torch.sigmoid(yes - no)  # = e^yes / (e^yes + e^no)

    def not_none_probability(self, first_token_log_probs: torch.Tensor) -> torch.Tensor:
        """1 - P(the answer starts with a "None" spelling) (R,), from first-token log-probs (R, V)."""
        none_ids = P.none_token_ids(self.tokenizer)
        return -torch.expm1(torch.logsumexp(first_token_log_probs[:, list(none_ids)], dim=-1))

    @torch.inference_mode()
    def candidate_probabilities(
        self, audio_embeds: torch.Tensor, query: str, candidates: Sequence[str], chunk_rows: int = 64
    ) -> torch.Tensor:
        """P(candidate | audio, query) (B, C), each row normalised over the candidates."""
        if not candidates:
            raise ValueError("candidate_probabilities: empty candidate list")
        ids = [tuple(self.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in candidates]
        batch, n_cand = audio_embeds.shape[0], len(candidates)
        rows = [(b, c) for b in range(batch) for c in range(n_cand)]
        scores = torch.empty(batch, n_cand, device=self.device)
        for start in range(0, len(rows), chunk_rows):
            chunk = rows[start : start + chunk_rows]
            audio = audio_embeds[[b for b, _ in chunk]]
            _, totals = self.continuation_log_probs(
                audio, [query] * len(chunk), [ids[c] for _, c in chunk], [True] * len(chunk)
            )
            for (b, c), total in zip(chunk, totals):
                scores[b, c] = total
        return torch.softmax(scores, dim=-1)
