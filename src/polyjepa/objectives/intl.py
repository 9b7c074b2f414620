"""INTL: IterNorm (Newton-iteration whitening) + trace loss."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .distributed import gather_batch


def iter_norm(z: torch.Tensor, *, iterations: int = 4, axis: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """Whiten (N, D) embeddings approximately with T Newton steps P <- 1.5 P - 0.5 P^3 S/tr(S).

    Args:
        z: (N, D).
        iterations: T (about 4: the uncoupled iteration diverges for many steps).
        axis: 1 whitens the D x D feature covariance of the batch-centred z (S = zc^T zc / (N-1),
            out = zc W); 0 whitens the N x N Gram of the feature-centred rows (S = zc zc^T / (D-1),
            out = W zc), cheap when D >> N ("channel whitening" in the INTL code).
        eps: added to tr(S), so a collapsed batch gives zeros with finite gradients.
    Returns (N, D); the output covariance has eigenvalues l p_T(l)^2 for the eigenvalues l of S/tr(S)
    (p_T the scalar recursion from p_0 = 1): incomplete whitening.
    (Huang et al., IterNorm, CVPR 2019; Weng et al., INTL, ICLR 2024.)
    """
    if axis not in (0, 1):
        raise ValueError(f"iter_norm axis must be 0 or 1, got {axis}")
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    if axis == 1:
        zc = z - z.mean(0, keepdim=True)
        s = zc.T @ zc / (zc.shape[0] - 1)
    else:
        zc = z - z.mean(1, keepdim=True)
        s = zc @ zc.T / (zc.shape[1] - 1)
    trace = s.diagonal().sum() + eps
    s_n = s / trace
    p = torch.eye(s.shape[0], dtype=s.dtype, device=s.device)
    for _ in range(iterations):
        p = 1.5 * p - 0.5 * torch.linalg.matrix_power(p, 3) @ s_n
    w = p / trace.sqrt()
    return zc @ w if axis == 1 else w @ zc


def trace_loss(z_white: torch.Tensor, *, axis: int = 0) -> torch.Tensor:
    """sum_j (Var_j - 1)^2 over the whitened axis (unbiased variance): 0 for fully whitened output."""
    var = z_white.var(0) if axis == 1 else z_white.var(1)
    return (var - 1).pow(2).sum()


def default_intl_beta(n: int, d: int, axis: int) -> float:
    """The INTL paper's trade-off 0.01 (log2 N - 3) (axis 0) or 0.01 (log2 D - 3) (axis 1), at least 0.01."""
    return max(0.01 * (math.log2(n if axis == 0 else d) - 3), 0.01)


def intl_loss(views: Sequence[torch.Tensor] | torch.Tensor, *, beta: float | None = None, iterations: int = 4,
              axis: int = 0) -> dict[str, torch.Tensor]:
    """(1/(V-1)) sum_{i>=1} [(2 - 2 mean cos(w_i, w_0)) + beta (TL(w_i) + TL(w_0))], w_v = iter_norm(z_v).

    Args:
        views: V >= 2 tensors (N, D) (or one (V, N, D) tensor); view 0 is the anchor (a global crop).
        beta: trace-loss weight; None takes :func:`default_intl_beta` of the global batch.
    Returns: {"loss", "alignment": mean of 2 - 2 cos, "trace": mean trace loss over views}.
    """
    views = [gather_batch(v).float() for v in views]
    if len(views) < 2:
        raise ValueError(f"intl_loss needs at least 2 views, got {len(views)}")
    n, d = views[0].shape
    beta = default_intl_beta(n, d, axis) if beta is None else beta
    white = [iter_norm(v, iterations=iterations, axis=axis) for v in views]
    tl = [trace_loss(w, axis=axis) for w in white]
    align = [2 - 2 * F.cosine_similarity(w, white[0], dim=1).mean() for w in white[1:]]
    loss = sum(a + beta * (t + tl[0]) for a, t in zip(align, tl[1:])) / (len(views) - 1)
    return {"loss": loss, "alignment": torch.stack(align).mean().detach(), "trace": torch.stack(tl).mean().detach()}
