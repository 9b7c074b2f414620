"""Barlow Twins: the cross-correlation of the two views' standardised embeddings driven to the identity."""
from __future__ import annotations

import torch

from .distributed import gather_batch


def barlow_twins_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, lambd: float = 0.0051,
                      eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2 with C = za_std^T zb_std / N.

    Args:
        z_a, z_b: (N, D) embeddings of two views; each is standardised over the (global) batch with
            biased variance + eps (BatchNorm1d without affine, training mode).
        lambd: off-diagonal weight (official code: 0.0051 for D = 8192; scale it for small D).
    Returns:
        {"loss", "on_diag": sum (1 - C_ii)^2, "off_diag": sum_{i != j} C_ij^2}.
    (Zbontar et al., Barlow Twins, ICML 2021.)
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2 or z_a.shape[0] < 2:
        raise ValueError(f"barlow_twins_loss needs two (N >= 2, D) tensors of one shape, got "
                         f"{tuple(z_a.shape)}, {tuple(z_b.shape)}")
    a, b = gather_batch(z_a).float(), gather_batch(z_b).float()

    def standardise(z):
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)

    c = standardise(a).T @ standardise(b) / a.shape[0]  # (D, D)
    diag = c.diagonal()
    on = (1 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return {"loss": on + lambd * off, "on_diag": on, "off_diag": off}
