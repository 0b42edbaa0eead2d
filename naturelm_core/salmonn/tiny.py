"""A tiny random SALMONN in the release layout, for tests and demos (no downloads).

`build_tiny_salmonn(out)` writes the four pieces a real SALMONN is assembled from:

    out/salmonn_tiny.pth   torch.save({"model": trained tensors + buffers/aliases, "optimizer",
                           "config", "scaler", "epoch"}), the release layout (`checkpoint.release_key_names`)
    out/whisper/           a Hugging Face WhisperForConditionalGeneration (d_model 32, 1500
                           positions: still 30 s -> 1500 rows) + Whisper's preprocessor_config.json
    out/beats.pt           {"cfg", "model", "label_dict"} as the BEATs release file, with the
                           relative-position table under every layer
    out/vicuna/            a Llama folder: a SentencePiece-style tokenizer (`<unk>` 0, `<s>` 1,
                           `</s>` 2, byte pieces `<0x00>`.. from 3, so "\\n" is id 13, a dummy-prefix
                           space on every call) and a random 2-layer LlamaForCausalLM

Every number of the real model that the code derives stays real: 30 s, 80 mel bins, 1500 rows,
17-row windows, 88 speech embeddings, LoRA on q/v with alpha / r = 4.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from naturelm_core.audio_llm.beats import BEATsConfig
from naturelm_core.audio_llm.qformer import QFormerConfig
from naturelm_core.salmonn import checkpoint, prompts
from naturelm_core.salmonn.model import SALMONN, SALMONNConfig
from naturelm_core.audio_llm.beats import BEATs
from naturelm_core.salmonn.whisper import load_feature_extractor, load_whisper_encoder

logger = logging.getLogger(__name__)

RELEASE_FILE = "salmonn_tiny.pth"
TINY_SPECIES: tuple[str, ...] = ("American Robin", "Common Raven", "Great Horned Owl", "Northern Cardinal")


@dataclass(frozen=True)
class TinyDims:
    whisper_width: int = 32  # published 1280
    whisper_layers: int = 2  # published 32
    whisper_heads: int = 4  # published 20
    whisper_ffn: int = 64  # published 5120
    beats_layers: int = 3  # published 12 (3: two alias keys in the release)
    beats_patch_dim: int = 16  # published 512
    beats_width: int = 32  # published 768
    beats_ffn: int = 64  # published 3072
    beats_heads: int = 4  # published 12
    conv_pos: int = 16  # published 128
    conv_pos_groups: int = 4  # published 16
    qformer_width: int = 32  # published 768 (4 heads: the loader's rule for widths under 96)
    qformer_ffn: int = 64  # published 3072
    llama_layers: int = 2  # published 40 (13B) / 32 (7B)
    llama_hidden: int = 32  # published 5120 / 4096
    llama_heads: int = 4  # published 40 / 32
    llama_ffn: int = 64  # published 13824 / 11008
    bpe_vocab: int = 520  # pieces after the 259 special and byte tokens
    seed: int = 0


BYTE_PIECES = tuple(f"<0x{i:02X}>" for i in range(256))


def _corpus() -> list[str]:
    texts = [p.text for prompt_set in prompts.PROMPT_SETS.values() for p in prompt_set]
    texts += ["USER: <Speech>", "</Speech>", "ASSISTANT:", "Answer:", *TINY_SPECIES]
    texts += [w for w in (*prompts.YES_WORDS, *prompts.NO_WORDS, *prompts.NONE_WORDS) for _ in range(20)]
    texts += ["A bird is singing in the forest.", "A man is talking.", "Wind and rain.", "Music plays."]
    return [t.replace("\n", " ") for t in texts] * 3  # no newline piece: "\n" must fall back to <0x0A>


def build_tiny_tokenizer(out_dir: Path, dims: TinyDims = TinyDims()):
    """A SentencePiece-like BPE tokenizer (byte fallback, dummy prefix) saved in `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=prompts.DUMMY_PREFIX, prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace(prompts.DUMMY_PREFIX, " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=259 + dims.bpe_vocab, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>", *BYTE_PIECES])
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   clean_up_tokenization_spaces=False)
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_vicuna(out_dir: Path, dims: TinyDims = TinyDims()) -> Path:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(out_dir, dims)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=dims.llama_hidden, intermediate_size=dims.llama_ffn,
        num_hidden_layers=dims.llama_layers, num_attention_heads=dims.llama_heads,
        num_key_value_heads=dims.llama_heads, rms_norm_eps=1e-6, max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
        initializer_range=0.15,  # wide enough that a tiny random model's answers depend on the audio
    )
    torch.manual_seed(dims.seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.get_output_embeddings().weight[2] *= 3.0  # short answers: favour </s> a little
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model.save_pretrained(str(out_dir))
    return out_dir


def build_tiny_whisper(out_dir: Path, dims: TinyDims = TinyDims()) -> Path:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=64, num_mel_bins=80, d_model=dims.whisper_width, encoder_layers=dims.whisper_layers,
        encoder_attention_heads=dims.whisper_heads, encoder_ffn_dim=dims.whisper_ffn, decoder_layers=1,
        decoder_attention_heads=dims.whisper_heads, decoder_ffn_dim=dims.whisper_ffn, max_source_positions=1500,
        max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        suppress_tokens=[], begin_suppress_tokens=[],
    )
    torch.manual_seed(dims.seed + 2)
    WhisperForConditionalGeneration(config).save_pretrained(str(out_dir))
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                            n_fft=400).save_pretrained(str(out_dir))
    return out_dir


def tiny_beats_config(dims: TinyDims = TinyDims()) -> BEATsConfig:
    return BEATsConfig(embed_dim=dims.beats_patch_dim, encoder_layers=dims.beats_layers,
                       encoder_embed_dim=dims.beats_width, encoder_ffn_embed_dim=dims.beats_ffn,
                       encoder_attention_heads=dims.beats_heads, conv_pos=dims.conv_pos,
                       conv_pos_groups=dims.conv_pos_groups, predictor_class=8)


def build_tiny_beats(path: Path, dims: TinyDims = TinyDims()) -> Path:
    """The BEATs release file layout: the shared relative-position table under every layer."""

    cfg = tiny_beats_config(dims)
    torch.manual_seed(dims.seed + 3)
    beats = BEATs(cfg)
    state = {k: v.detach().clone() for k, v in beats.state_dict().items()}
    table = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    for i in range(1, cfg.encoder_layers):
        state[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = table.clone()
    torch.save({"cfg": dataclasses.asdict(cfg), "model": state, "label_dict": {}}, path)
    return path


def _randomise(model: SALMONN, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.speech_query_tokens.normal_(0.0, 0.5, generator=generator)
        for module in (model.ln_speech, model.ln_audio):
            module.weight.normal_(1.0, 0.1, generator=generator)
            module.bias.normal_(0.0, 0.1, generator=generator)
        for name, param in model.llama_model.named_parameters():
            if ".lora_B." in name:
                param.normal_(0.0, 0.2, generator=generator)


def release_pickle(model: SALMONN) -> dict:
    """What the reference's `Runner.save_checkpoint` writes: the model dict beside training state."""
    state = checkpoint.release_state_dict(model)
    trained = [k for k, v in state.items() if v.is_floating_point() and "inv_freq" not in k
               and not k.startswith("beats.")]
    return {
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 3e-5, "weight_decay": 0.05, "params": list(range(len(trained)))}]},
        "config": {"model": {"lora_rank": model.config.lora_rank, "lora_alpha": model.config.lora_alpha}},
        "scaler": None,
        "epoch": 0,
    }


def build_tiny_salmonn(out_dir: str | Path, dims: TinyDims = TinyDims()) -> dict[str, Path]:
    """Write the four pieces under `out_dir`; returns {"release", "whisper", "beats", "vicuna"}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vicuna = build_tiny_vicuna(out / "vicuna", dims)
    whisper = build_tiny_whisper(out / "whisper", dims)
    beats = build_tiny_beats(out / "beats.pt", dims)

    llama, tokenizer, stops = checkpoint.load_vicuna(vicuna, torch.device("cpu"))
    qformer = QFormerConfig(hidden_size=dims.qformer_width, num_attention_heads=4, intermediate_size=dims.qformer_ffn,
                            encoder_width=dims.whisper_width + dims.beats_width)
    config = SALMONNConfig(beats_cfg=tiny_beats_config(dims), whisper_width=dims.whisper_width, qformer_cfg=qformer)
    torch.manual_seed(dims.seed + 4)
    model = SALMONN(config, load_whisper_encoder(whisper), load_feature_extractor(whisper).mel_filters, llama,
                    tokenizer, stops)
    cfg, state = checkpoint.read_beats_file(beats)
    checkpoint.load_beats_weights(model.beats, beats, state)
    _randomise(model, dims.seed)
    release = out / RELEASE_FILE
    torch.save(release_pickle(model), release)
    (out / "README.json").write_text(json.dumps({"dims": dataclasses.asdict(dims)}, indent=2), encoding="utf-8")
    logger.info("tiny SALMONN in %s", out)
    return {"release": release, "whisper": whisper, "beats": beats, "vicuna": vicuna}


def run_options(paths: dict[str, Path]) -> str:
    """The `dawnchorus run` options that select this build."""
    return "--model salmonn " + " ".join(f"--model-option {k}={paths[k]}" for k in ("release", "whisper", "beats", "vicuna"))


__all__ = ["RELEASE_FILE", "TINY_SPECIES", "TinyDims", "build_tiny_salmonn", "run_options"]
