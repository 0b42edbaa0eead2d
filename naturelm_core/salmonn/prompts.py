"""SALMONN prompts: the reference's user/assistant template, default questions, token pieces.

`cli_inference.py` of the reference asks `USER: <Speech><SpeechHere></Speech> {query}\\nASSISTANT:`
(a real newline, nothing after the colon, the query `.strip()`ped) and splits it at
`<SpeechHere>` (facts: `reference/salmonn.md` §1.8, trap 8). The two halves are tokenized
separately, without BOS/EOS, each with SentencePiece's dummy-prefix space (so the half after the
audio starts with a `▁` piece, which one tokenization of the whole prompt would not give), and one
BOS id goes in front: the LLM input is

    [<s>] [tokens of "USER: <Speech>"] [88 speech embeddings] [tokens of "</Speech> {query}\\nASSISTANT:"]

`<Speech>` / `</Speech>` are plain text; "\\n" is the byte piece `<0x0A>`. SALMONN was trained for
speech, audio and music questions, not for bird species; the detection prompt is our yes/no
phrasing (scored as P(yes) from the first answer token), classification asks for the animal.
"""

from __future__ import annotations

from naturelm_core.audio_llm import prompts as _shared
from naturelm_core.audio_llm.prompts import (  # noqa: F401  (re-exported: the member's prompt API)
    FIRST_TOKEN_SCORINGS, NO_WORDS, NONE_WORDS, YES_WORDS, Prompt, PromptTokens, Scoring, none_token_ids,
    prompt_set_dict, single_token_ids, yes_no_token_ids,
)

#: Marks where the speech embeddings go inside a query.
SPEECH_PLACEHOLDER = "<SpeechHere>"
#: Prepended to a query that does not hold the placeholder (`cli_inference.py`).
SPEECH_PREFIX = "<Speech><SpeechHere></Speech> "
#: `configs/decode_config.yaml` prompt_template (real newline, no space after the colon).
PROMPT_TEMPLATE = "USER: {}\nASSISTANT:"
BOS_TOKEN = "<s>"
#: The reference stops on id 2, `</s>` (Vicuna's generation_config eos; see `checkpoint.stop_ids`).
EOS_TOKEN = "</s>"
#: Added by the reference (`add_special_tokens({'pad_token': '[PAD]'})`, id 32000). Never generated.
PAD_TOKEN = "[PAD]"
#: SentencePiece's word-boundary mark: the dummy prefix every separately tokenized half starts with.
DUMMY_PREFIX = "\u2581"

DETECT_PROMPT = Prompt(
    prompt_id="salmonn-detect-v1",
    task="detect",
    text="Is there an animal vocalizing in the audio? Answer yes or no.",
    scoring="yes_no",
)
CLASSIFY_PROMPT = Prompt(
    prompt_id="salmonn-classify-common-v1",
    task="classify",
    text="What is the common name of the animal that is vocalizing in the audio? Answer:",
    scoring="sequence",
)
#: The reference's audio-captioning test prompt (`prompts/test_prompt.json`).
CAPTION_PROMPT = Prompt(prompt_id="salmonn-caption-v1", task="caption", text="Please describe the audio.")
#: The reference's speech-recognition test prompt: a field recordist's voice notes, people nearby.
SPEECH_PROMPT = Prompt(
    prompt_id="salmonn-asr-v1", task="speech", text="Recognize the speech and give me the transcription."
)

DEFAULT_PROMPTS: dict[str, Prompt] = {p.task: p for p in (DETECT_PROMPT, CLASSIFY_PROMPT)}
PROMPT_SETS: dict[str, tuple[Prompt, ...]] = {
    "salmonn-default-v1": (DETECT_PROMPT, CLASSIFY_PROMPT, CAPTION_PROMPT, SPEECH_PROMPT),
}
DEFAULT_PROMPT_SET = "salmonn-default-v1"


def load_prompt_set(name_or_path: str) -> tuple[Prompt, ...]:
    """A named set of `PROMPT_SETS`, or a JSON file (see `audio_llm.prompts.load_prompt_set`)."""
    return _shared.load_prompt_set(name_or_path, PROMPT_SETS)


def format_prompt(query: str, template: str = PROMPT_TEMPLATE) -> str:
    """The full user turn: speech prefix added when missing, the query stripped, templated."""
    query = query.strip()
    if SPEECH_PLACEHOLDER not in query:
        query = SPEECH_PREFIX + query
    text = template.format(query)
    if text.count(SPEECH_PLACEHOLDER) != 1:
        raise ValueError(f"prompt must contain {SPEECH_PLACEHOLDER} exactly once, got "
                         f"{text.count(SPEECH_PLACEHOLDER)} in {query!r}")
    return text


def tokenize_prompt(tokenizer, query: str, bos_id: int, template: str = PROMPT_TEMPLATE) -> PromptTokens:
    """Split at the placeholder, tokenize each half on its own (no special tokens), BOS in front.

    ValueError when a half does not start with the dummy-prefix piece: a tokenizer configured
    without SentencePiece's prefix space would feed the model text it was not trained on.
    """
    before, after = format_prompt(query, template).split(SPEECH_PLACEHOLDER)
    halves = []
    for text in (before, after):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        first = tokenizer.convert_ids_to_tokens(ids[0]) if ids else ""
        if not first.startswith(DUMMY_PREFIX):
            raise ValueError(f"tokenizer does not give {text[:20]!r} SentencePiece's dummy prefix (first piece "
                             f"{first!r}); SALMONN needs Vicuna's sentencepiece (Llama) tokenizer")
        halves.append(tuple(ids))
    return PromptTokens(before_audio=(bos_id, *halves[0]), after_audio=halves[1])
