"""Audio front end: resampling, mel filterbank, log-mel, crop/pad, against closed forms and independent code."""
import math

import numpy as np
import pytest
import torch

from polyjepa.audio.crop import crop_or_pad
from polyjepa.audio.melspec import frame_window, hz_to_mel, log_mel, mel_filterbank, mel_to_hz, num_frames
from polyjepa.audio.resample import resample


def sine(freq, rate, seconds=1.0):
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    return torch.sin(2 * math.pi * freq * t)


@pytest.mark.parametrize("new", [16000, 11025, 4000, 22050])
def test_resampled_tone_matches_the_analytic_tone(new):
    y = resample(sine(440.0, 8000), 8000, new)
    assert y.shape == (new,)
    ref = sine(440.0, new)
    assert (y - ref)[300:-300].abs().max() < 2e-3  # edges see zero padding


def test_resampling_removes_what_the_new_rate_cannot_hold_and_keeps_batches_apart():
    x = torch.stack([sine(6000.0, 16000), sine(1000.0, 16000)])
    y = resample(x, 16000, 8000)
    assert y.shape == (2, 8000)
    assert y[0, 300:-300].abs().max() < 0.01                 # 6 kHz is above the 4 kHz Nyquist: removed
    assert (y[1] - sine(1000.0, 8000))[300:-300].abs().max() < 2e-3
    assert torch.equal(resample(x, 8000, 8000), x)


def kaldi_filterbank_by_hand(n_mels, n_fft, rate, f_min, f_max):
    """The Kaldi mel bank written out with scalar math, bin by bin."""
    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)
    lo, hi = mel(f_min), mel(f_max)
    step = (hi - lo) / (n_mels + 1)
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        left, centre, right = lo + i * step, lo + (i + 1) * step, lo + (i + 2) * step
        for k in range(n_fft // 2 + 1):
            m = mel(k * rate / n_fft)
            if left < m <= centre:
                out[i, k] = (m - left) / (centre - left)
            elif centre < m < right:
                out[i, k] = (right - m) / (right - centre)
    return out


def test_filterbank_equals_a_hand_computation_and_is_a_partition_of_unity():
    fb = mel_filterbank(n_mels=32, n_fft=256, sample_rate=8000, f_min=20.0)
    assert fb.shape == (32, 129)
    assert np.allclose(fb.numpy(), kaldi_filterbank_by_hand(32, 256, 8000, 20.0, 4000.0), atol=1e-6)
    # Between the first and the last centre, overlapping triangles sum to exactly 1.
    edges = np.linspace(hz_to_mel(20.0), hz_to_mel(4000.0), 34)
    mels = np.array([hz_to_mel(k * 8000 / 256) for k in range(129)])
    inner = (mels >= edges[1]) & (mels <= edges[-2])
    assert np.allclose(fb.sum(0).numpy()[inner], 1.0, atol=1e-6)
    assert (fb.sum(0).numpy()[mels < edges[0]] == 0).all()
    # Each row is supported inside its own edges and peaks at the bin closest (in mel) to its centre.
    for i in range(32):
        support = np.nonzero(fb[i].numpy())[0]
        assert mels[support].min() > edges[i] and mels[support].max() < edges[i + 2]
        assert fb[i].argmax() == np.abs(mels - edges[i + 1]).argmin()


def test_filterbank_rejects_a_range_above_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        mel_filterbank(n_mels=40, n_fft=256, sample_rate=8000, f_max=6000.0)


def test_mel_scale_round_trip():
    f = torch.tensor([0.0, 100.0, 700.0, 4000.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(f)), f)
    assert hz_to_mel(700.0) == pytest.approx(1127.0 * math.log(2.0))


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_pure_tone_energy_lands_in_the_bin_of_its_frequency(freq):
    spec = log_mel(sine(freq, 8000).float(), 8000, n_mels=32, preemphasis=0.0)
    assert spec.shape == (32, num_frames(8000, 200, 80))
    fb = mel_filterbank(n_mels=32, n_fft=256, sample_rate=8000)
    expected = fb[:, round(freq * 256 / 8000)].argmax()       # the filter weighting the tone's FFT bin most
    assert (spec.argmax(0) == expected).all()
    # The tone's bin carries far more energy than bins far from it.
    assert (spec[expected] - spec[(expected + 10) % 32]).min() > 5.0


def test_log_mel_is_framewise_so_variable_lengths_agree_on_their_common_frames():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=5000).astype(np.float32))
    full = log_mel(x, 8000, n_mels=24)
    for n in (200, 279, 280, 1234):
        part = log_mel(x[:n], 8000, n_mels=24)
        assert part.shape == (24, num_frames(n, 200, 80)) == (24, 1 + (n - 200) // 80)
        assert torch.allclose(part, full[:, :part.shape[1]], atol=1e-5)
    batch = log_mel(torch.stack([x, 2 * x]), 8000, n_mels=24)
    assert torch.allclose(batch[1] - batch[0], torch.full_like(batch[0], math.log(4.0)), atol=1e-4)  # power scales by 4
    with pytest.raises(ValueError, match="shorter than one"):
        log_mel(x[:100], 8000)


def test_one_frame_equals_a_direct_dft_computation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    frame = x - x.mean()
    frame = np.concatenate([[frame[0] * 0.03], frame[1:] - 0.97 * frame[:-1]])
    n = np.arange(200)
    frame = frame * (0.5 - 0.5 * np.cos(2 * np.pi * n / 199)) ** 0.85
    k = np.arange(129)
    dft = np.exp(-2j * np.pi * np.outer(k, np.arange(200)) / 256) @ frame   # zero-padded to 256
    power = np.abs(dft) ** 2
    fb = kaldi_filterbank_by_hand(16, 256, 8000, 20.0, 4000.0)
    expected = np.log(np.maximum(fb @ power, 1.1920929e-07))
    got = log_mel(torch.from_numpy(x).float(), 8000, n_mels=16)[:, 0].numpy()
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_windows():
    assert torch.allclose(frame_window("hann", 5), torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0]))
    assert torch.allclose(frame_window("povey", 5), torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0]) ** 0.85)
    with pytest.raises(ValueError, match="unknown window"):
        frame_window("kaiser", 5)


def test_crop_or_pad_with_validity_mask():
    spec = torch.arange(30.0).view(3, 10)
    out, valid = crop_or_pad(spec, 14, pad_value=-1.0)
    assert out.shape == (3, 14) and torch.equal(out[:, :10], spec) and (out[:, 10:] == -1).all()
    assert valid.tolist() == [True] * 10 + [False] * 4
    out, valid = crop_or_pad(spec, 6)
    assert torch.equal(out, spec[:, 2:8]) and valid.all()
    out, _ = crop_or_pad(spec, 6, crop="start")
    assert torch.equal(out, spec[:, :6])
    a, _ = crop_or_pad(spec, 6, crop="random", generator=torch.Generator().manual_seed(3))
    b, _ = crop_or_pad(spec, 6, crop="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_crop_stretch_resamples_time_to_the_window():
    spec = torch.arange(10.0).repeat(3, 1) + torch.tensor([[0.0], [100.0], [200.0]])   # (3, 10) ramps in time
    out, valid = crop_or_pad(spec, 5, crop="stretch")
    # Frame centres of the 5-frame output sit at source positions 2i + 0.5 (half-pixel convention).
    assert out.shape == (3, 5) and valid.all()
    assert torch.allclose(out[0], torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5]))
    assert torch.allclose(out[2] - out[0], torch.full((5,), 200.0))
    out, valid = crop_or_pad(spec, 20, crop="stretch")
    assert out.shape == (3, 20) and valid.all() and valid.shape == (20,)
    i = torch.arange(1, 19, dtype=torch.float32)
    assert torch.allclose(out[0, 1:19], (i + 0.5) / 2 - 0.5) and out[0, 0] == 0 and out[0, -1] == 9
    same, _ = crop_or_pad(spec, 10, crop="stretch")
    assert torch.equal(same, spec)
    with pytest.raises(ValueError, match="unknown crop"):
        crop_or_pad(spec, 6, crop="squeeze")
