"""Mel inversion and Griffin-Lim: consistency with the forward transforms."""
import math

import torch

from polyjepa.audio.griffinlim import deemphasis, griffin_lim, mel_to_power, mel_to_wave
from polyjepa.audio.melspec import log_mel, mel_filterbank


def chirp(n=4000, rate=8000):
    t = torch.arange(n, dtype=torch.float64) / rate
    return (0.3 * torch.sin(2 * math.pi * (300 * t + 800 * t ** 2)) + 0.1 * torch.sin(2 * math.pi * 1500 * t)).float()


def test_deemphasis_inverts_preemphasis():
    x = torch.randn(3, 500, dtype=torch.float64)
    pre = x - 0.97 * torch.cat([torch.zeros(3, 1, dtype=torch.float64), x[:, :-1]], 1)
    assert torch.allclose(deemphasis(pre), x, atol=1e-6)


def test_mel_to_power_fits_the_mel_energies_without_negative_power():
    fb = mel_filterbank(n_mels=32, n_fft=256, sample_rate=8000)
    g = torch.Generator().manual_seed(0)
    # a peaky spectrum: the pseudo-inverse goes negative, and clamping it breaks the fit
    p_true = torch.rand(129, 10, generator=g, dtype=torch.float64) * (torch.rand(129, 10, generator=g) < 0.1)
    m = fb.double()[:, 1:-1] @ p_true[1:-1] + 1e-6 * fb.double().sum(1, keepdim=True)
    p = mel_to_power(m.log(), fb)
    assert (p >= 0).all()
    rel = (fb.double() @ p - m).abs().sum() / m.sum()
    start = (fb.double() @ (torch.linalg.pinv(fb.double()) @ m).clamp_min(0) - m).abs().sum() / m.sum()
    assert rel < 0.05 and rel < 0.5 * start


def test_griffin_lim_finds_a_consistent_phase():
    x = chirp().double()
    kw = dict(n_fft=256, hop_length=80, win_length=200, window=torch.hann_window(200, dtype=torch.float64),
              center=True, return_complex=True)
    mag = torch.stft(x, **kw).abs()
    def inconsistency(wave):
        return float((torch.stft(wave, **kw).abs() - mag).norm() / mag.norm())
    w0 = griffin_lim(mag, n_fft=256, win=200, hop=80, iters=0)     # random phase only
    w = griffin_lim(mag, n_fft=256, win=200, hop=80, iters=60)
    assert w.shape == ((mag.shape[-1] - 1) * 80,)
    assert inconsistency(w) < 0.15 < inconsistency(w0)


def test_mel_to_wave_keeps_length_and_reproduces_the_features():
    x = chirp(4000)
    lm = log_mel(x, 8000, n_mels=32)
    w = mel_to_wave(lm, 8000)
    assert w.shape == ((lm.shape[-1] - 1) * 80 + 200,)
    back = log_mel(w, 8000, n_mels=32)
    noise = log_mel(torch.randn(4000, generator=torch.Generator().manual_seed(0)) * x.std(), 8000, n_mels=32)
    loud = lm > lm.max() - 7.0                     # within 30 dB of the peak: the log floor makes the rest noise
    err = (back - lm).abs()[loud].mean()
    assert err < 0.5 and err < 0.25 * (noise - lm).abs()[loud].mean()
