"""Prompts of the audio-LLM family: questions, how answers become scores, token pieces.

A member's LLM input for one clip is `[BOS] [tokens before the audio] [audio embeddings] [tokens
after the audio]`: the two text halves are tokenized separately without special-token insertion
and one BOS is added as a token id. Each member's `prompts` module holds its template, its
default questions and named prompt sets; this module holds what they share.

Prompt ids are stable names stored with every prediction; change the id whenever the text
changes, so answers to different questions never share a prompt_id. Prompt sets (which question
each task asks) are data: a member's `PROMPT_SETS` holds the published ones by name, and
`load_prompt_set` also reads a JSON file of the same shape.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Mapping, get_args

#: First-token spellings that count as a yes / a no for detection scoring, as the tokenizer spells
#: a word at the start of an answer (NatureLM's answer follows "\n\n"; SALMONN's SentencePiece
#: tokenizer gives every word its dummy-prefix space, as Vicuna starts an answer).
YES_WORDS: tuple[str, ...] = ("Yes", "yes", "YES")
NO_WORDS: tuple[str, ...] = ("No", "no", "NO")
#: First-token spellings of an empty species list ("None"), for the species-list detection prompt.
NONE_WORDS: tuple[str, ...] = ("None", "none", "NONE")

#: How an answer becomes a score. The first two need only the next-token distribution after the
#: prompt (one forward, no decoding):
#: - "yes_no": P(yes) renormalised over the yes and no spellings;
#: - "not_none": 1 - P(the answer starts with a "None" spelling): the chance that the model names
#:   something, for prompts that ask for a species list "if any";
#: - "sequence": the probability of the generated (or candidate) answer, stop term included.
Scoring = Literal["yes_no", "not_none", "sequence"]
FIRST_TOKEN_SCORINGS: frozenset[str] = frozenset({"yes_no", "not_none"})


@dataclass(frozen=True)
class Prompt:
    """A question asked about every window."""

    prompt_id: str  # stable name stored with predictions, e.g. "naturelm-classify-common-v1"
    task: str  # which task's rows it produces ("detect", "classify", or a custom task name)
    text: str  # the query; the audio placeholder is prepended when missing
    scoring: Scoring = "sequence"  # see `Scoring`

    def __post_init__(self) -> None:
        if self.scoring not in get_args(Scoring):
            raise ValueError(f"prompt {self.prompt_id!r}: scoring {self.scoring!r} is not one of {get_args(Scoring)}")
        if not self.prompt_id.strip() or not self.task.strip() or not self.text.strip():
            raise ValueError(f"prompt {self.prompt_id!r}: prompt_id, task and text must be non-empty")

    @property
    def first_token(self) -> bool:
        """Scored from the next-token distribution after the prompt alone (nothing is generated)."""
        return self.scoring in FIRST_TOKEN_SCORINGS


def load_prompt_set(name_or_path: str, sets: Mapping[str, tuple[Prompt, ...]]) -> tuple[Prompt, ...]:
    """A named set of `sets`, or a JSON file ``{"prompts": [{prompt_id, task, text, scoring}]}``.

    ValueError naming the set or the file and what is wrong: unknown name, unreadable or malformed
    file, bad fields, or two prompts for one task.
    """
    if name_or_path in sets:
        return sets[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"prompt set {name_or_path!r}: not one of {sorted(sets)} and not a .json file")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["prompts"]
        found = tuple(Prompt(**entry) for entry in entries)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"prompt set {path}: cannot read it: {type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"prompt set {path}: {exc}") from None
    tasks = [p.task for p in found]
    if not found or len(set(tasks)) != len(tasks):
        raise ValueError(f"prompt set {path}: needs one prompt per task, got tasks {tasks}")
    return found


def prompt_set_dict(prompts: tuple[Prompt, ...]) -> dict[str, dict]:
    """task -> the prompt's fields, JSON-ready (what a run's settings record)."""
    return {p.task: asdict(p) for p in prompts}


@dataclass(frozen=True)
class PromptTokens:
    """Token ids on either side of the audio embeddings of one prompt."""

    before_audio: tuple[int, ...]  # BOS + user header + "<Audio>"
    after_audio: tuple[int, ...]  # "</Audio> {query}" + eot + assistant header + "\n\n"

    def __len__(self) -> int:
        return len(self.before_audio) + len(self.after_audio)


def special_token_id(tokenizer, token: str) -> int:
    """Id of an added special token; KeyError-like ValueError naming it when the vocab lacks it."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {token!r} token (is this the member's tokenizer?)")
    return int(token_id)


def single_token_ids(tokenizer, words: tuple[str, ...]) -> tuple[int, ...]:
    """Ids of the words in `words` that the tokenizer keeps as one token (deduplicated)."""
    ids: list[int] = []
    for word in words:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(pieces) == 1 and pieces[0] not in ids:
            ids.append(pieces[0])
    return tuple(ids)


def none_token_ids(tokenizer) -> tuple[int, ...]:
    """Ids of the single-token "None" spellings (for "not_none" scoring); ValueError when there are none."""
    ids = single_token_ids(tokenizer, NONE_WORDS)
    if not ids:
        raise ValueError(f"tokenizer splits every spelling of {NONE_WORDS} into several tokens")
    return ids


def yes_no_token_ids(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(yes ids, no ids) used for P(yes); ValueError when either side has no single-token form."""
    yes_ids = single_token_ids(tokenizer, YES_WORDS)
    no_ids = single_token_ids(tokenizer, NO_WORDS)
    if not yes_ids or not no_ids:
        raise ValueError(
            f"tokenizer splits every spelling of {YES_WORDS} or {NO_WORDS} into several tokens; "
            "cannot score yes/no on the first answer token"
        )
    return yes_ids, no_ids
