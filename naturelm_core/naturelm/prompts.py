"""NatureLM-audio prompts: the published chat template, the default questions, token pieces.

The model was trained on one user turn of the Llama 3 chat format without a system header
(reference report §1.6). The LLM input for one window is

    <|begin_of_text|> <|start_header_id|>user<|end_header_id|>\\n\\n<Audio>
    [N audio embeddings]
    </Audio> {query}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n

with exactly one BOS, added as a token id (never through the tokenizer's own BOS logic), and the
text on either side of the audio tokenized separately without special-token insertion: the
header tokens are recognised as added tokens, ``<Audio>`` / ``</Audio>`` are plain text.
What every member shares (the `Prompt` record, scorings, yes/no ids) is in `audio_llm.prompts`
and re-exported here.
"""

from __future__ import annotations

from naturelm_core.audio_llm import prompts as _shared
from naturelm_core.audio_llm.prompts import (  # noqa: F401  (re-exported: the member's prompt API)
    FIRST_TOKEN_SCORINGS, NO_WORDS, NONE_WORDS, YES_WORDS, Prompt, PromptTokens, Scoring, none_token_ids,
    prompt_set_dict, single_token_ids, special_token_id, yes_no_token_ids,
)

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
    """A named set of `PROMPT_SETS`, or a JSON file (see `audio_llm.prompts.load_prompt_set`)."""
    return _shared.load_prompt_set(name_or_path, PROMPT_SETS)


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


