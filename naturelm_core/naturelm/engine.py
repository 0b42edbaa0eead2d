"""Batched NatureLM-audio inference: encode each window once, ask every prompt on it.

The reference answers one (window, question) per `generate` call and re-encodes the audio for
every question (or hits an approximate cache). Here a batch of windows is encoded once, and all
(window, prompt) rows go through one `generate` call: left padding lets prompts of different
lengths share a batch. Each generated answer is then scored in one teacher-forced pass (P(yes) for
yes/no prompts, the answer's probability otherwise; see `naturelm.py`).

Options: constrained classification (score a fixed candidate list instead of generating), and a
cascade (ask `classify` only of windows whose detection P(yes) reaches a threshold).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from naturelm_core.naturelm.model import GenerationOptions, NatureLM
from naturelm_core.naturelm.prompts import DEFAULT_PROMPTS, Prompt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """How the engine batches and which options it applies."""

    batch_size: int = 4  # windows encoded and asked together (rows per generate = this x prompts)
    cascade_threshold: float | None = None  # classify only windows with detect P(yes) >= this
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    candidates: tuple[str, ...] | None = None  # classify by scoring these names instead of generating

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.cascade_threshold is not None and not 0.0 <= self.cascade_threshold <= 1.0:
            raise ValueError(f"cascade_threshold must lie in [0, 1], got {self.cascade_threshold}")
        if self.candidates is not None and not self.candidates:
            raise ValueError("candidates must be None or a non-empty list of names")


@dataclass(frozen=True)
class WindowAnswer:
    """The answer to one prompt about one window."""

    item: int  # row of the input batch
    prompt: Prompt
    text: str  # generated answer (or the best candidate)
    score: float  # P(yes) for yes/no prompts; the answer's probability otherwise


class Engine:
    """Runs a set of prompts over batches of windows on one loaded `NatureLM`."""

    def __init__(
        self, model: NatureLM, prompts: Sequence[Prompt] | None = None, config: EngineConfig = EngineConfig()
    ) -> None:
        self.model = model
        self.prompts = list(prompts) if prompts is not None else list(DEFAULT_PROMPTS.values())
        self.config = config
        tasks = [p.task for p in self.prompts]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"one prompt per task, got tasks {tasks}")
        if config.cascade_threshold is not None:
            detect = self._prompt("detect")
            if detect is None or detect.scoring != "yes_no":
                raise ValueError("a cascade needs a yes/no 'detect' prompt")

    def _prompt(self, task: str) -> Prompt | None:
        return next((p for p in self.prompts if p.task == task), None)

    # ---------------------------------------------------------------- public API

    def encode(self, wave: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, S) 16 kHz audio -> audio embeddings (B, N, D), encoded batch_size rows at a time."""
        wave = torch.as_tensor(wave, dtype=torch.float32)
        size = self.config.batch_size
        return torch.cat([self.model.encode_audio(wave[i : i + size]) for i in range(0, wave.shape[0], size)])

    def run(self, wave: np.ndarray | torch.Tensor, tasks: Sequence[str] | None = None) -> list[WindowAnswer]:
        """Answers for every window of `wave` (B, S) and every prompt whose task is in `tasks`."""
        wanted = [p for p in self.prompts if tasks is None or p.task in tasks]
        missing = sorted(set(tasks or ()) - {p.task for p in wanted})
        if missing:
            raise ValueError(f"no prompt for task(s) {missing}; prompts cover {[p.task for p in self.prompts]}")
        wave = torch.as_tensor(wave, dtype=torch.float32)
        answers: list[WindowAnswer] = []
        size = self.config.batch_size
        for start in range(0, wave.shape[0], size):
            embeds = self.model.encode_audio(wave[start : start + size])  # once per window
            for answer in self.answer(embeds, wanted):
                answers.append(WindowAnswer(answer.item + start, answer.prompt, answer.text, answer.score))
        return answers

    def answer(self, embeds: torch.Tensor, prompts: Sequence[Prompt]) -> list[WindowAnswer]:
        """Ask `prompts` about already-encoded windows (B, N, D); applies the cascade."""
        items = list(range(embeds.shape[0]))
        classify = self._prompt("classify")
        if self.config.cascade_threshold is None or classify not in prompts:
            return self.ask(embeds, [(i, p) for i in items for p in prompts])
        first = [p for p in prompts if p is not classify]
        answers = self.ask(embeds, [(i, p) for i in items for p in first])
        detect = self._prompt("detect")
        p_yes = {a.item: a.score for a in answers if a.prompt is detect}
        if detect not in first:  # detection wanted only for the cascade: P(yes), no generation
            log_probs = self.model.next_token_log_probs(embeds, [detect.text] * len(items))
            p_yes = dict(zip(items, self.model.yes_no_probability(log_probs).tolist()))
        passing = [i for i in items if p_yes[i] >= self.config.cascade_threshold]
        logger.debug("cascade: %d of %d windows pass P(yes) >= %s", len(passing), len(items), self.config.cascade_threshold)
        answers += self.ask(embeds, [(i, classify) for i in passing])
        return sorted(answers, key=lambda a: (a.item, prompts.index(a.prompt)))

    def ask(self, embeds: torch.Tensor, rows: Sequence[tuple[int, Prompt]]) -> list[WindowAnswer]:
        """Answer (window, prompt) rows: one generate call + one scoring pass for all of them."""
        constrained = [(i, p) for i, p in rows if p.task == "classify" and self.config.candidates]
        generated = [(i, p) for i, p in rows if (i, p) not in constrained]
        answers = self._generate_rows(embeds, generated) if generated else []
        answers += self._candidate_rows(embeds, constrained) if constrained else []
        order = {row: n for n, row in enumerate(rows)}
        return sorted(answers, key=lambda a: order[(a.item, a.prompt)])

    # ---------------------------------------------------------------- internals

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
            answers.append(WindowAnswer(item, prompt, gen.text, min(max(score, 0.0), 1.0)))
        return answers

    def _candidate_rows(self, embeds: torch.Tensor, rows: Sequence[tuple[int, Prompt]]) -> list[WindowAnswer]:
        candidates = self.config.candidates or ()
        answers = []
        for prompt in dict.fromkeys(p for _, p in rows):  # in order, each prompt once
            items = [i for i, p in rows if p is prompt]
            probs = self.model.candidate_probabilities(embeds[items], prompt.text, candidates)  # (R, C)
            best = probs.argmax(dim=-1)
            for n, item in enumerate(items):
                answers.append(WindowAnswer(item, prompt, candidates[int(best[n])], float(probs[n, best[n]])))
        return answers
