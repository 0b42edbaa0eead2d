"""Tiny random CLAP checkpoints in each published layout, built offline, for tests.

`build_tiny_msclap(out_dir)` writes

- `out_dir/gpt2/`: a GPT-2 text folder as the user would bring it (config.json, vocab.json,
  merges.txt, tokenizer_config.json) with a byte-level BPE trained here on a few hundred words;
  ``!`` is id 0 and ``<|endoftext|>`` the last id, as in GPT-2's own vocabulary;
- `out_dir/CLAP_weights_2023.pth`: ``{"model": state dict}`` with exactly the release's key names
  (plus GPT-2's legacy causal-mask buffers, which the real file probably carries), random
  weights except the fixed STFT and mel kernels, which are the published ones;
- `out_dir/msclap_config.json`: the shrunken `MSClapConfig` (HTSAT widths, projection width).

`build_tiny_transformers_clap(out_dir)` writes a folder as `ClapModel.save_pretrained` +
`ClapProcessor.save_pretrained` do (config.json, model.safetensors, processor config, tokenizer
with RoBERTa's special-token ids), optionally a fused one (`truncation="fusion"`).

Everything is random but seeded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from naturelm_core.clap import checkpoint, msclap
from naturelm_core.clap.htsat import HTSATConfig
from naturelm_core.clap import zeroshot

logger = logging.getLogger(__name__)

#: Names the tiny tokenizers learn (BirdNET V2.4 common names) and the background words.
TINY_SPECIES: tuple[str, ...] = (
    "Eurasian Wren",
    "Common Chiffchaff",
    "Eurasian Blackbird",
    "Common Raven",
    "Tawny Owl",
    "European Robin",
)
MSCLAP_CONFIG_FILE = "msclap_config.json"


@dataclass(frozen=True)
class TinyDims:
    """Sizes of a tiny build (published sizes in the comments)."""

    htsat_embed_dim: int = 8  # 96
    htsat_depths: tuple[int, ...] = (2, 2, 2, 2)  # (2, 2, 6, 2): 4 stages keep the no-shift last stage
    htsat_heads: tuple[int, ...] = (1, 2, 2, 4)  # (4, 8, 16, 32)
    num_classes: int = 5  # 527
    d_proj: int = 16  # 1024
    gpt2_width: int = 32  # 768
    gpt2_layers: int = 2  # 12
    gpt2_heads: int = 2  # 12
    gpt2_positions: int = 128  # 1024 (must be >= 77)
    bpe_vocab: int = 400  # 50257
    seed: int = 0


def _corpus() -> list[str]:

    words = [*TINY_SPECIES, *zeroshot.DETECT_PHRASES, *zeroshot.BACKGROUND_PHRASES]
    texts = [t.format(common_name=w) for t in zeroshot.DEFAULT_TEMPLATES.values() for w in words]
    return (texts + ["The sound of a bird", "rain and wind", "a frog!", "Turdus merula"]) * 3


def _train_byte_bpe(vocab_size: int, special_first: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_first,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok


def build_tiny_gpt2_folder(out_dir: Path, dims: TinyDims = TinyDims()) -> Path:
    """A GPT-2 text folder: config.json + vocab.json + merges.txt (+ tokenizer_config.json)."""
    from transformers import GPT2Config

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = _train_byte_bpe(dims.bpe_vocab, special_first=[])
    tok.model.save(str(out_dir))  # vocab.json + merges.txt
    vocab = json.loads((out_dir / "vocab.json").read_text(encoding="utf-8"))
    if vocab.get("!") != 0:
        raise RuntimeError(f"tiny GPT-2 vocabulary puts '!' at {vocab.get('!')}, GPT-2 has it at 0")
    eot = msclap.TEXT_SUFFIX.strip()
    vocab[eot] = len(vocab)  # last id, as 50256 is in GPT-2
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": dims.gpt2_positions}), encoding="utf-8")
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=dims.gpt2_positions,
        n_embd=dims.gpt2_width,
        n_layer=dims.gpt2_layers,
        n_head=dims.gpt2_heads,
        bos_token_id=vocab[eot],
        eos_token_id=vocab[eot],
    )
    config.save_pretrained(str(out_dir))
    return out_dir


def tiny_msclap_config(dims: TinyDims = TinyDims()) -> msclap.MSClapConfig:
    htsat = HTSATConfig(
        embed_dim=dims.htsat_embed_dim, depths=dims.htsat_depths, num_heads=dims.htsat_heads, num_classes=dims.num_classes
    )
    return msclap.MSClapConfig(htsat=htsat, d_proj=dims.d_proj)


def _randomise_msclap(model: msclap.MSClap, seed: int) -> None:
    """Random weights that make outputs depend on the input; fixed kernels stay published."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "spectrogram_extractor" in name or "logmel_extractor" in name:
                continue
            if name.endswith("logit_scale"):
                continue
            if param.dim() == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
            else:
                fan_in = param.shape[-1] if param.dim() > 1 else 1
                std = 0.1 if param.dim() == 1 else fan_in**-0.5
                param.copy_(std * torch.randn(param.shape, generator=generator))
        bn = model.audio_encoder.base.htsat.bn0
        bn.running_mean.copy_(-40.0 + 5.0 * torch.randn(bn.running_mean.shape, generator=generator))
        bn.running_var.copy_(100.0 + 50.0 * torch.rand(bn.running_var.shape, generator=generator))
        bn.num_batches_tracked.fill_(1000)


def build_tiny_msclap(out_dir: str | Path, dims: TinyDims = TinyDims()) -> tuple[Path, Path, Path]:
    """Write a tiny MS-CLAP release; returns (weights .pth, GPT-2 text folder, model config JSON)."""
    out = Path(out_dir)
    text_dir = build_tiny_gpt2_folder(out / "gpt2", dims)
    config = tiny_msclap_config(dims)
    torch.manual_seed(dims.seed)
    model = checkpoint.build_msclap(text_dir, config)
    _randomise_msclap(model, dims.seed)
    weights = checkpoint.save_release(model, out / checkpoint.RELEASE_FILE)
    config_path = out / MSCLAP_CONFIG_FILE
    config_path.write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    logger.info("tiny MS-CLAP release in %s", out)
    return weights, text_dir, config_path


def build_tiny_transformers_clap(out_dir: str | Path, fused: bool = False, seed: int = 0) -> Path:
    """A tiny ClapModel + ClapProcessor folder (unfused `rand_trunc`, or fused `fusion`)."""
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizer,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_dir = out / ".bpe"
    vocab_dir.mkdir(exist_ok=True)
    # RoBERTa's special tokens and ids: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4 (pad 1 drives
    # RoBERTa's position ids, so the order matters).
    tok = _train_byte_bpe(400, special_first=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.model.save(str(vocab_dir))
    tokenizer = RobertaTokenizer.from_pretrained(str(vocab_dir))  # the constructor would renumber the specials
    for path in vocab_dir.iterdir():
        path.unlink()
    vocab_dir.rmdir()
    if tokenizer.pad_token_id != 1 or tokenizer.bos_token_id != 0 or tokenizer.eos_token_id != 2:
        raise RuntimeError("tiny RoBERTa tokenizer special ids differ from RoBERTa's")
    extractor = ClapFeatureExtractor(
        feature_size=64, sampling_rate=48_000, hop_length=480, max_length_s=10, fft_window_size=1024,
        frequency_min=50, frequency_max=14_000, truncation="fusion" if fused else "rand_trunc", padding="repeatpad",
    )  # fmt: skip
    text = ClapTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=80, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )  # fmt: skip
    audio = ClapAudioConfig(
        spec_size=256, num_mel_bins=64, window_size=8, patch_size=4, patch_stride=(4, 4), patch_embeds_hidden_size=16,
        depths=[1, 1], num_attention_heads=[2, 4], hidden_size=32, enable_fusion=fused,
        fusion_type="aff_2d" if fused else None,
    )  # fmt: skip
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # wider than the default init so that outputs depend on the input
        for name, param in model.named_parameters():
            if param.dim() > 1 and "embeddings" not in name:
                param.copy_(param.shape[-1] ** -0.5 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(str(out))
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(out))
    logger.info("tiny transformers CLAP (%s) in %s", "fused" if fused else "unfused", out)
    return out
