"""VICReg: invariance + variance + covariance on two views."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather_batch
from .vcr import vcr_loss


def vicreg_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, sim_weight: float = 25.0, var_weight: float = 25.0,
                cov_weight: float = 1.0, gamma: float = 1.0, eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """sim_weight * MSE(z_a, z_b) + var_weight * (v(z_a) + v(z_b)) / 2 + cov_weight * (c(z_a) + c(z_b)).

    Args:
        z_a, z_b: (N, D) embeddings of two views (N >= 2).
    v and c are :func:`vcr_loss`'s terms: mean_j relu(gamma - sqrt(Var z_j + eps)) with the unbiased
    variance, and (1/D) sum_{i != j} Cov_ij^2; the covariance terms of the branches are summed, as in
    the official code. Statistics over the global batch under DDP.
    Returns: {"loss", "invariance", "variance", "covariance"} (the unweighted terms).
    (Bardes et al., VICReg, ICLR 2022.)
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"vicreg_loss needs two (N, D) tensors of one shape, got {tuple(z_a.shape)}, {tuple(z_b.shape)}")
    a, b = gather_batch(z_a).float(), gather_batch(z_b).float()
    inv = F.mse_loss(a, b)
    ra, rb = vcr_loss(a, gamma=gamma, eps=eps), vcr_loss(b, gamma=gamma, eps=eps)
    var = (ra["var"] + rb["var"]) / 2
    cov = ra["cov"] + rb["cov"]
    return {"loss": sim_weight * inv + var_weight * var + cov_weight * cov,
            "invariance": inv, "variance": var, "covariance": cov}
