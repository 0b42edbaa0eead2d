"""The audio-LLM family's shared model: audio embeddings spliced into a LoRA-wrapped Llama.

NatureLM-audio (`naturelm_core.naturelm`) and SALMONN (`naturelm_core.salmonn`) both turn audio
into a fixed number of embeddings per clip (a window-level Q-Former and a projection), splice them
between two tokenized halves of a prompt after one BOS, and let a Llama-architecture LLM with LoRA
answer. `AudioLLM` holds everything after the audio encoder: prompt assembly with left padding,
the LoRA scale, teacher-forced scores, Hugging Face generation (the plain reference path) and the
scores. A member subclasses it, builds its encoders in `__init__` and implements `encode_audio`,
`prompt_tokens`, `embeds_per_clip` and `audio_reserve_bytes`.

Scores (all probabilities in [0, 1]):
- `yes_no_probability`: P(yes) = the next-token distribution after the prompt, restricted to the
  yes ids and the no ids of `prompts.yes_no_token_ids` and renormalised over them.
- `not_none_probability`: 1 - P(first answer token is a "None" spelling), for species-list prompts.
- `sequence_probability`: product of the model's probabilities of the answer's tokens, times
  P(stop) = the summed probability of the stop tokens after the last one when the answer
  ended on a stop token. The stop term makes "Green Tree" and "Green Treefrog" different answers.
- `candidate_probabilities`: `sequence_probability` of each candidate text (teacher forced, stop
  term included), normalised over the candidate list.
Every distribution here excludes the added [PAD] token: its output row is not part of a release
(it is re-initialised when the vocabulary is resized) and is masked to -inf.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from peft import LoraConfig, TaskType, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import GenerationConfig

from naturelm_core.audio_llm import prompts as P

#: Upper bound on the float32 logits one scoring pass materialises (rows are chunked to fit).
SCORING_LOGITS_BYTES = 256 << 20
#: Clips per pass of the audio side (bounds its activations: the encoders' attention, the fbank).
AUDIO_CHUNK_WINDOWS = 64


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


class AudioLLM(nn.Module):
    """A Llama (vocabulary already resized for [PAD]) with LoRA, fed audio embeddings and prompts.

    Subclasses build their audio encoders and call `_wrap_llm` once; the LLM is `self.llama_model`
    (a peft wrapper, so its state-dict keys are `llama_model.base_model.model.*` as the releases
    store them).
    """

    #: dtype the audio side computes in on CUDA (weights stay float32); CPU runs float32.
    cuda_autocast_dtype: torch.dtype = torch.bfloat16
    #: Beam search counts a hidden BOS in hypothesis lengths, as transformers 4.28's generate did
    #: with `inputs_embeds` (SALMONN's pin); False: the answer tokens and the stop (NatureLM).
    hidden_bos: bool = False
    #: Clips per pass of the audio side.
    audio_chunk: int = AUDIO_CHUNK_WINDOWS

    def _wrap_llm(self, llama: nn.Module, tokenizer: Any, rank: int, alpha: float, dropout: float,
                  targets: Sequence[str], pad_id: int, stop_ids: Sequence[int], bos_id: int,
                  autocast_adapter_dtype: bool = False) -> None:
        self.tokenizer = tokenizer
        vocab = llama.get_input_embeddings().weight.shape[0]
        if vocab != len(tokenizer):
            raise ValueError(f"Llama vocabulary {vocab} != tokenizer size {len(tokenizer)} (resize first)")
        lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=rank, lora_alpha=alpha, lora_dropout=dropout,
                          target_modules=list(targets))
        self.llama_model = get_peft_model(llama, lora, autocast_adapter_dtype=autocast_adapter_dtype)
        self.lora_scaling = alpha / rank
        self.merging_alpha = 1.0
        self.pad_id, self.stop_ids, self.bos_id = int(pad_id), tuple(int(s) for s in stop_ids), int(bos_id)
        self._prompt_cache: dict[str, P.PromptTokens] = {}

    # ---------------------------------------------------------------- what a member provides

    def _encode_chunk(self, wave: torch.Tensor) -> torch.Tensor:
        """At most AUDIO_CHUNK_WINDOWS clips (B, S) on the device -> audio embeddings (B, N, D)."""
        raise NotImplementedError

    def _tokenize_prompt(self, query: str) -> P.PromptTokens:
        raise NotImplementedError

    def embeds_per_clip(self, samples: int) -> int:
        """LLM rows the audio of one clip of `samples` samples becomes."""
        raise NotImplementedError

    def audio_reserve_bytes(self, samples: int) -> int:
        """GPU bytes the audio side needs for one pass of AUDIO_CHUNK_WINDOWS clips of `samples`."""
        raise NotImplementedError

    # ---------------------------------------------------------------- audio side

    @torch.inference_mode()
    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) in [-1, 1] at 16 kHz -> audio embeddings (B, N, D) in the LLM dtype.

        The wave goes to the model's device as it is (float32: the member widens it there when
        its front end wants float64); clips are encoded `audio_chunk` at a time.
        """
        if wave.dim() != 2:
            raise ValueError(f"encode_audio: wave must be (batch, samples), got {tuple(wave.shape)}")
        wave = wave.to(self.device)
        step = self.audio_chunk
        chunks = [self._encode_chunk(wave[i : i + step]) for i in range(0, wave.shape[0], step)]
        return torch.cat(chunks) if len(chunks) > 1 else chunks[0]

    @property
    def device(self) -> torch.device:
        return self.llama_model.get_input_embeddings().weight.device

    @property
    def llm_dtype(self) -> torch.dtype:
        return self.llama_model.get_input_embeddings().weight.dtype

    def _audio_autocast(self) -> contextlib.AbstractContextManager:
        # On CUDA the audio side keeps fp32 weights and computes in the member's half dtype, as the
        # references do; on CPU it runs in fp32 (a float32 oracle, and CPU autocast is slow).
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=self.cuda_autocast_dtype)
        return contextlib.nullcontext()

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
                    module.scaling[adapter] = alpha * self.lora_scaling
                n_layers += 1
        if n_layers == 0:
            raise RuntimeError("no LoRA layers found in llama_model")
        self.merging_alpha = float(alpha)

    # ---------------------------------------------------------------- prompts

    def prompt_tokens(self, query: str) -> P.PromptTokens:
        cached = self._prompt_cache.get(query)
        if cached is None:
            cached = self._tokenize_prompt(query)
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
            bos_token_id=self.bos_id,
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
