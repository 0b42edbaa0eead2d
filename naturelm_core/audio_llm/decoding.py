"""Cached LLM passes for the audio-LLM family: shared prefixes, one-forward scores, decoding with early exit.

The reference path (`AudioLLM.generate` + `AudioLLM.continuation_log_probs`) recomputes every
row's whole prompt, generates every answer with Hugging Face's `generate` (finished rows keep
running until the slowest one ends) and then scores the answers in a second teacher-forced pass.
The functions here work on `RowState`s instead: LLM rows with a KV cache, an attention mask, the
next position id of each row and the logits for its next token. A state is

- started from embeddings (`CachedLM.extend(None, pieces)`), e.g. the rows every prompt of a
  window shares -- BOS, user header, `<Audio>`, the audio rows, `</Audio>` -- once per window;
- copied row by row, rows repeated as needed (`RowState.select`): a window's prefix cache goes to
  each of its prompts, a prompt's cache to each of its beams or candidate answers, without
  recomputing them;
- extended by more embeddings (`CachedLM.extend`), left-padded so that every row ends at the
  last column: its logits are the next-token distribution of each row;
- stepped one token per row (`CachedLM.step`) by the decoders.

Scores come out of the same passes: the log-probability of every chosen token and of the stop
tokens is read from the step's logits, so no second scoring pass is needed. `greedy_decode` and
`beam_decode` reproduce Hugging Face's greedy and beam search (transformers 5.23: the same
processors, the same -1e9 offsets, the same heuristic stop) but drop rows and beam groups as soon
as their answer is final. Padding slots are masked and position ids count real tokens only, so a
row's numbers equal those of the unshared path up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from naturelm_core.audio_llm.model import AudioLLM, GenerationOptions

#: Hugging Face beam search's "impossible" offset; kept identical so the same beams win.
BEAM_NEG = -1.0e9


@dataclass(frozen=True)
class Decoded:
    """One decoded answer and its probability."""

    token_ids: tuple[int, ...]  # the answer, stop token excluded
    stopped: bool  # ended on a stop token (False: hit max_new_tokens)
    log_prob: float  # sum of the answer tokens' log-probs (+ log P(stop) when stopped), [PAD] excluded


@dataclass
class LLMWork:
    """What went through the LLM: counted for the benchmark's FLOP and token rates."""

    forwards: int = 0  # LLM calls
    positions: int = 0  # row x column slots computed, padding included
    tokens: int = 0  # real (unmasked) positions among them
    logit_positions: int = 0  # positions whose vocabulary logits were computed

    def reset(self) -> None:
        self.forwards = self.positions = self.tokens = self.logit_positions = 0


@dataclass
class RowState:
    """LLM rows after some input: KV cache, attention mask, next position, next-token logits."""

    cache: DynamicCache  # per layer keys/values (R, H_kv, T, d)
    mask: torch.Tensor  # (R, T) long, 1 = real position
    next_position: torch.Tensor  # (R,) position id of each row's next token
    logits: torch.Tensor | None  # (R, V) float32 logits of each row's next token ([PAD] not masked); None if not computed

    def __len__(self) -> int:
        return self.mask.shape[0]

    def select(self, index: torch.Tensor | Sequence[int]) -> "RowState":
        """A new state holding rows `index` (repeats allowed: that expands the cache, no recompute)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.mask.device)
        layers = [(layer.keys.index_select(0, index), layer.values.index_select(0, index)) for layer in self.cache.layers]
        return RowState(
            cache=_cache_of(layers),
            mask=self.mask.index_select(0, index),
            next_position=self.next_position.index_select(0, index),
            logits=None if self.logits is None else self.logits.index_select(0, index),
        )


def _cache_of(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A DynamicCache holding these (keys, values) per layer as they are.

    transformers' own `DynamicCache(ddp_cache_data=...)` concatenates each onto an empty tensor,
    a second copy of every selected cache; this sets the layers' tensors directly (transformers
    5.23's `DynamicLayer` fields; the equality tests would catch a change).
    """
    cache = DynamicCache()
    for keys, values in layers:
        layer = DynamicLayer()
        layer.lazy_initialization(keys, values)  # dtype, device, is_initialized
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class CachedLM:
    """Runs the peft-wrapped Llama of an `AudioLLM` on `RowState`s.

    `length_bucket` rounds the length of every multi-token pass up to a multiple (extra columns
    are masked padding) so that shapes repeat from batch to batch.
    """

    def __init__(self, model: AudioLLM, length_bucket: int = 1, work: LLMWork | None = None) -> None:
        if length_bucket < 1:
            raise ValueError(f"length_bucket must be >= 1, got {length_bucket}")
        self.model = model
        self.length_bucket = length_bucket
        self.work = work if work is not None else LLMWork()
        self._embed = model.llama_model.get_input_embeddings()

    def embed(self, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Token ids (n,) -> input embeddings (n, D) in the LLM dtype."""
        return self._embed(torch.as_tensor(ids, dtype=torch.long, device=self.model.device))

    def _run(self, embeds, mask, positions, cache, keep: int, real_tokens: int) -> tuple[torch.Tensor, DynamicCache]:
        # logits_to_keep=0 would mean "all" to transformers: an empty index tensor means none.
        to_keep = keep if keep > 0 else torch.empty(0, dtype=torch.long, device=embeds.device)
        out = self.model.llama_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
            past_key_values=cache, use_cache=True, logits_to_keep=to_keep,
        )  # fmt: skip
        rows, length = embeds.shape[:2]
        self.work.forwards += 1
        self.work.positions += rows * length
        self.work.tokens += real_tokens
        self.work.logit_positions += rows * keep
        return out.logits.float(), out.past_key_values

    def extend(self, state: RowState | None, pieces: Sequence[torch.Tensor] | torch.Tensor,
               keep: int = 1) -> tuple[RowState, torch.Tensor]:
        """Append pieces[i] (n_i, D) to row i of `state` (None: start new rows); one forward.

        `pieces` is a list of (n_i, D) tensors -- rows given the same tensor object are filled in
        one copy -- or one (R, n, D) tensor. They are left-padded to a common, bucketed length, so
        each row's last piece token sits in the last column. Returns the new state and float32
        logits (R, keep, V) of the last `keep` columns (keep=0: none, e.g. for a prefix whose next
        token nobody asks for). `state`'s cache grows in place: pass a state you own (`select`).
        """
        device = self.model.device
        if isinstance(pieces, torch.Tensor):
            rows, longest = pieces.shape[:2]
            lengths = torch.full((rows,), longest, device=device)
        else:
            rows = len(pieces)
            lengths = torch.tensor([p.shape[0] for p in pieces], device=device)
            longest = int(lengths.max()) if rows else 0
        if state is not None and len(state) != rows:
            raise ValueError(f"extend: {rows} pieces for {len(state)} rows")
        if rows == 0 or int(lengths.min()) < 1:
            raise ValueError("extend: need at least one row, and every piece needs at least one token")
        width = _round_up(longest, self.length_bucket)
        keep = min(keep, width)
        piece_mask = (torch.arange(width, device=device)[None, :] >= width - lengths[:, None]).long()  # (R, width)
        if isinstance(pieces, torch.Tensor) and width == longest:
            embeds = pieces.to(self.model.llm_dtype)
        else:
            embeds = torch.zeros(rows, width, pieces[0].shape[-1], dtype=self.model.llm_dtype, device=device)
            same: dict[int, tuple[torch.Tensor, list[int]]] = {}
            for i, piece in enumerate(pieces):
                same.setdefault(id(piece), (piece, []))[1].append(i)
            for piece, members in same.values():
                embeds[torch.tensor(members, device=device), width - piece.shape[0] :] = piece
        if state is None:
            offsets = torch.zeros(rows, dtype=torch.long, device=device)
            mask, cache = piece_mask, None
        else:
            offsets, mask, cache = state.next_position, torch.cat([state.mask, piece_mask], dim=1), state.cache
        positions = offsets[:, None] + (piece_mask.cumsum(-1) - 1).clamp(min=0)  # (R, width)
        logits, cache = self._run(embeds, mask, positions, cache, keep, int(lengths.sum()))
        return RowState(cache, mask, offsets + lengths, logits[:, -1] if keep else None), logits

    def step(self, state: RowState, tokens: torch.Tensor) -> RowState:
        """Feed one token per row (R,); `state`'s cache grows in place."""
        embeds = self._embed(tokens.to(self.model.device))[:, None]  # (R, 1, D)
        ones = torch.ones(len(state), 1, dtype=state.mask.dtype, device=state.mask.device)
        mask = torch.cat([state.mask, ones], dim=1)
        logits, cache = self._run(embeds, mask, state.next_position[:, None], state.cache, 1, len(state))
        return RowState(cache, mask, state.next_position + 1, logits[:, -1])


# ------------------------------------------------------------------------------ scores


def score_log_probs(logits: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Log-probabilities for scores: [PAD] excluded from the distribution (its row is not released)."""
    out = logits.clone()
    out[..., pad_id] = float("-inf")
    out -= torch.logsumexp(out, dim=-1, keepdim=True)  # one copy of the logits, not two
    return out


def first_token_scores(model: AudioLLM, logits: torch.Tensor, scoring: str) -> torch.Tensor:
    """Scores (R,) of first-token prompts from next-token logits (R, V): P(yes) or 1 - P(None)."""
    log_probs = score_log_probs(logits, model.pad_id)
    if scoring == "yes_no":
        return model.yes_no_probability(log_probs)
    if scoring == "not_none":
        return model.not_none_probability(log_probs)
    raise ValueError(f"scoring {scoring!r} is not scored from the first token")


def candidate_log_probs(lm: CachedLM, state: RowState, candidates: Sequence[Sequence[int]], max_rows: int,
                        logits_bytes: int = 256 << 20) -> torch.Tensor:
    """log P(candidate | row) (R, C): teacher forced, stop term included, [PAD] excluded.

    Each row's cache (its whole prompt) is copied to each candidate and only the candidate's
    tokens are run: at most `max_rows` (row, candidate) pairs per pass, fewer when their float32
    logits would pass `logits_bytes`. The first candidate token's log-prob comes from the state's
    own next-token logits.
    """
    model = lm.model
    device = model.device
    rows, n_cand = len(state), len(candidates)
    if any(len(c) == 0 for c in candidates):
        raise ValueError("candidate_log_probs: a candidate has no tokens")
    first = score_log_probs(state.logits, model.pad_id)  # (R, V)
    stops = torch.tensor(model.stop_ids, device=device)
    vocab = state.logits.shape[-1]
    width = _round_up(max(len(c) for c in candidates), lm.length_bucket)
    per_pass = max(1, min(max_rows, logits_bytes // (width * vocab * 4)))
    embedded = [lm.embed(c) for c in candidates]  # once each: rows sharing one are filled together
    # Per candidate, right-aligned like its pass: the token each column predicts (the last column
    # predicts a stop token), and which columns count.
    targets = torch.zeros(n_cand, width, dtype=torch.long, device=device)
    valid = torch.zeros(n_cand, width, dtype=torch.bool, device=device)
    for c, ids in enumerate(candidates):
        if len(ids) > 1:
            targets[c, width - len(ids) : width - 1] = torch.tensor(ids[1:], device=device)
            valid[c, width - len(ids) : width - 1] = True
    first_ids = torch.tensor([c[0] for c in candidates], device=device)
    row_of = torch.arange(rows, device=device).repeat_interleave(n_cand)  # pair p = (row_of[p], cand_of[p])
    cand_of = torch.arange(n_cand, device=device).repeat(rows)
    out = torch.empty(rows * n_cand, dtype=torch.float32, device=device)
    for start in range(0, rows * n_cand, per_pass):
        pairs = slice(start, min(rows * n_cand, start + per_pass))
        row_idx, cand_idx = row_of[pairs], cand_of[pairs]
        _, logits = lm.extend(state.select(row_idx), [embedded[c] for c in cand_idx.tolist()], keep=width)
        logits[..., model.pad_id] = float("-inf")  # (n, w, V), ours: edited in place
        norm = torch.logsumexp(logits, dim=-1)  # (n, w)
        w = logits.shape[1]  # this pass's longest candidate (bucketed): the right-aligned columns
        chosen = logits.gather(2, targets[cand_idx, width - w :][..., None])[..., 0]
        following = (chosen - norm).masked_fill(~valid[cand_idx, width - w :], 0.0)
        stop = torch.logsumexp(logits[:, -1][:, stops], dim=-1) - norm[:, -1]
        out[pairs] = first[row_idx, first_ids[cand_idx]] + following.sum(1) + stop
        del logits
    return out.view(rows, n_cand)


# ------------------------------------------------------------------------------ decoding


def _process_(scores: torch.Tensor, step: int, history: torch.Tensor | None, options: GenerationOptions,
              stops: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The generation processors of `AudioLLM._hf_generation_config`, in Hugging Face's order,
    in place on scores (R, V): repetition penalty over history (R, t), no stop before
    min_new_tokens, never [PAD]."""
    if options.repetition_penalty != 1.0 and history is not None and history.shape[1]:
        seen = scores.gather(1, history)
        penalty = options.repetition_penalty
        scores.scatter_(1, history, torch.where(seen < 0, seen * penalty, seen / penalty))
    if step < options.min_new_tokens:
        scores.index_fill_(1, stops, float("-inf"))
    scores[:, pad_id] = float("-inf")
    return scores


def greedy_decode(lm: CachedLM, state: RowState, options: GenerationOptions) -> list[Decoded]:
    """Greedy answers for every row of `state` (consumed); finished rows leave the batch at once."""
    model = lm.model
    stops = torch.tensor(model.stop_ids, device=model.device)
    rows = list(range(len(state)))  # original row of each active row
    tokens: list[list[int]] = [[] for _ in rows]
    totals = [0.0 for _ in rows]
    stopped = [False for _ in rows]
    history: torch.Tensor | None = None  # (A, step) tokens generated so far by the active rows
    for step in range(options.max_new_tokens):
        scores = score_log_probs(state.logits, model.pad_id)
        choice = _process_(state.logits.clone(), step, history, options, stops, model.pad_id).argmax(-1)  # (A,)
        token_lp = scores.gather(1, choice[:, None])[:, 0]
        stop_lp = torch.logsumexp(scores[:, stops], dim=-1)
        is_stop = torch.isin(choice, stops)
        last = step + 1 == options.max_new_tokens
        keep = []
        for a, (row, tok, hit, t_lp, s_lp) in enumerate(
            zip(rows, choice.tolist(), is_stop.tolist(), token_lp.tolist(), stop_lp.tolist())
        ):
            if hit:
                totals[row] += s_lp
                stopped[row] = True
                continue
            tokens[row].append(tok)
            totals[row] += t_lp
            if not last:
                keep.append(a)
        if not keep:
            break
        history = choice[:, None] if history is None else torch.cat([history, choice[:, None]], dim=1)
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=model.device)
            state, choice, history = state.select(index), choice[index], history[index]
            rows = [rows[a] for a in keep]
        state = lm.step(state, choice)
    return [Decoded(tuple(t), s, total) for t, s, total in zip(tokens, stopped, totals)]


def _gather(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor (G, K, ...) gathered along dim 1 with index (G, K') -> (G, K', ...)."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def beam_decode(lm: CachedLM, state: RowState, options: GenerationOptions) -> list[Decoded]:
    """Beam-search answers for every row of `state` (consumed), one beam group per row.

    Mirrors Hugging Face's vectorised beam search with `early_stopping=False`: top (1 + stops) x
    beams candidates per group, finished hypotheses scored sum log p / length ** length_penalty,
    a group done once its best running beam cannot beat its worst finished one. A done group's
    answer can no longer change there either, so here it leaves the batch; the slowest group no
    longer holds the others' rows. Log-probs for the choice include [PAD] in the normaliser (as
    `generate` computes them, [PAD] then suppressed); the returned scores exclude it.
    """
    model = lm.model
    device = model.device
    beams, max_new, length_penalty = options.num_beams, options.max_new_tokens, options.length_penalty
    stops = torch.tensor(model.stop_ids, device=device)
    hidden_bos = model.hidden_bos
    vocab = state.logits.shape[-1]
    n_keep = max(2, 1 + len(model.stop_ids)) * beams  # candidates kept per group and step
    top_beams = torch.arange(n_keep, device=device) < beams  # candidates that may finish a hypothesis
    groups = len(state)
    rows = list(range(groups))  # original row of each active group
    run_seq = torch.full((groups, beams, max_new), model.pad_id, dtype=torch.long, device=device)
    run_scores = torch.zeros(groups, beams, device=device)
    run_scores[:, 1:] = BEAM_NEG  # step 0: only the first (of identical) beams may be extended
    run_total = torch.zeros(groups, beams, dtype=torch.float64, device=device)
    fin_seq = run_seq.clone()
    fin_scores = torch.full((groups, beams), BEAM_NEG, device=device)
    fin_total = torch.zeros(groups, beams, dtype=torch.float64, device=device)
    fin_stopped = torch.zeros(groups, beams, dtype=torch.bool, device=device)
    is_finished = torch.zeros(groups, beams, dtype=torch.bool, device=device)
    improvable = torch.ones(groups, 1, dtype=torch.bool, device=device)
    results: dict[int, Decoded] = {}

    for step in range(max_new):
        logits = state.logits  # (G, V) at step 0 (one row per group), else (G * K, V)
        if step == 0:
            logits = logits[:, None].expand(-1, beams, -1).reshape(-1, vocab)
        active = run_seq.shape[0]
        history = run_seq[:, :, :step].reshape(active * beams, step)
        log_probs = _process_(torch.log_softmax(logits, dim=-1), step, history, options, stops, model.pad_id)
        scored = score_log_probs(logits, model.pad_id).view(active, beams, vocab)
        accumulated = (log_probs.view(active, beams, vocab) + run_scores[:, :, None]).view(active, -1)
        top_lp, top_idx = torch.topk(accumulated, n_keep)  # (G, n_keep)
        source, token = top_idx // vocab, top_idx % vocab
        top_seq = _gather(run_seq, source)
        top_seq[:, :, step] = token
        is_stop = torch.isin(token, stops)
        hits = is_stop | (step + 1 >= max_new)
        # Answer log-probs ([PAD] excluded): the chosen token's, or P(any stop) for a stop.
        group = torch.arange(active, device=device)[:, None]
        token_lp = scored[group, source, token]  # (G, n_keep)
        stop_lp = _gather(torch.logsumexp(scored[..., stops], dim=-1), source)  # (G, n_keep)
        top_total = _gather(run_total, source) + torch.where(is_stop, stop_lp, token_lp).double()

        # Running beams for the next step: the best candidates that did not just finish.
        running_lp = top_lp + hits.float() * BEAM_NEG
        pick = torch.topk(running_lp, beams).indices
        run_seq, run_scores, run_total = _gather(top_seq, pick), _gather(running_lp, pick), _gather(top_total, pick)
        run_source = _gather(source, pick)  # (G, K) beam each new running beam extends

        # Finished hypotheses: merge the candidates that just finished among the top K.
        just = hits & top_beams[None]
        # Hypothesis lengths: the answer's tokens with the stop counted (step + 1). With a hidden BOS
        # (transformers 4.28, SALMONN's pin) the BOS counts and the stop does not: the same for a
        # stop, one more for a beam still open at max_new_tokens.
        lengths = torch.full_like(top_lp, float(step + 1))
        if hidden_bos:
            lengths = lengths + (~is_stop).float()
        finish_lp = top_lp / lengths**length_penalty
        finish_lp = finish_lp + (~improvable).float() * BEAM_NEG + (~just).float() * BEAM_NEG
        merged = torch.cat([fin_scores, finish_lp], dim=1)
        best = torch.topk(merged, beams).indices
        fin_seq = _gather(torch.cat([fin_seq, top_seq], dim=1), best)
        fin_scores = _gather(merged, best)
        fin_total = _gather(torch.cat([fin_total, top_total], dim=1), best)
        fin_stopped = _gather(torch.cat([fin_stopped, is_stop], dim=1), best)
        is_finished = _gather(torch.cat([is_finished, just], dim=1), best)

        # 4.28 judges "done" by the best candidate of the step (a stop included) over the length so far.
        best_possible = (top_lp[:, :1] if hidden_bos else run_scores[:, :1]) / ((step + 1) ** length_penalty)
        worst_finished = torch.where(is_finished, fin_scores.min(dim=1, keepdim=True).values, BEAM_NEG)
        improvable = improvable & (best_possible > worst_finished).any(dim=-1, keepdim=True)

        alive = improvable[:, 0] & (step + 1 < max_new)
        alive_list = alive.tolist()
        done = [g for g, a in enumerate(alive_list) if not a]
        if done:
            seqs, stopped, totals = fin_seq[done, 0].tolist(), fin_stopped[done, 0].tolist(), fin_total[done, 0].tolist()
            for g, seq, stop, total in zip(done, seqs, stopped, totals):
                ids = []
                for tok in seq:
                    if tok in model.stop_ids or tok == model.pad_id:
                        break
                    ids.append(tok)
                results[rows[g]] = Decoded(tuple(ids), bool(stop), float(total))
        keep = [g for g, a in enumerate(alive_list) if a]
        if not keep:
            break
        keep_t = torch.tensor(keep, device=device)
        # Cache rows for the kept groups' beams: at step 0 each group has one row, later K.
        base = keep_t[:, None] if step == 0 else keep_t[:, None] * beams + run_source[keep_t]
        if step == 0:
            base = base.expand(-1, beams)
        state = state.select(base.reshape(-1))
        run_seq, run_scores, run_total = run_seq[keep_t], run_scores[keep_t], run_total[keep_t]
        fin_seq, fin_scores, fin_total = fin_seq[keep_t], fin_scores[keep_t], fin_total[keep_t]
        fin_stopped, is_finished, improvable = fin_stopped[keep_t], is_finished[keep_t], improvable[keep_t]
        rows = [rows[g] for g in keep]
        state = lm.step(state, run_seq[:, :, step].reshape(-1))
    return [results[r] for r in range(groups)]


def decode(lm: CachedLM, state: RowState, options: GenerationOptions) -> list[Decoded]:
    """Greedy (num_beams == 1) or beam-search answers for every row of `state` (consumed)."""
    if options.num_beams == 1:
        return greedy_decode(lm, state, options)
    return beam_decode(lm, state, options)


__all__ = [
    "BEAM_NEG", "CachedLM", "Decoded", "LLMWork", "RowState", "beam_decode", "candidate_log_probs", "decode",
    "first_token_scores", "greedy_decode", "score_log_probs",
]  # fmt: skip
