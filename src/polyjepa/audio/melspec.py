"""Kaldi-style log-mel filterbank features in torch (no torchaudio/librosa)."""
from __future__ import annotations

import math

import torch


def hz_to_mel(f):
    """Kaldi/HTK mel scale: 1127 ln(1 + f / 700)."""
    if isinstance(f, torch.Tensor):
        return 1127.0 * torch.log1p(f / 700.0)
    return 1127.0 * math.log1p(f / 700.0)


def mel_to_hz(m):
    if isinstance(m, torch.Tensor):
        return 700.0 * torch.expm1(m / 1127.0)
    return 700.0 * math.expm1(m / 1127.0)


def mel_filterbank(*, n_mels: int, n_fft: int, sample_rate: int, f_min: float = 20.0,
                   f_max: float | None = None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced and triangular on the mel scale (Kaldi).

    Filter i rises from 0 at edge i to 1 at edge i+1 and falls to 0 at edge i+2, where the
    n_mels + 2 edges are equally spaced in mel between ``f_min`` and ``f_max`` (default: Nyquist).
    Between the first and last centre the filters sum to 1 at every frequency.
    """
    nyquist = sample_rate / 2.0
    f_max = nyquist if f_max is None else float(f_max)
    if f_max <= 0:  # Kaldi's convention: a non-positive high frequency is an offset from Nyquist
        f_max = nyquist + f_max
    if not 0 <= f_min < f_max <= nyquist:
        raise ValueError(f"need 0 <= f_min < f_max <= Nyquist ({nyquist:g} Hz at {sample_rate} Hz), "
                         f"got f_min={f_min:g}, f_max={f_max:g}: lower f_max or use audio of a higher sample rate")
    if n_mels < 1:
        raise ValueError(f"n_mels must be >= 1, got {n_mels}")
    edges = torch.linspace(hz_to_mel(float(f_min)), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    mel = hz_to_mel(torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (mel[None] - left) / (centre - left)
    down = (right - mel[None]) / (right - centre)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


def frame_window(kind: str, length: int, dtype=torch.float32) -> torch.Tensor:
    """Analysis window: 'povey' (Kaldi's default, a Hann window to the power 0.85), 'hann', 'hamming', 'rectangular'."""
    n = torch.arange(length, dtype=torch.float64)
    a = 2 * math.pi * n / (length - 1)
    if kind == "povey":
        w = (0.5 - 0.5 * torch.cos(a)) ** 0.85
    elif kind == "hann":
        w = 0.5 - 0.5 * torch.cos(a)
    elif kind == "hamming":
        w = 0.54 - 0.46 * torch.cos(a)
    elif kind == "rectangular":
        w = torch.ones(length, dtype=torch.float64)
    else:
        raise ValueError(f"unknown window {kind!r}: use povey, hann, hamming or rectangular")
    return w.to(dtype)


def num_frames(num_samples: int, win: int, hop: int) -> int:
    """Frames of a clip with Kaldi's snip_edges: only whole windows, 0 if the clip is shorter than one."""
    return 0 if num_samples < win else 1 + (num_samples - win) // hop


def log_mel(wave: torch.Tensor, sample_rate: int, *, n_mels: int = 80, win_ms: float = 25.0, hop_ms: float = 10.0,
            n_fft: int | None = None, f_min: float = 20.0, f_max: float | None = None, window: str = "povey",
            preemphasis: float = 0.97, remove_dc: bool = True, floor: float = 1.1920929e-07) -> torch.Tensor:
    """Log-mel filterbank energies of waveforms, Kaldi ``compute-fbank`` style.

    Per frame of ``win_ms`` every ``hop_ms`` (whole windows only): remove the frame's mean, pre-emphasise
    (x[t] - c x[t-1], x[-1] := x[0]), window, |rFFT|^2 with ``n_fft`` (default: the next power of two of
    the window), mel filterbank, log(max(energy, floor)).

    Args:
        wave: (T,) or (B, T) float waveforms at ``sample_rate``.
    Returns:
        (n_mels, F) or (B, n_mels, F) with F = 1 + (T - win) // hop.
    """
    win = int(round(sample_rate * win_ms / 1000.0))
    hop = int(round(sample_rate * hop_ms / 1000.0))
    if win < 2 or hop < 1:
        raise ValueError(f"window {win_ms} ms / hop {hop_ms} ms are too short at {sample_rate} Hz")
    n_fft = n_fft or 1 << (win - 1).bit_length()
    if n_fft < win:
        raise ValueError(f"n_fft {n_fft} is shorter than the window ({win} samples)")
    T = wave.shape[-1]
    if T < win:
        raise ValueError(f"a clip of {T} samples is shorter than one {win_ms:g} ms window ({win} samples)")
    x = wave.float()
    frames = x.unfold(-1, win, hop)                                  # (..., F, win)
    if remove_dc:
        frames = frames - frames.mean(-1, keepdim=True)
    if preemphasis:
        prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * prev
    frames = frames * frame_window(window, win, frames.dtype)
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)            # (..., F, n_fft/2+1)
    fb = mel_filterbank(n_mels=n_mels, n_fft=n_fft, sample_rate=sample_rate, f_min=f_min, f_max=f_max)
    mel = power @ fb.T.to(power.dtype)                               # (..., F, n_mels)
    return mel.clamp_min(floor).log().transpose(-1, -2).contiguous()
