"""Closed-form solutions that the spectral solver and the Lie symmetries are checked against."""
from __future__ import annotations

import math

import torch


def heat_modes(x: torch.Tensor, t: torch.Tensor, *, nu: float, length: float, amplitudes, modes,
               phases) -> torch.Tensor:
    """``sum_j A_j exp(-nu k_j^2 t) sin(k_j x + phi_j)`` with ``k_j = 2 pi l_j / length``: (T, N) for x (N,), t (T,)."""
    u = torch.zeros(len(t), len(x), dtype=torch.float64)
    for a, l, p in zip(amplitudes, modes, phases):
        k = 2 * math.pi * l / length
        u += a * torch.exp(-nu * k ** 2 * t)[:, None] * torch.sin(k * x + p)[None]
    return u


def burgers_cole_hopf(x: torch.Tensor, t: torch.Tensor, *, nu: float, length: float, amplitudes, modes, phases,
                      offset: float = 1.0) -> torch.Tensor:
    """Periodic viscous Burgers by the Cole-Hopf transform: ``u = -2 nu phi_x / phi`` with
    ``phi = offset + sum_j a_j exp(-nu k_j^2 t) cos(k_j x + phi_j)`` solving the heat equation
    (``offset > sum |a_j|`` keeps phi positive). Returns (T, N)."""
    if offset <= sum(abs(a) for a in amplitudes):
        raise ValueError("offset must exceed the sum of |amplitudes| so that phi stays positive")
    phi = torch.full((len(t), len(x)), float(offset), dtype=torch.float64)
    phi_x = torch.zeros_like(phi)
    for a, l, p in zip(amplitudes, modes, phases):
        k = 2 * math.pi * l / length
        decay = a * torch.exp(-nu * k ** 2 * t)[:, None]
        phi += decay * torch.cos(k * x + p)[None]
        phi_x -= decay * k * torch.sin(k * x + p)[None]
    return -2 * nu * phi_x / phi


def kdv_soliton(x: torch.Tensor, t: torch.Tensor, *, speed: float, length: float, x0: float = 0.0) -> torch.Tensor:
    """``3c sech^2(sqrt(c) (x - x0 - c t) / 2)`` for ``u_t + u u_x + u_xxx = 0``, wrapped onto the periodic
    interval (the nearest copy; exact to the soliton's tail, ~exp(-sqrt(c) length / 2)). Returns (T, N)."""
    shift = x[None] - x0 - speed * t[:, None]
    shift = torch.remainder(shift + length / 2, length) - length / 2
    return 3 * speed / torch.cosh(math.sqrt(speed) * shift / 2) ** 2
