"""Batched audio-LLM inference: encode each window once, share its prompt prefix, ask every prompt.

Shared by the family's members (NatureLM-audio, SALMONN): the engine sees a member only through
`AudioLLM` (encode_audio, prompt_tokens, the LLM, pad/stop ids, scores, embeds_per_clip).

The reference answers one (window, question) per `generate` call and re-encodes the audio for
every question (or hits an approximate cache). Here a batch of windows is encoded once and then,
on the default `path="shared"`:

1. per window, the rows every prompt shares -- BOS, user header, `<Audio>`, the audio rows and
   the common start of the text after them (`</Audio>` ...) -- run once; their KV cache is copied
   to each prompt of the window (`decoding.RowState.select`), never recomputed;
2. the rest of every (window, prompt) row runs in one left-padded pass, which gives each row's
   next-token distribution: that alone answers first-token prompts (detect: P(yes), no decoding);
3. free-text prompts decode from those rows (greedy or beam, finished rows leave the batch),
   scored from the same steps; candidate-constrained classification copies each prompt row's
   cache to every candidate and teacher-forces all candidates of all windows in batched passes.

A cascade asks `classify` only of windows whose detection score reaches a threshold, from the
same window prefixes. `path="unshared"` runs every row's whole prompt itself (the same decoders:
the benchmark's baseline for sharing); `path="reference"` is the plain path: Hugging Face
`generate` for every row, then one teacher-forced scoring pass (`AudioLLM.generate`,
`AudioLLM.continuation_log_probs`). All three give the same answers up to float rounding; the
tests check it.

On CUDA the batch size may be "auto" (from free GPU memory, `auto_batch_size`), and the next
batch's audio is copied host-to-device from pinned memory on a side stream while the current
batch computes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Iterator, Literal, Sequence

import numpy as np
import torch

from naturelm_core.audio_llm import decoding as D
from naturelm_core.audio_llm.beats import SAMPLE_RATE_HZ
from naturelm_core.audio_llm.model import AudioLLM, GenerationOptions
from naturelm_core.audio_llm.prompts import Prompt, none_token_ids

logger = logging.getLogger(__name__)

EnginePath = Literal["shared", "unshared", "reference"]
ENGINE_PATHS: tuple[str, ...] = ("shared", "unshared", "reference")
#: Windows per batch for batch_size="auto" without a GPU (CPU matrix products are compute-bound
#: already; larger batches only hold more memory).
CPU_AUTO_BATCH = 4
#: The model's input: 10 s at 16 kHz (shorter windows are zero-padded to it by the backend).
WINDOW_SAMPLES = 10 * SAMPLE_RATE_HZ


@dataclass(frozen=True)
class EngineConfig:
    """How the engine batches and which options it applies."""

    batch_size: int | Literal["auto"] = 4  # windows encoded and asked together; "auto": from free GPU memory
    cascade_threshold: float | None = None  # classify only windows with detect score >= this
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    candidates: tuple[str, ...] | None = None  # classify by scoring these names instead of generating
    path: EnginePath = "shared"  # "shared" prefixes, "unshared" rows, or the plain "reference" path
    length_bucket: int = 1  # pad multi-token passes to a multiple of this many columns (1: off)
    memory_fraction: float = 0.8  # share of free GPU memory that "auto" sizing may plan for
    max_batch_size: int = 1024  # upper bound of "auto"
    candidate_rows: int | None = None  # (row, candidate) pairs per teacher-forced pass; None: from memory

    def __post_init__(self) -> None:
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {self.batch_size!r}")
        if self.cascade_threshold is not None and not 0.0 <= self.cascade_threshold <= 1.0:
            raise ValueError(f"cascade_threshold must lie in [0, 1], got {self.cascade_threshold}")
        if self.candidates is not None and (not self.candidates or not all(c.strip() for c in self.candidates)):
            raise ValueError("candidates must be None or a non-empty list of non-empty names")
        if self.path not in ENGINE_PATHS:
            raise ValueError(f"path must be one of {ENGINE_PATHS}, got {self.path!r}")
        if self.length_bucket < 1 or self.max_batch_size < 1 or not 0.0 < self.memory_fraction <= 1.0:
            raise ValueError(
                f"need length_bucket >= 1, max_batch_size >= 1 and 0 < memory_fraction <= 1, got "
                f"{self.length_bucket}, {self.max_batch_size}, {self.memory_fraction}"
            )
        if self.candidate_rows is not None and self.candidate_rows < 1:
            raise ValueError(f"candidate_rows must be >= 1, got {self.candidate_rows}")


@dataclass(frozen=True)
class WindowAnswer:
    """The answer to one prompt about one window."""

    item: int  # row of the input batch
    prompt: Prompt
    text: str  # generated answer, the best candidate, or "yes"/"no" for first-token prompts
    score: float  # P(yes) / 1 - P(None) for first-token prompts; the answer's probability otherwise


# ------------------------------------------------------------------------------ memory sizing


def kv_bytes_per_token(model: AudioLLM) -> int:
    """KV-cache bytes of one position of one row (all layers, K and V)."""
    cfg = model.llama_model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * head_dim * model.llm_dtype.itemsize


def window_bytes(model: AudioLLM, prompts: Sequence[Prompt], generation: GenerationOptions, prompt_tokens: int,
                 n_candidates: int = 0) -> int:
    """Upper estimate of the GPU memory (bytes) each window of a batch adds on the cached paths.

    KV caches -- each distinct prompt's row (`prompt_tokens` positions) and each free-text
    prompt's beams (prompt + max_new_tokens) -- counted twice, since a cache is copied while rows
    are selected or grow; float32 logits of every row with their log-softmax copies; the widest
    transient of a prefill (one layer's MLP over the window's prompt rows). Candidate passes are
    sized separately (`EngineConfig.candidate_rows`), the audio side by `audio_reserve_bytes`.
    """
    cfg = model.llama_model.config
    vocab = model.llama_model.get_output_embeddings().weight.shape[0]
    texts = {p.text for p in prompts}
    free_text = {p.text for p in prompts if p.scoring == "sequence" and not (p.task == "classify" and n_candidates)}
    decode_rows = len(free_text) * generation.num_beams
    kv_tokens = len(texts) * prompt_tokens + decode_rows * (prompt_tokens + generation.max_new_tokens)
    logits = (len(texts) + decode_rows) * vocab * 4 * 6  # float32 logits, log-probs, processed copies
    prefill = len(texts) * prompt_tokens * (3 * cfg.intermediate_size + 4 * cfg.hidden_size) * model.llm_dtype.itemsize
    return 2 * kv_bytes_per_token(model) * kv_tokens + logits + prefill


def audio_reserve_bytes(model: AudioLLM) -> int:
    """GPU bytes the audio side needs for one pass of AUDIO_CHUNK_WINDOWS windows (10 s each)."""
    return model.audio_reserve_bytes(WINDOW_SAMPLES)


def auto_batch_size(free_bytes: int, per_window_bytes: int, fraction: float, cap: int, reserve_bytes: int = 0) -> int:
    """Windows per batch that fit `fraction` of `free_bytes` less `reserve_bytes`, in [1, cap]."""
    budget = int(free_bytes * fraction) - reserve_bytes
    return max(1, min(cap, budget // max(1, per_window_bytes)))


# ------------------------------------------------------------------------------ the engine


@dataclass
class _PromptRows:
    """Per-(window, prompt) LLM rows after the whole prompt: states and where each row is."""

    states: list[D.RowState]
    where: dict[tuple[str, int], tuple[int, int]]  # (prompt text, window) -> (state, row)

    def _rows(self, text: str, windows: Sequence[int]) -> tuple[D.RowState, list[int]]:
        places = [self.where[(text, w)] for w in windows]
        states = {s for s, _ in places}
        if len(states) != 1:
            raise RuntimeError(f"rows of prompt {text!r} are spread over {len(states)} states")
        return self.states[states.pop()], [r for _, r in places]

    def logits(self, text: str, windows: Sequence[int]) -> torch.Tensor:
        state, rows = self._rows(text, windows)
        return state.logits[torch.tensor(rows, device=state.logits.device)]

    def select(self, text: str, windows: Sequence[int]) -> D.RowState:
        state, rows = self._rows(text, windows)
        return state.select(rows)


class Engine:
    """Runs a set of prompts over batches of windows on one loaded `AudioLLM`."""

    def __init__(
        self, model: AudioLLM, prompts: Sequence[Prompt] | None = None, config: EngineConfig = EngineConfig()
    ) -> None:
        self.model = model
        self.prompts = list(prompts) if prompts is not None else list(model.DEFAULT_PROMPTS.values())
        self.config = config
        tasks = [p.task for p in self.prompts]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"one prompt per task, got tasks {tasks}")
        if config.cascade_threshold is not None:
            detect = self._prompt("detect")
            if detect is None or not detect.first_token:
                raise ValueError("a cascade needs a 'detect' prompt scored from its first token (yes_no or not_none)")
        if any(p.scoring == "not_none" for p in self.prompts):
            none_token_ids(model.tokenizer)  # fails now, naming the words, rather than mid-run
        if config.path == "reference" and any(p.scoring == "not_none" for p in self.prompts):
            raise ValueError("the reference path scores yes_no and sequence prompts only")
        self.work = D.LLMWork()
        self.lm = D.CachedLM(model, config.length_bucket, self.work)
        self._candidate_ids = tuple(
            tuple(model.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in config.candidates or ()
        )
        self._plan_prefixes()
        self.batch_size = self._resolve_batch_size()

    def _prompt(self, task: str) -> Prompt | None:
        return next((p for p in self.prompts if p.task == task), None)

    # ---------------------------------------------------------------- planning

    def _plan_prefixes(self) -> None:
        """Group prompt texts by their tokens before the audio; per group, the shared text after it.

        The shared prefix of a group is its before-audio tokens, the audio rows and the longest
        common start of the after-audio tokens, less one token so every prompt keeps a row of its
        own (its next-token logits come from its last token).
        """
        tokens = {p.text: self.model.prompt_tokens(p.text) for p in self.prompts}
        by_before: dict[tuple[int, ...], list[str]] = {}
        for text, tok in tokens.items():
            by_before.setdefault(tok.before_audio, []).append(text)
        self._groups: dict[str, tuple[tuple[int, ...], int]] = {}  # text -> (group key, shared after-audio tokens)
        for before, texts in by_before.items():
            afters = [tokens[t].after_audio for t in texts]
            common = 0
            while all(len(a) > common + 1 for a in afters) and len({a[common] for a in afters}) == 1:
                common += 1
            for text in texts:
                self._groups[text] = (before, common)
        self._tokens = tokens

    def _resolve_batch_size(self) -> int:
        if self.config.batch_size != "auto":
            return int(self.config.batch_size)
        if self.model.device.type != "cuda":
            return CPU_AUTO_BATCH
        free, _ = torch.cuda.mem_get_info(self.model.device)
        per_window, reserve = self.window_bytes(), audio_reserve_bytes(self.model)
        size = auto_batch_size(free, per_window, self.config.memory_fraction, self.config.max_batch_size, reserve)
        logger.info("batch_size=auto: %d windows (%.1f GiB free, ~%.0f MiB per window, %.1f GiB audio reserve)",
                    size, free / 2**30, per_window / 2**20, reserve / 2**30)
        return size

    def window_bytes(self) -> int:
        """Estimated GPU bytes per window of a batch for this engine's prompts (see `window_bytes`)."""
        longest = max(len(t) for t in self._tokens.values()) + self._audio_rows()
        return window_bytes(self.model, self.prompts, self.config.generation, longest, len(self._candidate_ids))

    def _audio_rows(self) -> int:
        """LLM rows of one 10-s window's audio (29 for NatureLM-audio, 88 for SALMONN)."""
        return self.model.embeds_per_clip(WINDOW_SAMPLES)

    # ---------------------------------------------------------------- public API

    def encode(self, wave: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, S) 16 kHz audio -> audio embeddings (B, N, D), encoded batch_size rows at a time."""
        return torch.cat([self.model.encode_audio(batch) for _, batch in self._batches(wave)])

    def run(self, wave: np.ndarray | torch.Tensor, tasks: Sequence[str] | None = None) -> list[WindowAnswer]:
        """Answers for every window of `wave` (B, S) and every prompt whose task is in `tasks`."""
        wanted = [p for p in self.prompts if tasks is None or p.task in tasks]
        missing = sorted(set(tasks or ()) - {p.task for p in wanted})
        if missing:
            raise ValueError(f"no prompt for task(s) {missing}; prompts cover {[p.task for p in self.prompts]}")
        answers: list[WindowAnswer] = []
        with torch.inference_mode():
            for start, batch in self._batches(wave):
                embeds = self.model.encode_audio(batch)  # once per window
                for answer in self.answer(embeds, wanted):
                    answers.append(WindowAnswer(answer.item + start, answer.prompt, answer.text, answer.score))
        return answers

    def answer(self, embeds: torch.Tensor, prompts: Sequence[Prompt]) -> list[WindowAnswer]:
        """Ask `prompts` about already-encoded windows (B, N, D); applies the cascade."""
        with torch.inference_mode():
            if self.config.path == "reference":
                return self._answer_reference(embeds, prompts)
            return self._answer_cached(embeds, prompts)

    # ---------------------------------------------------------------- host -> device

    def _batches(self, wave: np.ndarray | torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, batch on the model's device); on CUDA the next batch is copied while this one runs.

        Windows are split into equal batches of at most batch_size (10 windows at 4: 4 + 3 + 3),
        so the same number of windows per call gives the same shapes every call.
        """
        wave = torch.as_tensor(wave, dtype=torch.float32)
        total, device = wave.shape[0], self.model.device
        size = -(-total // -(-total // self.batch_size)) if total else 1  # ceil(total / number of batches)
        starts = list(range(0, total, size))
        if device.type != "cuda":
            for start in starts:
                yield start, wave[start : start + size]
            return
        copy_stream = torch.cuda.Stream(device)

        def copy(start: int) -> tuple[torch.Tensor, torch.Tensor]:
            host = wave[start : start + size].pin_memory()  # page-locked: the copy can run async
            with torch.cuda.stream(copy_stream):
                return host, host.to(device, non_blocking=True)

        pending = copy(starts[0]) if starts else None
        for n, start in enumerate(starts):
            host, batch = pending
            torch.cuda.current_stream(device).wait_stream(copy_stream)
            batch.record_stream(torch.cuda.current_stream(device))  # the allocator must not reuse it early
            pending = copy(starts[n + 1]) if n + 1 < len(starts) else None
            yield start, batch
            del host

    # ---------------------------------------------------------------- cached paths

    def _prompt_rows(self, embeds: torch.Tensor, windows: Sequence[int], texts: Sequence[str],
                     prefixes: dict) -> _PromptRows:
        """LLM rows for every (text, window): one pass per prefix group over all its rows."""
        lm, model = self.lm, self.model
        states: list[D.RowState] = []
        where: dict[tuple[str, int], tuple[int, int]] = {}
        if self.config.path == "unshared":
            # Every row runs its whole prompt: before-audio tokens, audio, after-audio tokens.
            pieces = []
            for text in texts:
                tok = self._tokens[text]
                before, after = lm.embed(tok.before_audio), lm.embed(tok.after_audio)
                for w in windows:
                    where[(text, w)] = (0, len(pieces))
                    pieces.append(torch.cat([before, embeds[w].to(model.llm_dtype), after]))
            state, _ = lm.extend(None, pieces)
            return _PromptRows([state], where)
        by_group: dict[tuple, list[str]] = {}
        for text in texts:
            by_group.setdefault(self._groups[text], []).append(text)
        for group, group_texts in by_group.items():
            prefix = prefixes.get(group)
            if prefix is None:  # once per batch and group, for every window of the batch
                before, common = group
                head = lm.embed(before)
                tail = lm.embed(self._tokens[group_texts[0]].after_audio[:common]) if common else head[:0]
                batch = embeds.shape[0]
                pieces = torch.cat([head.expand(batch, -1, -1), embeds.to(model.llm_dtype),
                                    tail.expand(batch, -1, -1)], dim=1)  # (B, prefix, D)
                prefix, _ = lm.extend(None, pieces, keep=0)  # no logits: every prompt continues it
                prefixes[group] = prefix
            rows, pieces = [], []
            for text in group_texts:
                rest = lm.embed(self._tokens[text].after_audio[group[1] :])
                for w in windows:
                    where[(text, w)] = (len(states), len(rows))
                    rows.append(w)
                    pieces.append(rest)
            state, _ = lm.extend(prefix.select(rows), pieces)
            states.append(state)
        return _PromptRows(states, where)

    def _answer_cached(self, embeds: torch.Tensor, prompts: Sequence[Prompt]) -> list[WindowAnswer]:
        windows = list(range(embeds.shape[0]))
        classify, detect = self._prompt("classify"), self._prompt("detect")
        cascade = self.config.cascade_threshold is not None and classify in prompts
        first = [p for p in prompts if not (cascade and p is classify)]
        texts = list(dict.fromkeys([p.text for p in first] + ([detect.text] if cascade else [])))
        prefixes: dict = {}
        rows = self._prompt_rows(embeds, windows, texts, prefixes) if texts else None
        answers = [a for p in first for a in self._answers(p, rows, windows)]
        if cascade:
            scores = D.first_token_scores(self.model, rows.logits(detect.text, windows), detect.scoring).tolist()
            passing = [w for w, s in zip(windows, scores) if s >= self.config.cascade_threshold]
            logger.debug("cascade: %d of %d windows pass %s >= %s", len(passing), len(windows), detect.prompt_id,
                         self.config.cascade_threshold)
            if passing:
                if classify.text not in texts:  # from the same window prefixes, passing windows only
                    rows = self._prompt_rows(embeds, passing, [classify.text], prefixes)
                answers += self._answers(classify, rows, passing)
        order = {p: n for n, p in enumerate(prompts)}
        return sorted(answers, key=lambda a: (a.item, order[a.prompt]))

    def _answers(self, prompt: Prompt, rows: _PromptRows, windows: Sequence[int]) -> list[WindowAnswer]:
        if prompt.first_token:
            scores = D.first_token_scores(self.model, rows.logits(prompt.text, windows), prompt.scoring).tolist()
            return [WindowAnswer(w, prompt, "yes" if s >= 0.5 else "no", _unit(s)) for w, s in zip(windows, scores)]
        if prompt.task == "classify" and self.config.candidates:
            max_rows, logits_bytes = self._candidate_budget()
            log_probs = D.candidate_log_probs(self.lm, rows.select(prompt.text, windows), self._candidate_ids,
                                              max_rows, logits_bytes)
            probs = torch.softmax(log_probs, dim=-1)
            best = probs.argmax(dim=-1).tolist()
            return [
                WindowAnswer(w, prompt, self.config.candidates[b], _unit(float(probs[n, b])))
                for n, (w, b) in enumerate(zip(windows, best))
            ]
        decoded = D.decode(self.lm, rows.select(prompt.text, windows), self.config.generation)
        return [
            WindowAnswer(w, prompt, self.model.tokenizer.decode(d.token_ids, skip_special_tokens=True).strip(),
                         _unit(math.exp(d.log_prob)))
            for w, d in zip(windows, decoded)
        ]  # fmt: skip

    def _candidate_budget(self) -> tuple[int, int]:
        """((row, candidate) pairs per pass, bytes for a pass's float32 logits).

        CPU: 256 pairs, 256 MiB. CUDA: half of the usable free memory for the copied caches (each
        pair holds its prompt's cache twice while it is copied and extended), a quarter for logits.
        """
        if self.model.device.type != "cuda":
            return self.config.candidate_rows or 256, 256 << 20
        free, _ = torch.cuda.mem_get_info(self.model.device)
        usable = free * self.config.memory_fraction
        longest = max(len(t) for t in self._tokens.values()) + self._audio_rows() + max(map(len, self._candidate_ids))
        per_pair = 2 * kv_bytes_per_token(self.model) * longest
        return self.config.candidate_rows or max(1, int(usable / 2) // per_pair), int(usable / 4)

    # ---------------------------------------------------------------- reference path

    def _answer_reference(self, embeds: torch.Tensor, prompts: Sequence[Prompt]) -> list[WindowAnswer]:
        items = list(range(embeds.shape[0]))
        classify = self._prompt("classify")
        if self.config.cascade_threshold is None or classify not in prompts:
            return self._ask_reference(embeds, [(i, p) for i in items for p in prompts])
        first = [p for p in prompts if p is not classify]
        answers = self._ask_reference(embeds, [(i, p) for i in items for p in first])
        detect = self._prompt("detect")
        p_yes = {a.item: a.score for a in answers if a.prompt is detect}
        if detect not in first:  # detection wanted only for the cascade: P(yes), no generation
            log_probs = self.model.next_token_log_probs(embeds, [detect.text] * len(items))
            p_yes = dict(zip(items, self.model.yes_no_probability(log_probs).tolist()))
        passing = [i for i in items if p_yes[i] >= self.config.cascade_threshold]
        answers += self._ask_reference(embeds, [(i, classify) for i in passing])
        return sorted(answers, key=lambda a: (a.item, prompts.index(a.prompt)))

    def _ask_reference(self, embeds: torch.Tensor, rows: Sequence[tuple[int, Prompt]]) -> list[WindowAnswer]:
        """(window, prompt) rows: one generate call + one scoring pass for all of them."""
        constrained = [(i, p) for i, p in rows if p.task == "classify" and self.config.candidates]
        generated = [(i, p) for i, p in rows if (i, p) not in constrained]
        answers = self._generate_rows(embeds, generated) if generated else []
        answers += self._candidate_rows_reference(embeds, constrained) if constrained else []
        order = {row: n for n, row in enumerate(rows)}
        return sorted(answers, key=lambda a: order[(a.item, a.prompt)])

    def _generate_rows(self, embeds: torch.Tensor, rows: Sequence[tuple[int, Prompt]]) -> list[WindowAnswer]:
        items = [i for i, _ in rows]
        queries = [p.text for _, p in rows]
        audio = embeds[items]  # (R, N, D)
        generated = self.model.generate(audio, queries, self.config.generation)
        first, totals = self.model.continuation_log_probs(
            audio, queries, [g.token_ids for g in generated], [g.stopped for g in generated]
        )
        p_yes = self.model.yes_no_probability(first) if any(p.scoring == "yes_no" for _, p in rows) else None
        answers = []
        for n, ((item, prompt), gen) in enumerate(zip(rows, generated)):
            score = float(p_yes[n]) if prompt.scoring == "yes_no" else math.exp(float(totals[n]))
            answers.append(WindowAnswer(item, prompt, gen.text, _unit(score)))
        return answers

    def _candidate_rows_reference(self, embeds: torch.Tensor, rows: Sequence[tuple[int, Prompt]]) -> list[WindowAnswer]:
        candidates = self.config.candidates or ()
        answers = []
        for prompt in dict.fromkeys(p for _, p in rows):  # in order, each prompt once
            items = [i for i, p in rows if p is prompt]
            probs = self.model.candidate_probabilities(embeds[items], prompt.text, candidates)  # (R, C)
            best = probs.argmax(dim=-1)
            for n, item in enumerate(items):
                answers.append(WindowAnswer(item, prompt, candidates[int(best[n])], float(probs[n, best[n]])))
        return answers


def _unit(score: float) -> float:
    return min(max(score, 0.0), 1.0)
