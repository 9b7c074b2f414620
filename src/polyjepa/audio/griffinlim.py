"""Back from log-mel features to a waveform: mel -> linear power (non-negative least squares) -> Griffin-Lim phase.

The features are those of :func:`polyjepa.audio.melspec.log_mel` (Kaldi style: whole windows every hop,
pre-emphasis, mel filterbank, natural log). Inverting them is approximate by nature: the filterbank
merges frequencies and the phase is lost; Griffin-Lim finds a phase whose STFT magnitude is consistent.
"""
from __future__ import annotations

import math

import torch

from .melspec import mel_filterbank


def frame_sizes(sample_rate: int, win_ms: float = 25.0, hop_ms: float = 10.0, n_fft: int | None = None) -> tuple[int, int, int]:
    """(win, hop, n_fft) in samples, as ``log_mel`` computes them."""
    win = int(round(sample_rate * win_ms / 1000.0))
    hop = int(round(sample_rate * hop_ms / 1000.0))
    return win, hop, n_fft or 1 << (win - 1).bit_length()


def mel_to_power(log_mel: torch.Tensor, fb: torch.Tensor, *, iters: int = 100) -> torch.Tensor:
    """(..., n_mels, F) log-mel energies -> (..., n_freq, F) non-negative power spectrum P with fb @ P ~ exp(log_mel).

    Non-negative least squares by multiplicative updates (Lee & Seung 2001) from the clamped pseudo-inverse.
    """
    m = log_mel.double().exp()
    fb = fb.double().to(m.device)
    p = (torch.linalg.pinv(fb) @ m).clamp_min(0) + 1e-10
    ft_m = fb.T @ m
    ftf = fb.T @ fb
    for _ in range(iters):
        p = p * ft_m / (ftf @ p + 1e-12)
    return p


def griffin_lim(magnitude: torch.Tensor, *, n_fft: int, win: int, hop: int, iters: int = 64, momentum: float = 0.99,
                seed: int = 0) -> torch.Tensor:
    """(..., n_fft//2+1, F) STFT magnitudes -> (..., (F - 1) * hop) waveform with a consistent phase.

    Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013): alternate projections between the set of
    spectrograms with the given magnitude and the set of STFTs of signals, with ``momentum``
    (0 = the original Griffin & Lim 1984). Frames are centred (frame t at sample t * hop); Hann window
    of ``win`` samples; the starting phase is random from ``seed``.
    """
    window = torch.hann_window(win, dtype=torch.float64, device=magnitude.device)
    mag = magnitude.double()
    shape = mag.shape
    mag = mag.reshape(-1, *shape[-2:])
    length = (shape[-1] - 1) * hop
    g = torch.Generator().manual_seed(int(seed))
    phase = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=g, dtype=torch.float64)).to(mag.device)
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True)
    prev = torch.zeros_like(phase)
    for _ in range(iters):
        wave = torch.istft(mag * phase, length=length, **kw)
        rebuilt = torch.stft(wave, return_complex=True, **kw)
        phase = rebuilt - (momentum / (1 + momentum)) * prev
        phase = phase / phase.abs().clamp_min(1e-16)
        prev = rebuilt
    wave = torch.istft(mag * phase, length=length, **kw)
    return wave.reshape(*shape[:-2], length)


def deemphasis(x: torch.Tensor, coef: float = 0.97) -> torch.Tensor:
    """Undo pre-emphasis along the last axis: y[t] = x[t] + coef * y[t-1] (impulse response truncated at 1e-7)."""
    if not coef:
        return x
    n = max(1, int(math.ceil(math.log(1e-7) / math.log(coef))))
    kernel = (coef ** torch.arange(n, dtype=x.dtype, device=x.device)).flip(0)[None, None]   # (1, 1, n)
    flat = torch.nn.functional.pad(x.reshape(-1, 1, x.shape[-1]), (n - 1, 0))
    return torch.nn.functional.conv1d(flat, kernel).reshape(x.shape)


def mel_to_wave(log_mel: torch.Tensor, sample_rate: int, *, win_ms: float = 25.0, hop_ms: float = 10.0,
                n_fft: int | None = None, f_min: float = 20.0, f_max: float | None = None, preemphasis: float = 0.97,
                iters: int = 64, seed: int = 0) -> torch.Tensor:
    """(..., n_mels, F) log-mel features (``log_mel``'s, unnormalised) -> (..., (F - 1) * hop + win) waveform.

    The waveform has the length of the clip the features came from (whole windows: F frames need
    (F - 1) * hop + win samples); the level follows the features (the analysis window's gain is
    compensated), the phase is Griffin-Lim's.
    """
    from .melspec import frame_window

    n_mels, F = log_mel.shape[-2:]
    win, hop, n_fft = frame_sizes(sample_rate, win_ms, hop_ms, n_fft)
    fb = mel_filterbank(n_mels=n_mels, n_fft=n_fft, sample_rate=sample_rate, f_min=f_min, f_max=f_max)
    power = mel_to_power(log_mel, fb)                                 # (..., n_freq, F)
    # the features were taken through a Povey window, Griffin-Lim uses Hann: match the windows' energies
    gain = frame_window("hann", win, torch.float64).pow(2).sum() / frame_window("povey", win, torch.float64).pow(2).sum()
    wave = griffin_lim((power * gain).sqrt(), n_fft=n_fft, win=win, hop=hop, iters=iters, seed=seed)
    # centred frames start at sample 0; log_mel's frame t starts at t * hop, i.e. is centred win / 2 later
    wave = torch.nn.functional.pad(wave, (win // 2, win - win // 2))
    return deemphasis(wave, preemphasis).float()
