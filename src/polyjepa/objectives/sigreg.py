"""SIGReg (LeJEPA): a sliced Epps-Pulley test of the embeddings against N(0, I), and the LeJEPA loss."""
from __future__ import annotations

import math

import torch

from .distributed import gather_along


def epps_pulley(x: torch.Tensor, *, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Epps-Pulley statistic of each column of (..., N, K) samples against N(0, 1) -> (..., K).

    N * sum_j w_j |phi_N(t_j) - exp(-t_j^2/2)|^2 on t_j = linspace(0, t_max, knots), with trapezoid
    weights doubled for the even integrand and the Gaussian window exp(-t^2/2):
    approximates N * int_{-t_max}^{t_max} |phi_N(t) - phi(t)|^2 exp(-t^2/2) dt.
    """
    t = torch.linspace(0, t_max, knots, dtype=torch.float32, device=x.device)
    dt = t_max / (knots - 1)
    window = torch.exp(-t.pow(2) / 2)
    weights = torch.full_like(t, 2 * dt)
    weights[0] = weights[-1] = dt
    xt = x.float().unsqueeze(-1) * t                                 # (..., N, K, T)
    err = (xt.cos().mean(-3) - window).pow(2) + xt.sin().mean(-3).pow(2)  # (..., K, T)
    return (err @ (weights * window)) * x.shape[-2]


def random_directions(dim: int, num: int, seed: int, device=None) -> torch.Tensor:
    """(dim, num) unit directions from a generator seeded by ``seed`` alone: equal on every process."""
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(dim, num, generator=g)
    return (a / a.norm(dim=0, keepdim=True)).to(device)


def sigreg_loss(z: torch.Tensor, *, num_slices: int = 256, knots: int = 17, t_max: float = 3.0,
                seed: int = 0) -> dict[str, torch.Tensor]:
    """Mean Epps-Pulley statistic of ``num_slices`` random 1-D projections of the embeddings.

    Args:
        z: (N, D) or (V, N, D) embeddings (not normalised: the target is N(0, I)); the statistic
            is taken per view over the N samples of the global batch and averaged over views and slices.
        seed: draws the directions; pass the training step so they change every step and agree on all ranks.
    Returns: {"loss"}. About 1.06 for N(0, I) data whatever N; grows with N otherwise.
    (Balestriero & LeCun, LeJEPA, 2025.)
    """
    if z.ndim not in (2, 3):
        raise ValueError(f"sigreg_loss needs (N, D) or (V, N, D) embeddings, got {tuple(z.shape)}")
    z = gather_along(z, -2)
    a = random_directions(z.shape[-1], num_slices, seed, z.device)
    return {"loss": epps_pulley(z.float() @ a, knots=knots, t_max=t_max).mean()}


def lejepa_loss(views: torch.Tensor, *, n_global: int = 2, lambd: float = 0.05, num_slices: int = 256,
                knots: int = 17, t_max: float = 3.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """lambd * SIGReg(all views) + (1 - lambd) * mean over (views, N, D) of (z_v - mean of the global views)^2.

    Args:
        views: (V, N, D) embeddings; the first ``n_global`` views are the global crops whose mean is
            every view's prediction target (no stop-gradient, no teacher).
    Returns: {"loss", "sigreg", "invariance"}.
    """
    if views.ndim != 3 or not 1 <= n_global <= views.shape[0]:
        raise ValueError(f"lejepa_loss needs (V, N, D) views with 1 <= n_global <= V, got {tuple(views.shape)}, "
                         f"n_global={n_global}")
    if not 0 <= lambd <= 1:
        raise ValueError(f"lambd must lie in [0, 1], got {lambd}")
    z = gather_along(views, 1).float()  # (V, N_global, D)
    centre = z[:n_global].mean(0)
    inv = (z - centre).pow(2).mean()
    a = random_directions(z.shape[-1], num_slices, seed, z.device)
    sig = epps_pulley(z @ a, knots=knots, t_max=t_max).mean()
    return {"loss": lambd * sig + (1 - lambd) * inv, "sigreg": sig, "invariance": inv}


def gaussian_sigreg_limit() -> float:
    """E[SIGReg] for N(0, I) data on the infinite domain: sqrt(2 pi) - sqrt(2 pi / 3)."""
    return math.sqrt(2 * math.pi) - math.sqrt(2 * math.pi / 3)
