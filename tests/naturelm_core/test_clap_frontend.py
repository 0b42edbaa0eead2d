"""MS-CLAP 2023 front end against hand derivations and independent implementations.

Oracles: `torch.stft` for the power spectrogram, transformers' `mel_filter_bank` for the slaney
filters, a numpy Keys-cubic interpolator for the bicubic stretch, and index arithmetic for the
fold. Facts: reference/ms-clap-2023.md §1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from naturelm_core.clap import frontend
from naturelm_core.clap.htsat import HTSATConfig, fold_to_image


def test_seven_seconds_at_44k1_is_308700_samples_and_965_frames():
    assert frontend.CLIP_SAMPLES == 308_700
    # Centred STFT: 512 reflected samples each side, then 1 + floor((S + 1024 - 1024) / 320).
    assert frontend.CLIP_FRAMES == 1 + 308_700 // 320 == 965


@pytest.mark.parametrize("n_samples", [1024, 5000, 44_100, 308_700])
def test_frame_count_matches_torch_stft(n_samples):
    wave = torch.zeros(n_samples)
    spec = torch.stft(wave, 1024, 320, window=torch.hann_window(1024), center=True, pad_mode="reflect", return_complex=True)
    assert spec.shape[-1] == frontend.num_stft_frames(n_samples)


def test_short_clip_is_tiled_not_zero_padded():
    clip = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out = frontend.fit_clip(clip, clip_samples=8)
    assert out.tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    assert out.dtype == np.float32


def test_clip_of_exactly_seven_seconds_is_unchanged_and_one_sample_fills_the_clip():
    clip = np.random.default_rng(0).standard_normal(frontend.CLIP_SAMPLES).astype(np.float32)
    np.testing.assert_array_equal(frontend.fit_clip(clip), clip)
    np.testing.assert_array_equal(frontend.fit_clip(np.array([0.25])), np.full(frontend.CLIP_SAMPLES, 0.25, np.float32))


def test_longer_clip_is_refused_instead_of_cropped_at_random():
    with pytest.raises(ValueError, match="longer than the model's 308700"):
        frontend.fit_clip(np.zeros(frontend.CLIP_SAMPLES + 1))
    with pytest.raises(ValueError, match="empty"):
        frontend.fit_clip(np.zeros(0))


def test_power_spectrogram_equals_torch_stft_with_a_periodic_hann_window():
    rng = np.random.default_rng(1)
    wave = torch.from_numpy(rng.standard_normal((2, 20_000)).astype(np.float32))
    ours = frontend.Spectrogram()(wave)  # (B, 1, T, 513)
    ref = torch.stft(
        wave.double(), 1024, 320, window=torch.hann_window(1024, periodic=True, dtype=torch.float64),
        center=True, pad_mode="reflect", return_complex=True,
    ).abs().square()  # (B, 513, T)
    assert ours.shape == (2, 1, frontend.num_stft_frames(20_000), 513)
    ref = ref.transpose(1, 2)[:, None].float()
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=2e-4, atol=2e-3)


def test_mel_matrix_is_librosa_slaney_at_32k_with_fmax_14k():
    from transformers.audio_utils import mel_filter_bank

    ours = frontend.slaney_mel_filterbank()
    ref = mel_filter_bank(
        num_frequency_bins=513, num_mel_filters=64, min_frequency=50.0, max_frequency=14_000.0,
        sampling_rate=32_000, norm="slaney", mel_scale="slaney",
    )
    assert ours.shape == (513, 64) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


def test_slaney_scale_hand_values():
    # Linear below 1 kHz at 200/3 Hz per mel; 1 kHz is mel 15; 6.4x in frequency is 27 mels above it.
    np.testing.assert_allclose(frontend.hz_to_mel_slaney(np.array([0.0, 200 / 3, 1000.0, 6400.0])), [0, 1, 15, 42])
    np.testing.assert_allclose(frontend.mel_to_hz_slaney(np.array([1.0, 15.0, 42.0])), [200 / 3, 1000.0, 6400.0])


def test_log_mel_is_ten_log10_with_a_minus_100_db_floor():
    bank = frontend.LogmelFilterBank()
    power = torch.zeros(1, 1, 2, 513)
    out = bank(power)
    assert torch.all(out == -100.0)
    # A flat power P puts 10 log10(P * sum of the band's weights) in every band.
    power = torch.full((1, 1, 1, 513), 10.0)
    expected = 10 * np.log10(10.0 * bank.melW.numpy().sum(axis=0).astype(np.float64))
    np.testing.assert_allclose(bank(power)[0, 0, 0].numpy(), expected, rtol=1e-5)


def keys_cubic_stretch(x: np.ndarray, n_out: int, a: float = -0.75) -> np.ndarray:
    """Cubic convolution along axis 0 with align_corners (source i (T-1)/(n-1)), edge taps clamped.

    The source position is formed in float32, as PyTorch does for float32 input.
    """

    def weight(d: float) -> float:
        d = abs(d)
        if d <= 1:
            return (a + 2) * d**3 - (a + 3) * d**2 + 1
        if d < 2:
            return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
        return 0.0

    t = x.shape[0]
    scale = np.float32((t - 1) / (n_out - 1))
    out = np.zeros((n_out,) + x.shape[1:])
    for i in range(n_out):
        src = float(np.float32(i) * scale)
        base = math.floor(src)
        frac = src - base
        for offset in (-1, 0, 1, 2):
            tap = min(max(base + offset, 0), t - 1)
            out[i] += weight(frac - offset) * x[tap]
    return out


def test_bicubic_stretch_965_to_1024_frames_is_keys_cubic_a_minus_075():
    config = HTSATConfig()
    rng = np.random.default_rng(2)
    logmel = rng.standard_normal((965, 64))
    image = fold_to_image(torch.from_numpy(logmel).float()[None, None], config)[0, 0].numpy()  # (256, 256)
    stretched = keys_cubic_stretch(logmel, 1024)  # (1024, 64)
    unfolded = np.concatenate([image[64 * k : 64 * (k + 1)].T for k in range(4)])  # back to (1024, 64)
    np.testing.assert_allclose(unfolded, stretched, rtol=1e-5, atol=1e-5)
    with pytest.raises(AssertionError):  # an A = -0.5 kernel (scipy/PIL) is measurably different
        np.testing.assert_allclose(unfolded, keys_cubic_stretch(logmel, 1024, a=-0.5), atol=1e-3)


def test_fold_puts_frame_256k_plus_t_of_bin_f_at_row_64k_plus_f_column_t():
    config = HTSATConfig()
    frames, bins = np.meshgrid(np.arange(1024), np.arange(64), indexing="ij")
    logmel = torch.from_numpy((frames * 1000 + bins).astype(np.float32))[None, None]  # (1, 1, 1024, 64)
    image = fold_to_image(logmel, config)[0, 0].numpy()
    assert image.shape == (256, 256)
    for k, f, t in [(0, 0, 0), (0, 63, 255), (1, 0, 0), (2, 17, 100), (3, 63, 255)]:
        assert image[64 * k + f, t] == (256 * k + t) * 1000 + f


def test_fold_refuses_more_frames_than_the_image_holds():
    with pytest.raises(ValueError, match="does not fit"):
        fold_to_image(torch.zeros(1, 1, 1025, 64), HTSATConfig())
