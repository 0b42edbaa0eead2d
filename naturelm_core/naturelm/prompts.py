"""NatureLM-audio prompts: the published chat template, the default questions, token pieces.

The model was trained on one user turn of the Llama 3 chat format without a system header
(reference report §1.6). The LLM input for one window is

    <|begin_of_text|> <|start_header_id|>user<|end_header_id|>\\n\\n<Audio>
    [N audio embeddings]
    </Audio> {query}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n

with exactly one BOS, added as a token id (never through the tokenizer's own BOS logic), and the
text on either side of the audio tokenized separately without special-token insertion: the
header tokens are recognised as added tokens, ``<Audio>`` / ``</Audio>`` are plain text.

Prompt ids are stable names stored with every prediction; change the id whenever the text
changes, so answers to different questions never share a prompt_id. Prompt sets (which question
each task asks) are data: `PROMPT_SETS` holds the published ones by name, and `load_prompt_set`
also reads a JSON file of the same shape.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

#: Marks where the audio embeddings go inside a query.
AUDIO_PLACEHOLDER = "<AudioHere>"
#: Prepended to a query that does not already contain it (the reference processor's rule).
AUDIO_PREFIX = "<Audio><AudioHere></Audio> "
#: The published `prompt_template` (configs/inference.yml); `{}` receives the query.
PROMPT_TEMPLATE = (
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)

BOS_TOKEN = "<|begin_of_text|>"
#: Generation stops on any of these (Llama 3.1's generation_config eos list, by name).
STOP_TOKENS: tuple[str, ...] = ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>")
#: Added by NatureLM to the Llama tokenizer (id 128256 for the real vocabulary). Never generated.
PAD_TOKEN = "[PAD]"

#: First-token spellings that count as a yes / a no for detection scoring. The answer follows
#: "\n\n" directly, so no leading-space variants are needed.
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


#: Detection: our own yes/no phrasing (the published model was not trained on one fixed detection
#: question; BEANS-Zero's detection sets ask for species lists). Scored as P(yes).
DETECT_PROMPT = Prompt(
    prompt_id="naturelm-detect-v1",
    task="detect",
    text="Is there an animal vocalizing in the audio? Answer yes or no.",
    scoring="yes_no",
)
#: Classification: the README / BEANS-Zero common-name question.
CLASSIFY_PROMPT = Prompt(
    prompt_id="naturelm-classify-common-v1",
    task="classify",
    text="What is the common name for the focal species in the audio? Answer:",
    scoring="sequence",
)
#: Captioning, for custom runs (the README's CLI example).
CAPTION_PROMPT = Prompt(
    prompt_id="naturelm-caption-v1", task="caption", text="Caption the audio", scoring="sequence"
)

#: The published prompting guide's core question (Earth Species Project, for NatureLM-audio v1.1 in
#: their Hugging Face Space; reference report, "prompting and serving facts"): one prompt that both
#: detects and names. Asked once per window, it answers both tasks: detect scores 1 - P("None") from
#: its first-token distribution, classify decodes the names from the same prompt rows.
GUIDE_SPECIES_TEXT = "What are the common names for the species in the audio, if any?"
GUIDE_DETECT_PROMPT = Prompt(
    prompt_id="naturelm-guide-species-v1", task="detect", text=GUIDE_SPECIES_TEXT, scoring="not_none"
)
GUIDE_CLASSIFY_PROMPT = Prompt(
    prompt_id="naturelm-guide-species-v1", task="classify", text=GUIDE_SPECIES_TEXT, scoring="sequence"
)

DEFAULT_PROMPTS: dict[str, Prompt] = {p.task: p for p in (DETECT_PROMPT, CLASSIFY_PROMPT)}

#: Named prompt sets: which question each task asks. Change a set's name when its prompts change.
PROMPT_SETS: dict[str, tuple[Prompt, ...]] = {
    "naturelm-default-v1": (DETECT_PROMPT, CLASSIFY_PROMPT, CAPTION_PROMPT),
    "prompting-guide-v1": (GUIDE_DETECT_PROMPT, GUIDE_CLASSIFY_PROMPT, CAPTION_PROMPT),
}
DEFAULT_PROMPT_SET = "naturelm-default-v1"


def load_prompt_set(name_or_path: str) -> tuple[Prompt, ...]:
    """A named set of `PROMPT_SETS`, or a JSON file ``{"prompts": [{prompt_id, task, text, scoring}]}``.

    ValueError naming the set or the file and what is wrong: unknown name, unreadable or malformed
    file, bad fields, or two prompts for one task.
    """
    if name_or_path in PROMPT_SETS:
        return PROMPT_SETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"prompt set {name_or_path!r}: not one of {sorted(PROMPT_SETS)} and not a .json file")
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


def format_prompt(query: str, template: str = PROMPT_TEMPLATE) -> str:
    """The full user turn for `query`: audio prefix added when missing, stripped, templated."""
    if AUDIO_PLACEHOLDER not in query:
        query = AUDIO_PREFIX + query
    text = template.format(query.strip())
    if text.count(AUDIO_PLACEHOLDER) != 1:
        # The reference silently drops middle text parts for several placeholders; refuse.
        raise ValueError(
            f"prompt must contain {AUDIO_PLACEHOLDER} exactly once, got "
            f"{text.count(AUDIO_PLACEHOLDER)} in {query!r}"
        )
    return text


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
        raise ValueError(f"tokenizer has no {token!r} token (is this a Llama 3 tokenizer?)")
    return int(token_id)


def tokenize_prompt(tokenizer, query: str, template: str = PROMPT_TEMPLATE) -> PromptTokens:
    """Split the templated prompt at the audio placeholder and tokenize both sides."""
    before, after = format_prompt(query, template).split(AUDIO_PLACEHOLDER)
    bos = special_token_id(tokenizer, BOS_TOKEN)
    before_ids = tokenizer(before, add_special_tokens=False)["input_ids"]
    after_ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    return PromptTokens(before_audio=(bos, *before_ids), after_audio=tuple(after_ids))


def stop_token_ids(tokenizer) -> tuple[int, ...]:
    """Ids of the Llama 3 stop tokens (eot, end_of_text, eom)."""
    return tuple(special_token_id(tokenizer, t) for t in STOP_TOKENS)


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
