"""transformers `ClapModel` folders (BioLingual / LAION layout): offline loading and determinism."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from naturelm_core.clap.checkpoint import ClapCheckpointError
from naturelm_core.clap.tiny import build_tiny_transformers_clap
from naturelm_core.clap.transformers_clap import TransformersClap

RATE_HZ = 48_000


@pytest.fixture(scope="module")
def unfused_dir(tmp_path_factory):
    return build_tiny_transformers_clap(tmp_path_factory.mktemp("tiny-clap"))


@pytest.fixture(scope="module")
def fused_dir(tmp_path_factory):
    return build_tiny_transformers_clap(tmp_path_factory.mktemp("tiny-clap-fused"), fused=True)


def _clips(seed: int, lengths_s=(3.0, 10.0)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(s * RATE_HZ))).astype(np.float32) for s in lengths_s]


def test_folder_settings_come_from_its_own_configs(unfused_dir, tmp_path):
    clap = TransformersClap(unfused_dir)
    assert (clap.sample_rate_hz, clap.native_samples, clap.embedding_dim) == (48_000, 480_000, 16)
    copy = tmp_path / "short"
    shutil.copytree(unfused_dir, copy)
    processor = json.loads((copy / "processor_config.json").read_text())
    processor["feature_extractor"]["max_length_s"] = 5
    (copy / "processor_config.json").write_text(json.dumps(processor))
    assert TransformersClap(copy).native_samples == 5 * RATE_HZ


def test_longer_clip_is_refused_so_the_random_crop_never_fires(unfused_dir):
    clap = TransformersClap(unfused_dir)
    with pytest.raises(ValueError, match="expected 1 to 480000 mono samples"):
        clap.audio_embeddings([np.zeros(480_001, np.float32)])


def test_same_audio_same_embedding_whatever_the_global_rng_and_the_batch(fused_dir):
    clap = TransformersClap(fused_dir)
    clips = _clips(0)
    np.random.seed(1)
    reference = clap.audio_embeddings(clips)
    for seed in range(2, 4):
        np.random.seed(seed)
        np.testing.assert_array_equal(clap.audio_embeddings(clips).numpy(), reference.numpy())
    alone = torch.cat([clap.audio_embeddings([c]) for c in clips])
    np.testing.assert_allclose(alone.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


def test_the_extractors_own_is_longer_flag_is_random_for_a_fused_model(fused_dir):
    """Why `is_longer` is passed explicitly: left to the extractor, answers change between calls."""
    clap = TransformersClap(fused_dir)
    clips = _clips(0, lengths_s=(3.0, 6.0))
    flags, outputs = set(), set()
    with torch.no_grad():
        for seed in range(12):
            np.random.seed(seed)
            features = clap.extractor([c.astype(np.float64) for c in clips], sampling_rate=RATE_HZ, return_tensors="pt")
            flags.add(tuple(features["is_longer"].flatten().tolist()))
            if len(flags) == 2:
                break
    assert flags == {(True, False), (False, True)}  # one clip flagged "longer" at random
    with torch.no_grad():
        for flag in flags:
            out = clap.model.get_audio_features(
                input_features=features["input_features"].float(), is_longer=torch.tensor(flag)[:, None]
            )
            outputs.add(tuple(np.round(out.pooler_output[0].numpy(), 5)))
    assert len(outputs) == 2  # and the flag changes the first clip's embedding


def test_embeddings_are_normalised_and_depend_on_the_audio(unfused_dir):
    clap = TransformersClap(unfused_dir)
    audio = clap.audio_embeddings(_clips(1))
    text = clap.text_embeddings(["This is a sound of rain.", "This is a sound of Tawny Owl."])
    np.testing.assert_allclose(audio.norm(dim=-1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(text.norm(dim=-1).numpy(), 1.0, rtol=1e-5)
    assert not torch.allclose(audio[0], audio[1], atol=1e-3)
    with pytest.raises(ValueError, match="longer than 77 tokens"):
        clap.text_embeddings(["owl " * 100])


def test_mis_shaped_weights_are_named(unfused_dir, tmp_path):
    copy = tmp_path / "bad"
    shutil.copytree(unfused_dir, copy)
    state = load_file(str(copy / "model.safetensors"))
    key = next(k for k in state if k.endswith("audio_projection.linear1.weight"))
    state[key] = state[key][:, :-1].contiguous()
    save_file(state, str(copy / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ClapCheckpointError, match=r"mismatched_keys.*linear1\.weight: file \(16, 31\) vs model \(16, 32\)"):
        TransformersClap(copy)


def test_a_folder_that_is_not_clap_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ClapCheckpointError, match="model_type 'clap'"):
        TransformersClap(tmp_path)
