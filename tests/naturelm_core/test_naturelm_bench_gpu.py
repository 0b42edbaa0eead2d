"""bench/bench_naturelm_gpu.py in its tiny CPU mode: it runs, and its JSON has the documented keys."""

from __future__ import annotations

import json
import math

import pytest

METHODS = (
    "detect", "detect_classify", "detect_classify_candidates", "cascade_10", "cascade_50",
    "unshared_detect_classify", "reference_engine_detect_classify", "one_window_per_generate",
)  # fmt: skip
#: Methods whose LLM work the engine counts (the generate() baselines are not counted).
COUNTED = ("detect", "detect_classify", "detect_classify_candidates", "cascade_10", "cascade_50",
           "unshared_detect_classify")  # fmt: skip


@pytest.mark.slow
def test_tiny_mode_writes_the_documented_json(tmp_path):
    from bench import bench_naturelm_gpu as bench

    out = tmp_path / "naturelm_gpu_tiny.json"
    result = bench.main([
        "--mode", "tiny", "--windows", "4", "--loop-windows", "1", "--rounds", "1", "--answer-tokens", "3",
        "--candidates", "4", "--fbank-windows", "1", "--fbank-rounds", "1", "--out", str(out),
    ])  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result) >= {"mode", "note", "device", "config", "batch_sizes", "methods", "speedups", "goal", "fbank"}
    assert result["mode"] == "tiny-cpu" and "TINY" in result["note"] and result["device"]["cuda"] is False
    assert result["device"]["name"] and 0 < result["device"]["peak_resident_gib"] < 24
    assert set(result["methods"]) == set(METHODS)
    for name, m in result["methods"].items():
        assert m["seconds"] > 0 and math.isfinite(m["windows_per_s"]) and m["windows_per_s"] > 0, name
        assert isinstance(m["batch_size"], int) and m["batch_size"] >= 1, name
        if name in COUNTED:
            assert m["llm_tokens"] > 0 and m["tokens_per_s"] > 0 and m["tflop_per_s"] > 0, name
        else:
            assert m["llm_tokens"] is None and m["tflop_per_s"] is None, name
        assert m["bf16_peak_fraction"] is None and m["peak_memory_gib"] is None  # no GPU, no peak
    methods = result["methods"]
    assert methods["one_window_per_generate"]["batch_size"] == 1
    # Classify adds rows to detection; sharing the audio prefix saves rows.
    assert methods["detect_classify"]["llm_tokens"] > methods["detect"]["llm_tokens"]
    assert methods["unshared_detect_classify"]["llm_tokens"] > methods["detect_classify"]["llm_tokens"]
    assert 0 < methods["cascade_10"]["classified_fraction"] <= methods["cascade_50"]["classified_fraction"] <= 1
    assert all(v > 0 and math.isfinite(v) for v in result["speedups"].values())
    assert result["goal"]["met"] is None and result["goal"]["target_windows_per_s"] == 300
    prompt_rows = result["config"]["prompt_rows"]
    assert set(prompt_rows) == {"detect", "classify"} and all(50 < r < 80 for r in prompt_rows.values())
    fbank = result["fbank"]
    assert 0 < fbank["fbank_share_f64"] < 1 and 0 < fbank["fbank_share_f32"] < 1
    assert fbank["encoder"].startswith("release-size BEATs")


def test_the_gpu_mode_model_builder_at_a_small_shape_on_cpu(tmp_path):
    """The builder the GPU mode uses (random weights, Llama 3 vocabulary layout), shrunk to run here."""
    import numpy as np
    import torch

    from bench import bench_naturelm_gpu as bench
    from naturelm_core.audio_llm.engine import Engine, EngineConfig
    from naturelm_core.naturelm.model import GenerationOptions
    from naturelm_core.naturelm.tiny import tiny_config

    shape = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2}  # fmt: skip
    model = bench.full_size_model(tmp_path, torch.device("cpu"), shape, tiny_config(), dtype=torch.float32)
    assert len(model.tokenizer) == 128257 and model.llama_model.get_input_embeddings().weight.shape[0] == 128257
    assert model.llama_model.config._attn_implementation == "sdpa"
    assert all(p.abs().sum() > 0 for n, p in model.llama_model.named_parameters() if ".lora_B." in n)
    answers = Engine(model, config=EngineConfig(generation=GenerationOptions(max_new_tokens=3))).run(
        np.zeros((1, 160_000), np.float32)
    )
    assert [a.prompt.task for a in answers] == ["detect", "classify"]
    # 61 prompt rows per window, as with the real tokenizer: 1 BOS + 8 header + 29 audio + 23 text.
    assert all(len(model.prompt_tokens(a.prompt.text)) + 29 in (60, 61) for a in answers)
