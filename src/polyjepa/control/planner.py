"""Cross-entropy method (CEM) planning: search action sequences by rolling a model forward.

The planner knows nothing of what it rolls: ``step(x, u) -> x'`` and ``cost(x, u) -> (N,)`` may be a
learned latent world model and a distance to a goal embedding, or a known linear system.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import UserError


class CEMPlanner:
    """CEM over action sequences of ``horizon`` steps in a box [low, high]^action_dim.

    Each iteration draws ``samples`` sequences from a diagonal Gaussian (clipped to the box), rolls
    each from the start state, keeps the ``elites`` cheapest and refits mean and standard deviation
    to them. The cost of a sequence is ``sum_h cost(x_h, u_h) + terminal_weight * terminal(x_H)``.

    Args:
        horizon, samples, iterations, elites: the search's size.
        action_dim: width of one action; low, high: the box.
        init_std: the first iteration's standard deviation (in action units).
        terminal_weight: the weight of the terminal cost (a short horizon's stand-in for what comes after it).
        seed: the sampling generator's seed.
    Shapes:
        plan(x0 (B, ...), step, cost) -> (B, horizon, action_dim) mean of the last elites.
    """

    def __init__(self, *, horizon: int = 15, samples: int = 128, iterations: int = 4, elites: int = 16,
                 action_dim: int = 1, low: float = -1.0, high: float = 1.0, init_std: float = 0.6, terminal_weight: float = 1.0, seed: int = 0):
        for key, v in {"horizon": horizon, "samples": samples, "iterations": iterations, "elites": elites}.items():
            if not (isinstance(v, int) and v >= 1):
                raise UserError(f"planner.{key}={v!r} must be a whole number >= 1")
        if elites > samples:
            raise UserError(f"planner.elites={elites} is more than planner.samples={samples}: keep fewer elites than samples")
        if not high > low:
            raise UserError(f"planner.low={low} must be below planner.high={high}")
        self.horizon, self.samples, self.iterations, self.elites = horizon, samples, iterations, elites
        if not terminal_weight >= 0:
            raise UserError(f"planner.terminal_weight={terminal_weight!r} must be >= 0")
        self.action_dim, self.low, self.high, self.init_std = action_dim, float(low), float(high), float(init_std)
        self.terminal_weight = float(terminal_weight)
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def plan(self, x0: torch.Tensor, step: Callable, cost: Callable, *, terminal: Callable | None = None,
             init_mean: torch.Tensor | None = None, quantize: Callable | None = None) -> torch.Tensor:
        """The planned sequences for a batch of start states.

        Args:
            x0: (B, ...) start states.
            step: (x (N, ...), u (N, A)) -> x' (N, ...); cost: (x, u) -> (N,) stage cost.
            terminal: x (N, ...) -> (N,) cost of the last state (None: 0).
            init_mean: (B, horizon, A) the first iteration's mean (e.g. the last plan shifted); None: the box centre.
            quantize: u -> the action the system really takes (e.g. its sign), applied before rolling.
        """
        B, H, A, S = len(x0), self.horizon, self.action_dim, self.samples
        dtype = x0.dtype if x0.is_floating_point() else torch.float32
        mean = torch.full((B, H, A), (self.low + self.high) / 2, dtype=dtype) if init_mean is None else init_mean.to(dtype)
        std = torch.full((B, H, A), self.init_std, dtype=dtype)
        x_rep = x0.repeat_interleave(S, 0)                                                   # (B*S, ...)
        for _ in range(self.iterations):
            noise = torch.randn((B, S, H, A), generator=self.generator).to(dtype)
            u = (mean[:, None] + std[:, None] * noise).clamp(self.low, self.high)              # (B, S, H, A)
            u_flat = u.reshape(B * S, H, A)
            taken = quantize(u_flat) if quantize is not None else u_flat
            total = torch.zeros(B * S, dtype=dtype)
            x = x_rep
            for h in range(H):
                total = total + cost(x, taken[:, h])
                x = step(x, taken[:, h])
            if terminal is not None:
                total = total + self.terminal_weight * terminal(x)
            elite_idx = total.view(B, S).topk(self.elites, dim=1, largest=False).indices        # (B, E)
            elite = torch.gather(u, 1, elite_idx[:, :, None, None].expand(-1, -1, H, A))       # (B, E, H, A)
            mean, std = elite.mean(1), elite.std(1, unbiased=False)
        return mean


def finite_horizon_lqr_first_gain(A, B, Q, R, Qf, horizon: int):
    """K_0 of the finite-horizon discrete LQR (u_0 = -K_0 x_0) by the backward Riccati recursion (numpy)."""
    import numpy as np

    P = np.asarray(Qf, dtype=np.float64)
    K = None
    for _ in range(horizon):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
    return K
