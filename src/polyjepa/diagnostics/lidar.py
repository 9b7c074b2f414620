"""LiDAR: effective rank of the linear-discriminant matrix of embeddings of several views per sample."""
from __future__ import annotations

import torch


def lidar(embeddings: torch.Tensor, *, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """exp(entropy) of the normalised eigenvalues of Sw^{-1/2} Sb Sw^{-1/2}.

    Args:
        embeddings: (n, q, d): n samples ("surrogate classes") x q >= 2 views each.
        delta: ridge added to the within-sample covariance Sw; eps: added to every eigenvalue.
    Sb is the (n - 1)-normalised covariance of the per-sample means, Sw the n(q - 1)-normalised
    covariance of the views around their sample's mean. At most min(d, n - 1); as delta -> 0,
    invariant to any invertible linear map of the embeddings (unlike RankMe).
    (Thilak et al., LiDAR, ICLR 2024; defaults of stable-pretraining's callback.)
    """
    e = torch.as_tensor(embeddings).double()
    if e.ndim != 3 or e.shape[0] < 2 or e.shape[1] < 2:
        raise ValueError(f"lidar needs (n >= 2 samples, q >= 2 views, d) embeddings, got {tuple(e.shape)}")
    n, q, d = e.shape
    mu_x = e.mean(1)                                   # (n, d)
    cb = mu_x - mu_x.mean(0)
    cw = (e - mu_x[:, None]).reshape(n * q, d)
    zeros = 0
    if d > n * (q + 1):
        # Wide embeddings: outside the span U of the centred data, Sw = delta I and Sb = 0, so those
        # d - m directions add exact zero eigenvalues; the rest are those of the m x m problem in U.
        u, _ = torch.linalg.qr(torch.cat([cw, cb]).T)  # (d, m), m = n (q + 1)
        cb, cw, zeros = cb @ u, cw @ u, d - u.shape[1]
    k = cb.shape[1]
    s_b = cb.T @ cb / (n - 1)
    s_w = cw.T @ cw / (n * (q - 1)) + delta * torch.eye(k, dtype=e.dtype)
    evals, evecs = torch.linalg.eigh(s_w)
    inv_sqrt = evecs @ torch.diag(evals.clamp_min(1e-300).rsqrt()) @ evecs.T
    lam = torch.linalg.eigvalsh(inv_sqrt @ s_b @ inv_sqrt).clamp_min(0)
    lam = torch.cat([lam, lam.new_zeros(zeros)])
    p = (lam + eps) / (lam + eps).sum()
    return float(torch.exp(-(p * p.log()).sum()))
