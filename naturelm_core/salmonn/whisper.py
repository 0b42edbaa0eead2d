"""SALMONN's Whisper branch: the log-mel front end (batched, in torch) and the Whisper encoder.

The encoder is transformers' own `WhisperEncoder`, as the reference uses (its copy of the
transformers file has the same math); only its weights are read from the Whisper folder (the
decoder's are not loaded). The front end follows the reference's `WhisperFeatureExtractor`
(facts: `reference/salmonn.md` §1.2, trap 4) and takes its 80 mel filters from that extractor,
loaded from the same folder:

1. float32 audio, zero-padded (or cut) to 30 s = 480000 samples;
2. 3001 centred 400-sample frames every 160 samples, reflect-padded, periodic Hann window,
   400-point FFT -> 201 power bins; the last frame is dropped -> 3000 frames;
3. Slaney mel (the extractor's filters), log10 of max(mel, 1e-10);
4. max(x, max - 8) with the maximum over the whole padded (80, 3000) spectrogram of each clip,
   then (x + 4) / 4.

Each clip's spectrogram depends on that clip alone (the clamp uses its own maximum), so batches
give every clip the numbers it gets alone.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from naturelm_core import checkpoint_keys as keys
from naturelm_core.audio_llm.loading import CheckpointError

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
CHUNK_SAMPLES = 30 * SAMPLE_RATE_HZ  # 480000: Whisper always sees 30 s
N_FFT = 400
HOP = 160
N_FRAMES = CHUNK_SAMPLES // HOP  # 3000 mel frames -> 1500 encoder rows
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units kept below the clip's maximum


def log_mel(wave: torch.Tensor, mel_filters: torch.Tensor) -> torch.Tensor:
    """wave (B, S) at 16 kHz -> log-mel (B, n_mels, 3000) float32, Whisper's recipe.

    `mel_filters` is the extractor's (n_fft // 2 + 1, n_mels) matrix. Clips longer than 30 s are
    cut to their first 30 s, shorter ones zero-padded.
    """
    if wave.dim() != 2:
        raise ValueError(f"log_mel: wave must be (batch, samples), got {tuple(wave.shape)}")
    wave = wave.to(torch.float32)[:, :CHUNK_SAMPLES]
    if wave.shape[1] < CHUNK_SAMPLES:
        wave = torch.nn.functional.pad(wave, (0, CHUNK_SAMPLES - wave.shape[1]))
    window = torch.hann_window(N_FFT, periodic=True, device=wave.device)
    spectrum = torch.stft(wave, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spectrum[..., :-1].abs() ** 2  # (B, 201, 3000): the last frame dropped
    filters = mel_filters.to(device=wave.device, dtype=torch.float32)  # (201, M)
    mel = torch.einsum("fm,bft->bmt", filters, power)  # (B, M, 3000)
    log = torch.clamp(mel, min=LOG_FLOOR).log10()
    peak = log.amax(dim=(1, 2), keepdim=True)  # per clip, over the whole padded spectrogram
    log = torch.maximum(log, peak - DYNAMIC_RANGE)
    return (log + 4.0) / 4.0


# ------------------------------------------------------------------------------ loading


def load_feature_extractor(whisper_dir: Path):
    """transformers' WhisperFeatureExtractor of the folder (the reference's front end)."""
    from transformers import WhisperFeatureExtractor

    try:
        extractor = WhisperFeatureExtractor.from_pretrained(str(whisper_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Whisper folder {whisper_dir}: cannot read preprocessor_config.json: {exc}") from None
    if extractor.sampling_rate != SAMPLE_RATE_HZ or extractor.n_samples != CHUNK_SAMPLES or extractor.hop_length != HOP \
            or extractor.n_fft != N_FFT:
        raise CheckpointError(
            f"Whisper folder {whisper_dir}: preprocessor_config.json is not Whisper's 16 kHz / 30 s / hop 160 / "
            f"n_fft 400 front end (got {extractor.sampling_rate} Hz, {extractor.n_samples} samples, hop "
            f"{extractor.hop_length}, n_fft {extractor.n_fft})"
        )
    return extractor


def _whisper_state(whisper_dir: Path) -> dict[str, torch.Tensor]:
    """The folder's tensors (safetensors, sharded or not, else pytorch_model.bin)."""
    from safetensors.torch import load_file

    index = whisper_dir / "model.safetensors.index.json"
    try:
        if (whisper_dir / "model.safetensors").is_file():
            return load_file(str(whisper_dir / "model.safetensors"))
        if index.is_file():
            state: dict[str, torch.Tensor] = {}
            for name in sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())):
                state.update(load_file(str(whisper_dir / name)))
            return state
        if (whisper_dir / "pytorch_model.bin").is_file():
            return torch.load(whisper_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise the reader's own error types
        raise CheckpointError(f"Whisper folder {whisper_dir}: cannot read its weights: {exc}") from None
    raise CheckpointError(f"Whisper folder {whisper_dir}: no model.safetensors(.index.json) or pytorch_model.bin")


def load_whisper_encoder(whisper_dir: Path) -> nn.Module:
    """transformers' WhisperEncoder with the folder's encoder weights, checked key by key.

    The folder is a `WhisperForConditionalGeneration` (keys `model.encoder.*`) or a `WhisperModel`
    (`encoder.*`); decoder keys are ignored, every encoder key must match.
    """
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    try:
        config = WhisperConfig.from_pretrained(str(whisper_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Whisper folder {whisper_dir}: cannot read config.json: {exc}") from None
    if config.max_source_positions * 2 != N_FRAMES:
        raise CheckpointError(f"Whisper folder {whisper_dir}: max_source_positions {config.max_source_positions} "
                              f"!= {N_FRAMES // 2} (30 s)")
    encoder = WhisperEncoder(config)
    state = _whisper_state(whisper_dir)
    found: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for prefix in ("model.encoder.", "encoder."):
            if key.startswith(prefix):
                found[key[len(prefix) :]] = tensor
    targets = encoder.state_dict(keep_vars=True)
    report = keys.compare(keys.signatures(found), targets, "the Whisper encoder layout")
    if not report.ok:
        raise CheckpointError(report.message(f"Whisper folder {whisper_dir}"))
    with torch.no_grad():
        for key, name in report.mapping.items():
            targets[name].copy_(found[key].to(targets[name].dtype))
    return encoder.eval()


__all__ = ["CHUNK_SAMPLES", "N_FRAMES", "load_feature_extractor", "load_whisper_encoder", "log_mel"]
