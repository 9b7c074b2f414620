"""Per-token flow-matching head: a small MLP that turns a condition vector into a sample of one token.

Straight-path flow matching: x_t = (1 - t) eps + t x with eps ~ N(0, I) and t in [0, 1]; the head
regresses the velocity x - eps. Sampling integrates dx/dt = v(x, t, z) from t = 0 (noise) to 1 (data).
At t = 0 the input is pure noise, at t = 1 it is the token itself, which gives the loss closed forms at
both ends (see :func:`flow_matching_loss`).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(...,) times in [0, 1] -> (..., dim) sine-cosine features of 1000 t."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    a = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([torch.sin(a), torch.cos(a)], -1).to(t.dtype if t.is_floating_point() else torch.float32)


def flow_matching_loss(velocity: Callable, x: torch.Tensor, z: torch.Tensor, t: torch.Tensor,
                       noise: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``velocity(x_t, t, z)`` against the straight-path velocity ``x - noise``.

    Args:
        velocity: ``(x_t (n, P), t (n,), z (n, Dz)) -> (n, P)``.
        x: (n, P) data tokens; z: (n, Dz) their conditions; t: (n,) times; noise: (n, P) standard normal.
    Closed forms: at t = 0 the input is the noise alone, so the best velocity is E[x | z] - noise and the
    least loss the mean variance of x given z; at t = 1 the input is x, the best velocity x (E[noise] = 0)
    and the least loss E[noise^2] = 1 per value.
    From: flow matching (Lipman et al., 2023; Liu et al., 2023), per token as in MAR / D-JEPA.
    """
    tt = t.to(x.dtype)[:, None]
    x_t = (1 - tt) * noise + tt * x
    return (velocity(x_t, t, z) - (x - noise)).pow(2).mean()


@torch.no_grad()
def sample_flow(velocity: Callable, z: torch.Tensor, size: int, steps: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, Dz) conditions -> (n, size) samples: Euler steps of dx/dt = velocity(x, t, z) from noise at t = 0."""
    x = torch.randn(z.shape[0], size, generator=generator, device=z.device, dtype=z.dtype)
    dt = 1.0 / steps
    for k in range(steps):
        t = torch.full((z.shape[0],), k * dt, device=z.device, dtype=z.dtype)
        x = x + dt * velocity(x, t, z)
    return x


class ResidualMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.net = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(self.norm(h))


class FlowHead(nn.Module):
    """Velocity MLP v(x_t, t, z) for one token of ``size`` values, conditioned on a vector z.

    Args:
        size: values per token P; cond_dim: width of z; width, depth: the MLP (card: 1024 x 3).
    Shapes:
        forward(x_t (n, P), t (n,), z (n, cond_dim)) -> (n, P).
    """

    def __init__(self, *, size: int, cond_dim: int, width: int = 256, depth: int = 3):
        super().__init__()
        self.size, self.width = size, width
        self.inp = nn.Linear(size, width)
        self.cond = nn.Linear(cond_dim, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.Sequential(*[ResidualMLP(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width, eps=1e-6), nn.Linear(width, size))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.inp(x_t) + self.cond(z) + self.time(time_features(t, self.width).to(x_t.dtype))
        return self.out(self.blocks(h))

    def loss(self, x: torch.Tensor, z: torch.Tensor, generator: torch.Generator | None = None,
             repeats: int = 1) -> torch.Tensor:
        """Flow-matching loss of tokens x (n, P) given z (n, Dz), each token drawn ``repeats`` times (t, noise)."""
        x, z = x.repeat(repeats, 1), z.repeat(repeats, 1)
        t = torch.rand(x.shape[0], device=x.device, dtype=x.dtype, generator=generator)
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return flow_matching_loss(self, x, z, t, noise)

    def sample(self, z: torch.Tensor, steps: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_flow(self, z, self.size, steps, generator)
