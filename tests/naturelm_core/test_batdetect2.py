"""BatDetect2 backend on tiny random checkpoints: key layout, strict loading, the front end's
pieces, post-processing arithmetic, chunking and the answers' shape. No real weights needed
(test_batdetect2_real_weights.py has those)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json

import numpy as np
import pytest
import torch

from naturelm_core.backend import BackendError, held_by_recording, load_backend
from naturelm_core.batdetect2 import checkpoint as weights
from naturelm_core.batdetect2.backend import BatDetect2Backend, chunk_starts
from naturelm_core.batdetect2.config import UK_CLASS_NAMES, BatDetect2Config, species_of
from naturelm_core.batdetect2.frontend import magnitude_stft, network_input, padded_length, pcen
from naturelm_core.batdetect2.model import Net2DFast, NetOutput
from naturelm_core.batdetect2.postprocess import find_calls, suppress_non_maxima, top_k
from naturelm_core.batdetect2.tiny import build_tiny_checkpoint, tiny_config, tiny_network

RATE_HZ = 256_000
UK = BatDetect2Config()


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("bd2") / "tiny.pth.tar")


@pytest.fixture(scope="module")
def tiny(tiny_path) -> BatDetect2Backend:
    return load_backend("batdetect2", checkpoint=str(tiny_path))


# --- the published key layout --------------------------------------------------------------

#: Shapes of the shipped UK checkpoint (Net2DFast_UK_same.pth.tar), read from the file once.
PUBLISHED_SHAPES = {
    "conv_dn_0.coords": (1, 1, 128, 1), "conv_dn_0.conv.weight": (32, 2, 3, 3),
    "conv_dn_1.conv.weight": (64, 33, 3, 3), "conv_dn_2.coords": (1, 1, 32, 1),
    "conv_dn_2.conv.weight": (128, 65, 3, 3), "conv_dn_3.weight": (256, 128, 3, 3),
    "conv_1d.weight": (256, 256, 16, 1), "att.key_fun.weight": (256, 256),
    "att.pro_fun.bias": (256,), "conv_up_2.coords": (1, 1, 32, 1),
    "conv_up_2.conv.weight": (64, 257, 3, 3), "conv_up_3.conv.weight": (32, 65, 3, 3),
    "conv_up_4.coords": (1, 1, 128, 1), "conv_up_4.conv.weight": (32, 33, 3, 3),
    "conv_op.weight": (32, 32, 3, 3), "conv_size_op.weight": (2, 32, 1, 1),
    "conv_classes_op.weight": (18, 32, 1, 1), "conv_classes_op.bias": (18,),
}


def test_the_uk_network_has_the_published_keys_and_shapes():
    state = Net2DFast(UK).state_dict()
    assert len(state) == 81  # the shipped file's tensor count
    for key, shape in PUBLISHED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    blocks = {"conv_dn_0", "conv_dn_1", "conv_dn_2", "conv_up_2", "conv_up_3", "conv_up_4"}
    for block in blocks:
        assert {k for k in state if k.startswith(block + ".")} == {
            f"{block}.coords", f"{block}.conv.weight", f"{block}.conv.bias",
            *(f"{block}.conv_bn.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))}
    assert state["conv_dn_0.conv_bn.num_batches_tracked"].dtype == torch.int64


def test_uk_class_names_and_species():
    assert len(UK_CLASS_NAMES) == 17 and UK_CLASS_NAMES[0] == "Barbastellus barbastellus"
    assert species_of("Barbastellus barbastellus").scientific_name == "Barbastella barbastellus"
    assert species_of("Pipistrellus pygmaeus").common_name == "Soprano Pipistrelle"
    assert species_of("Tadarida teniotis") == ("Tadarida teniotis", "Tadarida teniotis")  # not UK


def test_tiny_network_shapes_and_heads():
    config = tiny_config()
    network = tiny_network(config)
    with torch.no_grad():
        out = network(torch.rand(2, 1, 128, 64))
    assert out.detection.shape == (2, 1, 128, 64) and out.size.shape == (2, 2, 128, 64)
    assert out.classes.shape == (2, 18, 128, 64)
    torch.testing.assert_close(out.classes.sum(1), torch.ones(2, 128, 64))
    torch.testing.assert_close(out.detection[:, 0], 1 - out.classes[:, -1])  # 1 - background
    assert (out.size >= 0).all()


# --- strict loading and one-line errors ------------------------------------------------------


def test_tiny_checkpoint_round_trips_strictly(tiny_path):
    network, config = weights.load(tiny_path)
    assert config == tiny_config()
    want = tiny_network(tiny_config()).state_dict()
    for key, tensor in network.state_dict().items():
        torch.testing.assert_close(tensor, want[key], rtol=0, atol=0)


def _resave(path, tmp_path, edit):
    blob = torch.load(str(path), weights_only=True)
    edit(blob)
    out = tmp_path / "edited.pth.tar"
    torch.save(blob, str(out))
    return out


@pytest.mark.parametrize("edit, words", [
    (lambda b: b["state_dict"].pop("att.que_fun.weight"), ["1 missing", "att.que_fun.weight"]),
    (lambda b: b["state_dict"].__setitem__("conv_extra.weight", torch.zeros(3)), ["1 unexpected", "conv_extra.weight"]),
    (lambda b: b["state_dict"].__setitem__("conv_op.bias", torch.zeros(5)), ["1 mis-shaped", "conv_op.bias"]),
    (lambda b: b["params"].__setitem__("num_filters", 16), ["mis-shaped", "and"]),
    (lambda b: b["params"].pop("class_names"), ["params lack class_names"]),
    (lambda b: b["params"].__setitem__("model_name", "Net2DFastNoAttn"), ["Net2DFastNoAttn"]),
], ids=["missing", "unexpected", "mis-shaped", "wrong-width", "no-classes", "other-variant"])
def test_a_mismatched_checkpoint_is_one_line_naming_the_problem(tiny_path, tmp_path, edit, words):
    bad = _resave(tiny_path, tmp_path, edit)
    with pytest.raises(BackendError) as caught:
        load_backend("batdetect2", checkpoint=str(bad))
    message = str(caught.value)
    assert "\n" not in message and str(bad) in message
    for word in words:
        assert word in message


def test_an_unreadable_or_absent_checkpoint_is_one_line(tmp_path):
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"not a checkpoint at all")
    for path, words in ((junk, "cannot read"), (tmp_path / "absent.pth.tar", "not a file")):
        with pytest.raises(BackendError, match=words) as caught:
            load_backend("batdetect2", checkpoint=str(path))
        assert "\n" not in str(caught.value)


def test_without_the_package_the_error_says_what_to_install(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(BackendError, match=r"pip install --no-deps batdetect2==1\.3\.1") as caught:
        load_backend("batdetect2")
    assert "\n" not in str(caught.value)


# --- front end pieces ----------------------------------------------------------------------


@pytest.mark.parametrize("n_samples, expected", [
    (3 * RATE_HZ, 770_432),  # a 3-s chunk: 2998 resized columns -> 3008
    (100, 16_768),  # shorter than one frame: padded to the minimum 64 resized columns
    (16_768, 16_768),  # exactly 64 columns: unchanged
    (26_880, 33_152),  # the 0.105-s AudioMoth file at 256 kHz: 103 -> 128 columns
])
def test_padding_matches_batdetect2s_sizes(n_samples, expected):
    assert padded_length(n_samples, UK) == expected


@pytest.mark.parametrize("n_samples", [17_000, 50_001, 128_000, 333_333, 768_000])
def test_padded_audio_gives_a_width_divisible_by_32(n_samples):
    spec = network_input(np.zeros(n_samples, np.float32), UK)
    assert spec.shape[:3] == (1, 1, 128) and spec.shape[3] % 32 == 0


def test_stft_is_the_periodic_hann_magnitude_without_centring():
    rng = np.random.default_rng(3)
    audio = rng.standard_normal(512 + 128 * 4).astype(np.float32)
    spec = magnitude_stft(audio, UK)
    assert spec.shape == (257, 5) and spec.dtype == np.float32
    window = torch.hann_window(512, periodic=True, dtype=torch.float64)
    want = torch.stft(torch.from_numpy(audio.astype(np.float64)), 512, 128, window=window,
                      center=False, return_complex=True).abs().numpy()
    np.testing.assert_allclose(spec, want, rtol=1e-5, atol=1e-5)


def test_pcen_follows_the_closed_form_of_its_smoother():
    """y[t] = b x[t] + (1 - b) y[t-1], y[-1] = 1: checked against the sum it unrolls to."""
    rng = np.random.default_rng(5)
    magnitudes = rng.random((3, 40)).astype(np.float32) * 1e-6
    t_frames = 0.4 * (RATE_HZ / 10) / 512  # 20 frames
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    x = magnitudes.astype(np.float64) * 2.0**31
    steps = np.arange(40)
    lags = steps[:, None] - steps[None, :]  # t - k
    weights_tk = np.where(lags >= 0, b * (1 - b) ** np.clip(lags, 0, None), 0.0)
    smooth = x @ weights_tk.T + (1 - b) ** (steps + 1)
    want = np.sqrt(2) * np.expm1(0.5 * np.log1p(x * (1e-6 + smooth) ** -0.98 / 2))
    np.testing.assert_allclose(pcen(magnitudes, RATE_HZ), want, rtol=1e-5)


def test_a_tone_lands_on_its_frequency_row():
    t = np.arange(RATE_HZ // 4) / RATE_HZ
    pulses = (t % 0.05) < 0.005  # a steady tone would be removed by the denoising (row mean)
    spec = network_input((0.5 * pulses * np.sin(2 * np.pi * 45_000 * t)).astype(np.float32), UK)[0, 0]
    row = int(spec.mean(dim=1).argmax())
    low_of_row = (128 - row) * (110_000 / 128) + 10_000  # the post-processing's row -> Hz rule
    assert abs(low_of_row - 45_000) < 2 * 110_000 / 128


# --- post-processing arithmetic ------------------------------------------------------------


def _output(peaks: dict[tuple[int, int], float], width: int = 64, box=(10.0, 20.0), best_class: int = 11) -> NetOutput:
    detection = torch.zeros(1, 1, 128, width)
    for (row, col), prob in peaks.items():
        detection[0, 0, row, col] = prob
    size = torch.zeros(1, 2, 128, width)
    size[0, 0], size[0, 1] = box
    classes = torch.zeros(1, 18, 128, width)
    classes[0, best_class] = detection[0, 0] * 0.75
    classes[0, 0] = detection[0, 0] * 0.25
    classes[0, -1] = 1 - detection[0, 0]
    return NetOutput(detection, size, classes)


def test_calls_are_placed_as_batdetect2_places_them():
    (calls,) = find_calls(_output({(64, 100): 0.9, (64, 103): 0.5, (20, 10): 0.3}, width=160), UK, 0.01)
    # (64, 103) is within the 9x9 square of the stronger (64, 100): suppressed.
    assert len(calls) == 2
    np.testing.assert_allclose(calls.start_s, [(20 * 128 + 384) / RATE_HZ, (200 * 128 + 384) / RATE_HZ])
    np.testing.assert_allclose(calls.end_s, [(40 * 128 + 384) / RATE_HZ, (220 * 128 + 384) / RATE_HZ])
    step = 110_000 / 128
    np.testing.assert_allclose(calls.low_freq_hz, [108 * step + 10_000, 64 * step + 10_000])
    np.testing.assert_allclose(calls.high_freq_hz, calls.low_freq_hz + 20 * step)
    np.testing.assert_allclose(calls.detection_prob, [0.3, 0.9], rtol=1e-6)
    np.testing.assert_allclose(calls.class_probs[:, 11], [0.225, 0.675], rtol=1e-6)
    assert calls.class_probs.shape == (2, 17)
    assert calls.best_detection_prob == pytest.approx(0.9)


def test_the_threshold_is_strict_and_top_k_follows_batdetect2():
    (calls,) = find_calls(_output({(64, 30): 0.5, (10, 5): 0.2}), UK, 0.2)
    assert list(calls.detection_prob) == [0.5]
    assert top_k(3008, UK) == 301  # a 3-s chunk: BatDetect2 keeps 301 peaks, not 600
    assert top_k(64, UK) == 6
    peaks = {(row, col): 0.5 + 0.001 * col for row in (10, 40, 70, 100) for col in range(5, 64, 10)}
    (calls,) = find_calls(_output(peaks), UK, 0.01)
    assert len(calls) == top_k(64, UK)  # 24 separated peaks, the 6 best kept
    assert np.all(np.diff(calls.start_s) >= 0)  # time order


def test_non_maximum_suppression_keeps_local_maxima_only():
    heat = torch.zeros(1, 1, 20, 20)
    heat[0, 0, 5, 5], heat[0, 0, 5, 9], heat[0, 0, 5, 10] = 0.9, 0.5, 0.4
    kept = suppress_non_maxima(heat, 9)
    assert kept[0, 0, 5, 5] == 0.9 and kept[0, 0, 5, 9] == 0 and kept[0, 0, 5, 10] == 0


def test_the_nyquist_rule_is_batdetect2s():
    assert held_by_recording(96_000.9, 192_000)  # truncated to whole Hz first
    assert not held_by_recording(96_001.0, 192_000)


# --- the backend -------------------------------------------------------------------------------


def test_chunks_cover_the_window_as_batdetect2s_api():
    assert chunk_starts(768_000, 768_000) == [0]
    assert chunk_starts(768_001, 768_000) == [0, 768_000]
    assert chunk_starts(0, 768_000) == []


def _chirps(n_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / RATE_HZ
    audio = 0.01 * rng.standard_normal(n_samples)
    for start in np.arange(0.02, n_samples / RATE_HZ - 0.01, 0.07):
        on = (t >= start) & (t < start + 0.004)
        audio[on] += 0.4 * np.sin(2 * np.pi * (70_000 * (t[on] - start) - 3e6 * (t[on] - start) ** 2))
    return audio.astype(np.float32)


def test_a_window_longer_than_a_chunk_is_its_chunks_side_by_side(tiny):
    """A 0.5-s chunk setting: a 0.8-s window is chunk [0, 0.5) and chunk [0.5, 0.8), each
    analysed alone, the second's times shifted by 0.5 s; nothing is merged at the edge."""
    backend = BatDetect2Backend(checkpoint=str(tiny.checkpoint_path), chunk_s=0.5)
    audio = _chirps(int(0.8 * RATE_HZ), seed=1)
    whole = backend.predict(audio[None], np.array([audio.size]), ["classify"])
    first = backend.predict(audio[None, : RATE_HZ // 2], np.array([RATE_HZ // 2]), ["classify"])
    second = backend.predict(audio[None, RATE_HZ // 2 :].copy(), np.array([audio.size - RATE_HZ // 2]), ["classify"])
    got = sorted((round(p.start_s, 6), round(p.low_freq_hz), round(p.score, 6)) for p in whole)
    want = sorted([(round(p.start_s, 6), round(p.low_freq_hz), round(p.score, 6)) for p in first]
                  + [(round(p.start_s + 0.5, 6), round(p.low_freq_hz), round(p.score, 6)) for p in second])
    assert got == want and len(got) > 0


def test_answers_are_located_calls(tiny):
    n = int(0.4 * RATE_HZ)
    audio = np.stack([_chirps(n, seed=2), np.zeros(n, np.float32)])
    valid = np.array([n, n // 2])
    predictions = tiny.predict(audio, valid, ["detect", "classify"])
    for item in (0, 1):
        detect = [p for p in predictions if p.item == item and p.task == "detect"]
        classify = [p for p in predictions if p.item == item and p.task == "classify"]
        assert len(detect) == 1 and detect[0].label == "bat" and detect[0].scientific_name is None
        assert detect[0].score == detect[0].detection_score
        assert classify and all(p.detection_score > 0.01 for p in classify)
        assert max(p.detection_score for p in classify) == pytest.approx(detect[0].score)
        for p in classify:
            assert p.label == species_of(p.answer_text.split(" at ")[0]).common_name
            assert 0 <= p.score <= p.detection_score + 1e-6  # a class's share of the call
            assert 0 <= p.start_s < p.end_s or p.start_s == p.end_s
            assert 10_000 <= p.low_freq_hz <= p.high_freq_hz
        assert [p.rank for p in sorted(classify, key=lambda p: p.rank)] == list(range(1, len(classify) + 1))


def test_a_higher_threshold_keeps_a_subset(tiny, tiny_path):
    audio = _chirps(int(0.3 * RATE_HZ), seed=4)[None]
    valid = np.array([audio.shape[1]])
    low = tiny.predict(audio, valid, ["classify"])
    strict = BatDetect2Backend(checkpoint=str(tiny_path), detection_threshold=0.9).predict(audio, valid, ["classify"])
    assert {p.answer_text for p in strict} <= {p.answer_text for p in low}
    assert all(p.detection_score > 0.9 for p in strict)


def test_identity_settings_and_runtime(tiny, tiny_path):
    assert tiny.model_id == f"batdetect2-net2dfast@sha256:{weights.file_sha256(tiny_path)[:12]}"
    assert tiny.sample_rate_hz == 256_000 and tiny.native_window_s == 3.0
    assert tiny.band_hz == (10_000.0, 120_000.0) and tiny.min_recording_rate_hz == 240_000
    settings = tiny.settings()
    assert json.loads(json.dumps(settings)) == settings and settings["detection_threshold"] == 0.01
    assert tiny.runtime() == {"device": "cpu", "licence": "CC-BY-NC-4.0"}
    # runtime() keys are options: a worker given them builds the same backend.
    again = load_backend("batdetect2", checkpoint=str(tiny_path), **tiny.runtime())
    assert again.model_id == tiny.model_id and again.settings() == settings
    info = BatDetect2Backend.describe(checkpoint=str(tiny_path), detection_threshold=0.3)
    assert info.settings["detection_threshold"] == 0.3 and info.band_hz == (10_000.0, 120_000.0)


@pytest.mark.parametrize("options, words", [
    ({"detection_threshold": 1.0}, "detection_threshold"),
    ({"detection_threshold": -0.1}, "detection_threshold"),
    ({"chunk_s": 0}, "chunk_s"),
    ({"chunk_s": 1e-6}, "chunk_s"),
    ({"batch_size": 0}, "batch_size"),
    ({"device": "no-such-device"}, "device"),
])
def test_bad_options_are_refused_by_name(tiny_path, options, words):
    with pytest.raises(BackendError, match=words):
        load_backend("batdetect2", checkpoint=str(tiny_path), **options)


def test_batched_chunks_equal_one_at_a_time(tiny, tiny_path):
    audio = np.stack([_chirps(RATE_HZ // 5, seed=s) for s in range(3)])
    valid = np.full(3, RATE_HZ // 5)
    one = BatDetect2Backend(checkpoint=str(tiny_path), batch_size=1).predict(audio, valid, ["classify"])
    three = BatDetect2Backend(checkpoint=str(tiny_path), batch_size=3).predict(audio, valid, ["classify"])
    assert [p.answer_text for p in one] == [p.answer_text for p in three]
    np.testing.assert_allclose([p.score for p in one], [p.score for p in three], rtol=1e-5, atol=1e-6)


def test_config_from_params_round_trips_and_refuses_whole_file_scaling():
    params = UK.as_params()
    assert BatDetect2Config.from_params(params) == UK
    with pytest.raises(ValueError, match="scale_raw_audio"):
        BatDetect2Config.from_params({**params, "scale_raw_audio": True})
    with pytest.raises(ValueError, match="ip_height"):
        dataclasses.replace(UK, ip_height=64)
