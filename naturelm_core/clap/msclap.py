"""MS-CLAP 2023 (Microsoft's general-audio CLAP): HTSAT audio tower, GPT-2 text tower, projections.

Reads top to bottom: the config, the projection head, the two encoders, the prompt tokenisation
rule, then `MSClap`. Attribute names equal the release's top-level keys (`logit_scale`,
`audio_encoder.base.htsat.*`, `audio_encoder.projection.*`, `caption_encoder.base.*`,
`caption_encoder.projection.*`), so `checkpoint.load_msclap` is a strict one-to-one copy.
Facts followed: `reference/ms-clap-2023.md` §3-§5.

- audio: a 7-s 44.1 kHz clip -> HTSAT -> 768-d mean token -> projection -> 1024-d;
- text: ``prompt + " <|endoftext|>"``, right-padded to 77 tokens with ``!`` (GPT-2 id 0) -> GPT-2
  -> the hidden state at (number of non-pad ids) - 1 -> projection -> 1024-d;
- score: exp(logit_scale) x cosine; zero-shot probabilities are a softmax over the prompts.

GPT-2 is transformers' `GPT2Model`, built from the config in the user's text folder; its weights
come from the release like every other tensor.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from naturelm_core.clap.htsat import HTSAT, HTSATConfig

logger = logging.getLogger(__name__)

#: Appended to every prompt (a space, then GPT-2's end-of-text token), as msclap does.
TEXT_SUFFIX = " <|endoftext|>"
#: msclap's pad token. It is GPT-2's id 0 already, so the vocabulary does not grow, but it becomes
#: an added token: every "!" in a prompt is split out as id 0 and moves the pooled row left.
PAD_TOKEN = "!"
TEXT_MAX_TOKENS = 77  # padding length; msclap never truncates, longer prompts are refused here


@dataclass(frozen=True)
class MSClapConfig:
    """What `config_2023.yml` and msclap's code fix. Defaults = the published model."""

    htsat: HTSATConfig = field(default_factory=HTSATConfig)  # the audio encoder
    d_proj: int = 1024  # joint embedding width (both projection heads' output)
    text_max_tokens: int = TEXT_MAX_TOKENS
    logit_scale_init: float = math.log(1 / 0.07)  # replaced by the release's value

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "MSClapConfig":
        """From a JSON dict of these fields (`htsat` nested); unknown keys are an error."""
        values = dict(values)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{source}: unknown MS-CLAP config key(s) {unknown}; known: {sorted(names)}")
        htsat = HTSATConfig.from_dict(values.pop("htsat", {}), source=f"{source} htsat")
        try:
            return cls(htsat=htsat, **values)
        except TypeError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["htsat"] = self.htsat.to_dict()
        return out


class Projection(nn.Module):
    """LayerNorm(e1 + linear2(GELU(e1))), e1 = linear1(x); both linears without bias."""

    def __init__(self, d_in: int, d_out: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed1 = self.linear1(x)
        embed2 = self.linear2(F.gelu(embed1))  # dropout 0.5 in training only
        return self.layer_norm(embed1 + embed2)


class HTSATWrapper(nn.Module):
    """msclap's wrapper: holds HTSAT under the name `htsat` (the release's key level)."""

    def __init__(self, config: HTSATConfig) -> None:
        super().__init__()
        self.htsat = HTSAT(config)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.htsat(wave)


class AudioEncoder(nn.Module):
    def __init__(self, config: MSClapConfig) -> None:
        super().__init__()
        self.base = HTSATWrapper(config.htsat)
        self.projection = Projection(config.htsat.num_features, config.d_proj)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, 308700) prepared clips -> projected audio embeddings (B, d_proj)."""
        return self.projection(self.base(wave))


class TextEncoder(nn.Module):
    """GPT-2 (`base`, a transformers GPT2Model) pooled at the last non-pad id, then projected."""

    def __init__(self, gpt2: nn.Module, d_proj: int) -> None:
        super().__init__()
        self.base = gpt2
        self.projection = Projection(gpt2.config.n_embd, d_proj)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_id: int) -> torch.Tensor:
        """input_ids, attention_mask (T, L) -> projected text embeddings (T, d_proj)."""
        hidden = self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (T, L, W)
        # msclap's rule: count the ids that are not the pad id (so a "!" in a prompt counts as
        # padding too), minus one. For prompts without "!" this is the <|endoftext|> position.
        rows = torch.ne(input_ids, pad_id).sum(-1) - 1  # (T,)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), rows]  # (T, W)
        return self.projection(pooled)


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give a GPT-2 tokenizer msclap's pad token; checks the ids the pooling rule relies on."""
    eot = TEXT_SUFFIX.strip()
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    if eot_id is None or tokenizer.convert_ids_to_tokens(eot_id) != eot:
        raise ValueError(f"the text tokenizer has no {eot!r} token (not a GPT-2 tokenizer?)")
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.padding_side = "right"
    return tokenizer


def tokenize_prompts(tokenizer: Any, prompts: Sequence[str], max_tokens: int = TEXT_MAX_TOKENS) -> dict[str, torch.Tensor]:
    """msclap's `preprocess_text`: each prompt + TEXT_SUFFIX, right-padded to `max_tokens`.

    Returns input_ids and attention_mask (T, max_tokens) int64. A prompt that needs more than
    `max_tokens` tokens is a ValueError naming it (msclap would fail to stack the batch).
    """
    ids, masks = [], []
    for prompt in prompts:
        enc = tokenizer(prompt + TEXT_SUFFIX, add_special_tokens=True)
        n = len(enc["input_ids"])
        if n > max_tokens:
            raise ValueError(f"prompt {prompt!r} is {n} tokens with its end-of-text suffix; the limit is {max_tokens}")
        pad = max_tokens - n
        ids.append(list(enc["input_ids"]) + [tokenizer.pad_token_id] * pad)
        masks.append([1] * n + [0] * pad)
    return {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.tensor(masks, dtype=torch.long)}


class MSClap(nn.Module):
    """The full model. Build and load it with `checkpoint.load_msclap`."""

    def __init__(self, config: MSClapConfig, gpt2: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = prepare_tokenizer(tokenizer)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init))
        self.audio_encoder = AudioEncoder(config)
        self.caption_encoder = TextEncoder(gpt2, config.d_proj)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @torch.inference_mode()
    def audio_embeddings(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, 308700) clips prepared with `frontend.fit_clip` -> (B, d_proj), not normalised."""
        if wave.dim() != 2:
            raise ValueError(f"audio_embeddings: wave must be (batch, samples), got {tuple(wave.shape)}")
        return self.audio_encoder(wave.to(self.device, torch.float32))

    @torch.inference_mode()
    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> (T, d_proj) projected text embeddings, not normalised."""
        if any("!" in p for p in prompts):
            logger.warning("a prompt contains '!': msclap pools such prompts before their end-of-text token")
        enc = tokenize_prompts(self.tokenizer, prompts, self.config.text_max_tokens)
        # GPT-2 is causal and the pooled row lies before the padding, so the all-padding columns
        # beyond the longest prompt change nothing: drop them (a 12-token prompt costs 12, not 77).
        used = int(enc["attention_mask"].sum(-1).max())
        return self.caption_encoder(
            enc["input_ids"][:, :used].to(self.device),
            enc["attention_mask"][:, :used].to(self.device),
            self.tokenizer.pad_token_id,
        )

    def logits(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, D), (T, D) -> exp(logit_scale) x cosine, (B, T) (msclap's compute_similarity)."""
        audio = audio / audio.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * audio @ text.T
