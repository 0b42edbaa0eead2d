"""Opt-in: the published SALMONN release with its three components (skipped without them).

Set DAWNCHORUS_SALMONN_RELEASE (salmonn_v1.pth or salmonn_7b_v0.pth), DAWNCHORUS_SALMONN_WHISPER
(whisper-large-v2 folder), DAWNCHORUS_SALMONN_BEATS (BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt)
and DAWNCHORUS_SALMONN_VICUNA (vicuna-13b-v1.1 / vicuna-7b-v1.5 folder); DAWNCHORUS_SALMONN_DEVICE
picks the device (default auto). Needs about 30 GB (13B, fp16 on a GPU) or 60 GB of RAM on CPU.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from naturelm_core.salmonn import prompts as P
from naturelm_core.salmonn.checkpoint import load_salmonn, read_release, release_key_names

ENV = {k: os.environ.get(f"DAWNCHORUS_SALMONN_{k.upper()}") for k in ("release", "whisper", "beats", "vicuna")}

pytestmark = pytest.mark.skipif(not all(ENV.values()), reason="set DAWNCHORUS_SALMONN_RELEASE, _WHISPER, _BEATS and "
                                                              "_VICUNA to run SALMONN on the published weights")


def test_published_release_loads_strictly_and_answers():
    state = read_release(ENV["release"])
    layers = 1 + max(int(k.split(".")[5]) for k in state if ".layers." in k and k.startswith("llama_model."))
    assert layers in (40, 32)  # 13B / 7B
    assert sorted(state) == sorted(release_key_names(layers, 12))  # 273 / 233 keys
    loaded = load_salmonn(ENV["release"], ENV["whisper"], ENV["beats"], ENV["vicuna"],
                          device=os.environ.get("DAWNCHORUS_SALMONN_DEVICE", "auto"))
    model = loaded.model
    assert model.config.whisper_width == 1280 and model.config.qformer_cfg.encoder_width == 2048
    t = np.arange(10 * 16000) / 16000
    wave = torch.from_numpy((0.2 * np.sin(2 * np.pi * 3000 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32))
    embeds = model.encode_audio(wave[None])
    assert embeds.shape == (1, 88, model.llama_model.config.hidden_size)
    from naturelm_core.audio_llm.engine import Engine, EngineConfig
    from naturelm_core.salmonn.model import SALMONN_GENERATION

    engine = Engine(model, [P.CAPTION_PROMPT], EngineConfig(batch_size=1, generation=SALMONN_GENERATION))
    answer = engine.run(wave[None].numpy())[0]
    assert answer.text and "</s>" not in answer.text and 0.0 <= answer.score <= 1.0
