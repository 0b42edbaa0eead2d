"""Tiny random NatureLM-audio checkpoints with exactly the published key layout, built offline.

`build_tiny_checkpoint(out_dir)` writes

- `out_dir/llama/`: a small LlamaForCausalLM (2 layers, hidden 64, 4 heads, 2 KV heads; rope
  llama3 like 3.1) saved with `save_pretrained`, and a byte-level BPE tokenizer trained here on a
  few hundred words, with the Llama 3 special tokens added after the ordinary vocabulary (as in
  the real one) and saved as a `PreTrainedTokenizerFast` folder;
- `out_dir/naturelm/`: `config.json` with the published field names (`beats_cfg` shrunk, and a
  `qformer_cfg` block -- our extension -- for the Q-Former width) and `model.safetensors` with the
  release's keys and dtypes: audio side fp32, LoRA and the (vocab + 1) embedding bf16.

Everything is random but seeded. LoRA B is random (peft initialises it to zero, which would make
the LoRA path untestable). `TinyDims` lets the benchmark build a larger, proportioned model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from naturelm_core.naturelm import checkpoint, prompts
from naturelm_core.audio_llm.beats import BEATsConfig
from naturelm_core.naturelm.model import NatureLM, NatureLMConfig
from naturelm_core.audio_llm.qformer import QFormerConfig

logger = logging.getLogger(__name__)

#: Llama 3 special tokens the prompts and generation need (ids follow the ordinary vocabulary).
LLAMA3_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
)

#: Species whose names the tiny tokenizer learns (all BirdNET V2.4 common names).
TINY_SPECIES: tuple[str, ...] = (
    "American Robin",
    "Eurasian Blackbird",
    "Common Raven",
    "Sandhill Crane",
    "Great Horned Owl",
    "Northern Cardinal",
)


@dataclass(frozen=True)
class TinyDims:
    """Sizes of a tiny build. Ratios follow the published model where it is cheap to keep them."""

    beats_layers: int = 2
    beats_patch_dim: int = 32  # published 512 (must differ from beats_width to keep post_extract_proj)
    beats_width: int = 64  # published 768
    beats_ffn: int = 256  # published 3072 (4x width)
    beats_heads: int = 4  # published 12
    conv_pos: int = 16  # published 128 (even)
    conv_pos_groups: int = 4  # published 16
    qformer_width: int = 64  # published 768
    qformer_heads: int = 4
    qformer_ffn: int = 256
    llama_layers: int = 2  # published 32
    llama_hidden: int = 64  # published 4096
    llama_heads: int = 4  # published 32
    llama_kv_heads: int = 2  # published 8
    llama_ffn: int = 224  # published 14336 (3.5x hidden)
    lora_rank: int = 8  # published 32
    lora_alpha: int = 16  # published 32; alpha / r = 2 here so the scaling is exercised
    bpe_vocab: int = 400  # ordinary tokens the BPE learns (published 128000)
    ordinary_vocab: int | None = None  # pad the ordinary vocabulary to this size (None: as learned)
    reserved_special: int = 0  # reserved special tokens after the named ones (Llama 3: 250, 256 in all)
    seed: int = 0


def _corpus() -> list[str]:
    texts = [p.text for p in (prompts.DETECT_PROMPT, prompts.CLASSIFY_PROMPT, prompts.CAPTION_PROMPT)]
    texts += [prompts.GUIDE_SPECIES_TEXT]
    # The templated turns too, so that the header text merges as in a large vocabulary.
    texts += [prompts.format_prompt(t).replace(prompts.AUDIO_PLACEHOLDER, " ") for t in texts]
    texts += ["<Audio>", "</Audio>", "Answer:", "unknown"]
    texts += list(TINY_SPECIES)
    # Answers start a sequence (after "\n\n"), so each must also appear unprefixed, many times.
    texts += [w for w in (*prompts.YES_WORDS, *prompts.NO_WORDS, *prompts.NONE_WORDS) for _ in range(20)]
    texts += ["A bird is singing in the forest.", "Frogs call near the water at night.", "Wind and rain."]
    return texts * 3


def build_tiny_tokenizer(out_dir: Path, dims: TinyDims = TinyDims()):
    """Train a byte-level BPE on a small corpus, add the Llama 3 special tokens, save; returns it.

    With `dims.ordinary_vocab` the ordinary vocabulary is padded with entries no merge produces
    (never emitted by tokenization), so the ids and the vocabulary size can match Llama 3's
    (128000 ordinary + 256 special) for full-size benchmarks.
    """

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=dims.bpe_vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if dims.ordinary_vocab is not None:
        vocab = tok.get_vocab()
        if dims.ordinary_vocab < len(vocab):
            raise ValueError(f"ordinary_vocab {dims.ordinary_vocab} < the {len(vocab)} tokens learned")
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]
        vocab.update({f"<unused_{i}>": i for i in range(len(vocab), dims.ordinary_vocab)})
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    reserved = [f"<|reserved_special_token_{i}|>" for i in range(dims.reserved_special)]
    tok.add_special_tokens([*LLAMA3_SPECIAL_TOKENS, *reserved])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", clean_up_tokenization_spaces=False
    )
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_llama(out_dir: Path, dims: TinyDims = TinyDims()) -> Path:
    """Tokenizer + random LlamaForCausalLM in `out_dir` (a Hugging Face folder)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(out_dir, dims)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in LLAMA3_SPECIAL_TOKENS}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=dims.llama_hidden,
        intermediate_size=dims.llama_ffn,
        num_hidden_layers=dims.llama_layers,
        num_attention_heads=dims.llama_heads,
        num_key_value_heads=dims.llama_kv_heads,
        rms_norm_eps=1e-5,
        max_position_embeddings=131072,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=[ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]],
        tie_word_embeddings=False,
        # Wider than Llama's 0.02 so a 64-wide random model's layers matter: with 0.02 the
        # output depends on the last input token only and every answer is the same.
        initializer_range=0.15,
    )
    torch.manual_seed(dims.seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Short answers make tiny runs fast: favour the stop token a little, not always.
        head = model.get_output_embeddings().weight
        head[ids["<|eot_id|>"]] *= 3.0
    model.save_pretrained(str(out_dir))
    return out_dir


def tiny_config(dims: TinyDims = TinyDims()) -> NatureLMConfig:
    beats = BEATsConfig(
        embed_dim=dims.beats_patch_dim,
        encoder_layers=dims.beats_layers,
        encoder_embed_dim=dims.beats_width,
        encoder_ffn_embed_dim=dims.beats_ffn,
        encoder_attention_heads=dims.beats_heads,
        conv_pos=dims.conv_pos,
        conv_pos_groups=dims.conv_pos_groups,
    )
    qformer = QFormerConfig(
        hidden_size=dims.qformer_width,
        num_attention_heads=dims.qformer_heads,
        intermediate_size=dims.qformer_ffn,
        encoder_width=dims.beats_width,
    )
    return NatureLMConfig(beats_cfg=beats, qformer_cfg=qformer, lora_rank=dims.lora_rank, lora_alpha=dims.lora_alpha)


def release_config_values(config: NatureLMConfig, llama_path: str) -> dict:
    """config.json as the reference's hub mixin writes it, for `config` (plus qformer_cfg)."""
    values = config.to_dict()
    values.update(
        llama_path=llama_path,
        beats_path=None,
        freeze_beats=True,
        freeze_audio_QFormer=False,
        downsample_factor=8,
        audio_llama_proj_model=None,
        freeze_audio_llama_proj=False,
        flash_attn="eager",
        max_txt_len=160,
        end_sym="<|end_of_text|>",
    )
    return values


def _randomise(model: NatureLM, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.audio_query_tokens.normal_(0.0, 0.02, generator=generator)
        for name, param in model.llama_model.named_parameters():
            if ".lora_B." in name:
                param.normal_(0.0, 0.2, generator=generator)


def build_tiny_checkpoint(out_dir: str | Path, dims: TinyDims = TinyDims()) -> tuple[Path, Path]:
    """Write a tiny release and Llama under `out_dir`; returns (naturelm_dir, llama_dir)."""
    out = Path(out_dir)
    llama_dir = build_tiny_llama(out / "llama", dims)
    config = tiny_config(dims)
    torch.manual_seed(dims.seed)
    model = checkpoint.build_model(config, llama_dir, device="cpu")
    _randomise(model, dims.seed)
    naturelm_dir = checkpoint.save_release(model, out / "naturelm", release_config_values(config, "llama"))
    logger.info("tiny NatureLM checkpoint in %s, Llama in %s", naturelm_dir, llama_dir)
    return naturelm_dir, llama_dir
