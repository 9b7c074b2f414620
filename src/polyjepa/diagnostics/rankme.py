"""RankMe: effective rank of an embedding matrix."""
from __future__ import annotations

import torch


def rankme(embeddings: torch.Tensor, eps: float = 1e-7) -> float:
    """exp(entropy) of the normalised singular values of (N, D) embeddings (Garrido et al., ICML 2023).

    Equals k for a matrix with k equal non-zero singular values; at most min(N, D).
    """
    s = torch.linalg.svdvals(embeddings.double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))
