"""Does a world model's prediction pick out the right outcome among the outcomes of other actions?"""
from __future__ import annotations

import torch


def rank_of_true(dist: torch.Tensor, true_index: int = 0) -> torch.Tensor:
    """(n,) 1-based rank of candidate ``true_index`` when each row of ``dist`` (n, K) is sorted ascending.

    Ties count against the true candidate (rank = 1 + the others at a distance <= its own), so a
    prediction that cannot tell the candidates apart gets the worst rank, K, not a lucky one.
    """
    d_true = dist[:, true_index:true_index + 1]
    others = torch.ones_like(dist, dtype=torch.bool)
    others[:, true_index] = False
    return 1 + ((dist <= d_true) & others).sum(1)


def mean_reciprocal_rank(dist: torch.Tensor, true_index: int = 0) -> float:
    """Mean of 1 / rank of the true candidate over rows of ``dist`` (n, K) (IWM's equivariance measure)."""
    return float((1.0 / rank_of_true(dist, true_index).double()).mean())


def chance_mrr(k: int) -> float:
    """MRR of a uniformly random ranking of k candidates: (1 + 1/2 + ... + 1/k) / k."""
    return sum(1.0 / r for r in range(1, k + 1)) / k
