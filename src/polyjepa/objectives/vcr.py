"""Variance-covariance regularisation (VCR / the VICReg regulariser without the invariance term)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def vcr_loss(z: torch.Tensor, *, var_weight: float = 1.0, cov_weight: float = 0.04, gamma: float = 1.0,
             eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """Keep every channel's batch standard deviation above ``gamma`` and channels decorrelated.

    Args:
        z: (B, D) embeddings (B >= 2).
    Returns:
        {"loss": var_weight * var + cov_weight * cov, "var": mean_j relu(gamma - sqrt(Var_b z_j + eps)),
         "cov": (1/D) sum_{i != j} C_ij^2 with C the centred (B-1)-normalised covariance}
    (Bardes et al., VICReg, ICLR 2022; as VCR in Drozdov et al., VJ-VCR, 2024).
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"vcr_loss needs (B >= 2, D) embeddings, got {tuple(z.shape)}")
    z = z.float()
    B, D = z.shape
    zc = z - z.mean(0)
    var = F.relu(gamma - torch.sqrt(zc.pow(2).sum(0) / (B - 1) + eps)).mean()
    cov = zc.T @ zc / (B - 1)
    off = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
    cov_term = off / D
    return {"loss": var_weight * var + cov_weight * cov_term, "var": var, "cov": cov_term}
