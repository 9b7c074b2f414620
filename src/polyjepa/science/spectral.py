"""A Fourier pseudo-spectral solver for 1-D periodic evolution equations, and their exact checks.

The equations are the family ``u_t = nu * u_xx - alpha * u * u_x - beta * u_xxx`` on a periodic interval
of length ``length``: the heat equation (alpha = beta = 0), viscous Burgers (alpha = 1, beta = 0) and
Korteweg-de Vries (alpha = beta = 1, nu = 0). Time stepping is ETDRK4 (Cox & Matthews 2002) with the
contour-integral coefficients of Kassam & Trefethen (2005), so the stiff linear part (diffusion, dispersion)
is integrated exactly and only the quadratic term is stepped; it is dealiased by the 2/3 rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import UserError


@dataclass(frozen=True)
class Equation:
    """``u_t = nu * u_xx - alpha * u * u_x - beta * u_xxx``; ``name`` picks the Lie symmetries that apply."""

    name: str
    nu: float = 0.0
    alpha: float = 0.0
    beta: float = 0.0


def heat(nu: float) -> Equation:
    """``u_t = nu * u_xx``."""
    return Equation("heat", nu=nu)


def burgers(nu: float) -> Equation:
    """``u_t + u * u_x = nu * u_xx``."""
    return Equation("burgers", nu=nu, alpha=1.0)


def kdv() -> Equation:
    """``u_t + u * u_x + u_xxx = 0``."""
    return Equation("kdv", alpha=1.0, beta=1.0)


EQUATIONS = {"heat": heat, "burgers": burgers, "kdv": lambda nu=0.0: kdv()}


def wavenumbers(n: int, length: float | torch.Tensor, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Angular wavenumbers of ``rfft`` of ``n`` samples on a period ``length``: (n//2+1,), or (B, n//2+1) for
    a (B,) tensor of lengths."""
    k = torch.arange(n // 2 + 1, dtype=dtype, device=device) * 2 * math.pi
    if isinstance(length, torch.Tensor):
        return k / length.to(dtype)[..., None]
    return k / length


def spectral_derivative(u: torch.Tensor, length: float | torch.Tensor, order: int = 1) -> torch.Tensor:
    """``d^order u / dx^order`` of periodic samples ``u`` (..., N) on a period ``length`` (float or (B,) for
    u of shape (B, ..., N)). The Nyquist mode is dropped for odd orders, where it has no real derivative."""
    n = u.shape[-1]
    k = wavenumbers(n, length, dtype=u.dtype, device=u.device)
    if isinstance(length, torch.Tensor):
        k = k.reshape(k.shape[0], *([1] * (u.ndim - 2)), k.shape[-1])
    factor = (1j * k) ** order
    if order % 2 == 1 and n % 2 == 0:
        factor[..., -1] = 0
    return torch.fft.irfft(torch.fft.rfft(u) * factor, n=n)


def _etdrk4_coefficients(lin: torch.Tensor, h: float, contour_points: int = 32):
    """E, E2, Q, f1, f2, f3 of ETDRK4 for the diagonal linear operator ``lin`` (complex, any shape) and step h."""
    r = torch.exp(2j * math.pi * (torch.arange(contour_points, dtype=torch.float64, device=lin.device) + 0.5)
                  / contour_points)
    lr = h * lin[..., None] + r                              # (..., M) points on a circle around each h*L
    e_lr = torch.exp(lr)
    q = h * torch.mean((torch.exp(lr / 2) - 1) / lr, dim=-1)
    f1 = h * torch.mean((-4 - lr + e_lr * (4 - 3 * lr + lr ** 2)) / lr ** 3, dim=-1)
    f2 = h * torch.mean((2 + lr + e_lr * (lr - 2)) / lr ** 3, dim=-1)
    f3 = h * torch.mean((-4 - 3 * lr - lr ** 2 + e_lr * (4 - lr)) / lr ** 3, dim=-1)
    return torch.exp(h * lin), torch.exp(h * lin / 2), q, f1, f2, f3


def _as_batch(value, batch: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,) or not torch.isfinite(t).all():
        raise UserError(f"{name} must be a finite number or one per sample ({batch}), got shape {tuple(t.shape)}")
    return t


def solve(u0: torch.Tensor, times, *, length, nu=0.0, alpha=0.0, beta=0.0, max_dt: float = 1e-2) -> torch.Tensor:
    """Integrate ``u_t = nu u_xx - alpha u u_x - beta u_xxx`` from ``u0`` and return u at ``times``.

    Args:
        u0: (B, N) or (N,) initial values on the periodic grid ``x_j = j * length / N``.
        times: increasing times >= 0 (T,); the first may be 0 (then u0 itself is returned there).
        length, nu, alpha, beta: numbers, or one per sample (B,).
        max_dt: the largest ETDRK4 step; each output interval is split into equal steps no larger.
    Returns: (B, T, N) float64 (or (T, N) for a 1-D ``u0``).
    """
    u0 = torch.as_tensor(u0)
    single = u0.ndim == 1
    if single:
        u0 = u0[None]
    if u0.ndim != 2 or u0.shape[-1] < 4:
        raise UserError(f"initial values must be (B, N) or (N,) with N >= 4 grid points, got {tuple(u0.shape)}")
    if not torch.isfinite(u0).all():
        raise UserError("initial values hold NaN or inf: check the initial condition before solving")
    times = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if len(times) == 0 or not torch.isfinite(times).all() or times[0] < 0 or (torch.diff(times) <= 0).any():
        raise UserError("times must be finite, >= 0 and strictly increasing")
    if not max_dt > 0:
        raise UserError(f"max_dt must be > 0, got {max_dt}")
    b, n = u0.shape
    length, nu, alpha, beta = (_as_batch(v, b, k) for k, v in
                               (("length", length), ("nu", nu), ("alpha", alpha), ("beta", beta)))
    if (length <= 0).any() or (nu < 0).any():
        raise UserError("length must be > 0 and nu >= 0 (a negative viscosity makes the problem ill-posed)")
    u0 = u0.to(torch.float64)
    k = wavenumbers(n, length, device=u0.device)                                   # (B, K)
    lin = (-nu[:, None] * k ** 2 + 1j * beta[:, None] * k ** 3).to(torch.complex128)
    keep = torch.arange(n // 2 + 1, device=u0.device) < n / 3                      # 2/3-rule dealiasing
    grad = (-0.5j * alpha[:, None] * k) * keep                                     # -alpha * d/dx (u^2 / 2)

    def nonlinear(v: torch.Tensor) -> torch.Tensor:
        u = torch.fft.irfft(v * keep, n=n)
        return grad * torch.fft.rfft(u * u)

    v, t, out, cache = torch.fft.rfft(u0), 0.0, [], {}
    for t_next in times.tolist():
        span = t_next - t
        if span > 0:
            steps = max(1, math.ceil(span / max_dt - 1e-9))
            h = span / steps
            key = round(h, 15)
            if key not in cache:
                cache[key] = _etdrk4_coefficients(lin, h)
            e, e2, q, f1, f2, f3 = cache[key]
            for _ in range(steps):
                nv = nonlinear(v)
                a = e2 * v + q * nv
                na = nonlinear(a)
                bb = e2 * v + q * na
                nb = nonlinear(bb)
                c = e2 * a + q * (2 * nb - nv)
                nc = nonlinear(c)
                v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
            t = t_next
        out.append(torch.fft.irfft(v, n=n))
    u = torch.stack(out, dim=1)
    return u[0] if single else u


def pde_residual(u: torch.Tensor, *, dt, length, nu=0.0, alpha=0.0, beta=0.0) -> torch.Tensor:
    """``u_t + alpha u u_x + beta u_xxx - nu u_xx`` at the middle of five equally spaced snapshots.

    Args:
        u: (B, 5, N) snapshots at ``t - 2dt, ..., t + 2dt`` on the periodic grid; dt, length, nu, alpha,
            beta: numbers or (B,).
    u_t is the fourth-order central difference, the x-derivatives are spectral.
    Returns: (B, N).
    """
    if u.ndim != 3 or u.shape[1] != 5:
        raise UserError(f"pde_residual needs (B, 5, N) snapshots, got {tuple(u.shape)}")
    b = u.shape[0]
    dt, length, nu, alpha, beta = (_as_batch(v, b, k).to(u.device)[:, None] for k, v in
                                   (("dt", dt), ("length", length), ("nu", nu), ("alpha", alpha), ("beta", beta)))
    u_t = (u[:, 0] - 8 * u[:, 1] + 8 * u[:, 3] - u[:, 4]) / (12 * dt)
    mid = u[:, 2]
    ln = length[:, 0]
    return (u_t + alpha * mid * spectral_derivative(mid, ln, 1) + beta * spectral_derivative(mid, ln, 3)
            - nu * spectral_derivative(mid, ln, 2))
