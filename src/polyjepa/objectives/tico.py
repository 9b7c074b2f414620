"""TiCo: transformation invariance + contrast against a running covariance memory."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_batch


def tico_loss(z_a: torch.Tensor, z_b: torch.Tensor, memory: torch.Tensor, *, beta: float = 0.9,
              rho: float = 8.0) -> dict[str, torch.Tensor]:
    """1 - mean_i <u_a,i, u_b,i> + rho * mean_i u_a,i^T C u_a,i, with C = beta * memory + (1 - beta) * u_a^T u_a / N.

    Args:
        z_a, z_b: (N, D) embeddings of two views; rows are l2-normalised to u.
        memory: (D, D) covariance memory from earlier steps (zeros at the start); C is detached.
    Returns:
        {"loss", "invariance", "covariance", "memory": the updated (D, D) memory C (store it for the
         next step; not a scalar)}.
    (Zhu et al., TiCo, 2022.)
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"tico_loss needs two (N, D) tensors of one shape, got {tuple(z_a.shape)}, {tuple(z_b.shape)}")
    if memory.shape != (z_a.shape[1], z_a.shape[1]):
        raise ValueError(f"TiCo memory must be ({z_a.shape[1]}, {z_a.shape[1]}), got {tuple(memory.shape)}")
    ua = F.normalize(gather_batch(z_a).float(), dim=1)
    ub = F.normalize(gather_batch(z_b).float(), dim=1)
    n = ua.shape[0]
    with torch.no_grad():
        c = beta * memory.float() + (1 - beta) * (ua.T @ ua) / n
    inv = 1 - (ua * ub).sum(1).mean()
    cov = ((ua @ c) * ua).sum(1).mean()
    return {"loss": inv + rho * cov, "invariance": inv, "covariance": cov, "memory": c}


class TiCoLoss(nn.Module):
    """:func:`tico_loss` with its memory kept as a buffer (saved in checkpoints, updated only in training mode)."""

    def __init__(self, dim: int, *, beta: float = 0.9, rho: float = 8.0):
        super().__init__()
        self.beta, self.rho = beta, rho
        self.register_buffer("memory", torch.zeros(dim, dim))

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
        out = tico_loss(z_a, z_b, self.memory, beta=self.beta, rho=self.rho)
        memory = out.pop("memory")
        if self.training:
            self.memory.copy_(memory)
        return out
