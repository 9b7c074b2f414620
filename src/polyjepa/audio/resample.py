"""Band-limited resampling by windowed-sinc interpolation, as one strided convolution."""
from __future__ import annotations

import math

import torch


def sinc_resample_kernel(orig: int, new: int, *, lowpass_width: int = 16, rolloff: float = 0.945,
                         dtype=torch.float64) -> tuple[torch.Tensor, int, int, int]:
    """Polyphase kernel of a windowed-sinc resampler from ``orig`` to ``new`` Hz (both divided by their gcd).

    Output sample k sits at time k/new; it is sum_i x_i h(k/new - i/orig) with the low-pass
    h(t) = (2 fc / orig) sinc(2 fc t) w(t), cutoff fc = rolloff * min(orig, new) / 2 and w a Hann
    window over ``lowpass_width`` zero crossings on each side (Smith, "Digital Audio Resampling").

    Returns (kernel (n, 1, taps), o, n, left) with o = orig/g, n = new/g: output q*n + p uses
    inputs q*o - left ... q*o - left + taps - 1 with weights kernel[p].
    """
    if orig <= 0 or new <= 0:
        raise ValueError(f"sample rates must be positive, got {orig} -> {new}")
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    fc = rolloff * min(orig, new) / 2.0
    half = lowpass_width / (2.0 * fc) * orig               # half-width of the kernel in input samples
    left = math.ceil(half)
    j = torch.arange(-left, o + left + 1, dtype=dtype)     # input offsets relative to q*o
    p = torch.arange(n, dtype=dtype)[:, None]
    dt = p / new - j[None, :] / orig                       # seconds between output and input sample
    u = 2.0 * fc * dt
    sinc = torch.where(u == 0, torch.ones_like(u), torch.sin(math.pi * u) / (math.pi * u))
    inside = dt.abs() <= half / orig
    window = torch.where(inside, 0.5 + 0.5 * torch.cos(math.pi * dt * orig / half), torch.zeros_like(dt))
    kernel = (2.0 * fc / orig) * sinc * window
    return kernel[:, None, :], o, n, left


def resample(x: torch.Tensor, orig: int, new: int, *, lowpass_width: int = 16, rolloff: float = 0.945) -> torch.Tensor:
    """Resample the last axis of ``x`` (..., T) from ``orig`` to ``new`` Hz -> (..., ceil(T * new / orig)).

    Frequencies above ``rolloff`` times the lower Nyquist frequency are removed (anti-aliasing).
    """
    if orig == new:
        return x
    kernel, o, n, left = sinc_resample_kernel(int(orig), int(new), lowpass_width=lowpass_width, rolloff=rolloff)
    shape, T = x.shape[:-1], x.shape[-1]
    out_len = math.ceil(T * n / o)
    q_len = math.ceil(out_len / n)                         # blocks of n outputs, each advancing o inputs
    need = (q_len - 1) * o + kernel.shape[-1]
    flat = x.reshape(-1, 1, T).to(torch.float64)
    flat = torch.nn.functional.pad(flat, (left, max(0, need - T - left)))
    y = torch.nn.functional.conv1d(flat, kernel, stride=o)  # (B, n, Q): phase p of block q
    y = y.transpose(1, 2).reshape(flat.shape[0], -1)[:, :out_len]
    return y.reshape(*shape, out_len).to(x.dtype)
