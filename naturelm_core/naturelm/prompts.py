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
changes, so answers to different questions never share a prompt_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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

Scoring = Literal["yes_no", "sequence"]


@dataclass(frozen=True)
class Prompt:
    """A question asked about every window."""

    prompt_id: str  # stable name stored with predictions, e.g. "naturelm-classify-common-v1"
    task: str  # which task's rows it produces ("detect", "classify", or a custom task name)
    text: str  # the query; the audio placeholder is prepended when missing
    scoring: Scoring = "sequence"  # "yes_no": score = P(yes); "sequence": the answer's probability


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

DEFAULT_PROMPTS: dict[str, Prompt] = {p.task: p for p in (DETECT_PROMPT, CLASSIFY_PROMPT)}


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
