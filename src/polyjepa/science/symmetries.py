"""Lie point symmetries of the heat, Burgers and KdV equations, applied to sampled solutions.

A solution is held as a :class:`Field`: values ``u`` (B, T, N) on the regular grid ``x_j = j * length / N``,
``t_i = t0 + i * dt`` of a periodic interval. Each symmetry maps it to another exact solution of the same
equation (same coefficients):

| symmetry | heat | Burgers | KdV |
|---|---|---|---|
| space shift ``x + g`` | yes | yes | yes |
| time shift ``t + g`` | yes | yes | yes |
| Galilean boost ``x + g t, u + g`` | no (not periodic) | yes | yes |
| scaling ``x e^g, t e^{qg}, u e^{-pg}`` | q=2, p=0 | q=2, p=1 | q=3, p=2 |
| amplitude ``u e^g`` (linearity) | yes | no | no |

Shifts and boosts move the solution along x; on a periodic, band-limited grid the Fourier phase shift does that
exactly, so the result stays on the same regular grid. Scaling keeps the samples and changes the grid (``length``,
``dt``, ``t0``), which is why an encoder must see the coordinates next to ``u``. The finite transformations are
applied one after another, which composes group elements exactly. (Mialon et al., "Self-supervised learning with
Lie symmetries for partial differential equations", NeurIPS 2023; Brandstetter et al., ICML 2022.)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..errors import UserError
from .spectral import wavenumbers

# (time exponent q, amplitude exponent p) of the scaling x -> x e^g, t -> t e^{qg}, u -> u e^{-pg}
SCALING = {"heat": (2.0, 0.0), "burgers": (2.0, 1.0), "kdv": (3.0, 2.0)}
GALILEAN = {"burgers", "kdv"}


@dataclass(frozen=True)
class Field:
    """Samples of a solution: ``u`` (B, T, N); ``length``, ``dt``, ``t0`` (B,) describe the grid."""

    u: torch.Tensor
    length: torch.Tensor
    dt: torch.Tensor
    t0: torch.Tensor

    @property
    def times(self) -> torch.Tensor:
        """(B, T) absolute times of the rows."""
        i = torch.arange(self.u.shape[1], dtype=self.dt.dtype, device=self.dt.device)
        return self.t0[:, None] + i * self.dt[:, None]

    def crop(self, start: torch.Tensor, steps: int) -> "Field":
        """Rows ``start[b] : start[b] + steps`` of each sample (a time translation of the window)."""
        idx = start[:, None] + torch.arange(steps, device=start.device)
        u = torch.gather(self.u, 1, idx[:, :, None].expand(-1, -1, self.u.shape[2]))
        return replace(self, u=u, t0=self.t0 + start.to(self.dt.dtype) * self.dt)


def _per_sample(g, field: Field) -> torch.Tensor:
    g = torch.as_tensor(g, dtype=field.u.dtype, device=field.u.device)
    return g.expand(field.u.shape[0]) if g.ndim == 0 else g


def shift_x(u: torch.Tensor, shift: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """``u(x - shift)`` by a Fourier phase shift. u: (B, T, N); shift: (B,) or (B, T); length: (B,)."""
    n = u.shape[-1]
    k = wavenumbers(n, length, dtype=u.dtype, device=u.device)[:, None, :]          # (B, 1, K)
    shift = shift[:, None] if shift.ndim == 1 else shift
    phase = torch.exp(-1j * k * shift[..., None])
    if n % 2 == 0:  # the Nyquist mode of a real signal cannot be shifted by a fraction of a cell and stay real
        phase[..., -1] = torch.cos(k[..., -1] * shift)
    return torch.fft.irfft(torch.fft.rfft(u) * phase, n=n)


def space_shift(field: Field, g) -> Field:
    """``u(x - g, t)``."""
    return replace(field, u=shift_x(field.u, _per_sample(g, field), field.length))


def time_shift(field: Field, g) -> Field:
    """``u(x, t - g)``: the same samples, stamped ``g`` later."""
    return replace(field, t0=field.t0 + _per_sample(g, field))


def galilean_boost(field: Field, g, equation: str) -> Field:
    """``u(x - g t, t) + g`` (Burgers, KdV)."""
    if equation not in GALILEAN:
        raise UserError(f"the {equation} equation has no periodic Galilean boost: drop it from the augmentations "
                        f"(boosts apply to {', '.join(sorted(GALILEAN))})")
    g = _per_sample(g, field)
    u = shift_x(field.u, g[:, None] * field.times, field.length) + g[:, None, None]
    return replace(field, u=u)


def scale(field: Field, g, equation: str) -> Field:
    """``e^{-pg} u(x e^{-g}, t e^{-qg})``: the samples stay, the grid stretches."""
    if equation not in SCALING:
        raise UserError(f"unknown equation {equation!r}: choose one of {', '.join(sorted(SCALING))}")
    q, p = SCALING[equation]
    g = _per_sample(g, field)
    tq = torch.exp(q * g)
    return Field(u=field.u * torch.exp(-p * g)[:, None, None], length=field.length * torch.exp(g),
                 dt=field.dt * tq, t0=field.t0 * tq)


def amplitude(field: Field, g, equation: str) -> Field:
    """``e^g u`` (linear equations only)."""
    if equation != "heat":
        raise UserError(f"amplitude scaling is a symmetry of the linear heat equation only, not of {equation}")
    return replace(field, u=field.u * torch.exp(_per_sample(g, field))[:, None, None])
