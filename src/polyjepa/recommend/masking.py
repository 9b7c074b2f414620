"""Correlated feature masking (CFM): features grouped by mutual information, and complementary masks that keep
correlated groups in the same view, so that one view cannot be read off the other through a shortcut.

The item's features here are the terms of its text. Terms are first grouped into ``G`` fields by their
pairwise mutual information (a field plays the part of one categorical feature of the paper); the masks
are drawn over fields. (Yao et al., "Self-supervised Learning for Large-scale Item Recommendations",
CIKM 2021.)
"""
from __future__ import annotations

import numpy as np
import torch


def binary_mutual_information(x) -> np.ndarray:
    """(V, V) mutual information (nats) between the presence indicators of the columns of ``x`` (n, V), dense or
    scipy sparse; the diagonal is each column's entropy."""
    from scipy import sparse

    b = (sparse.csr_matrix(x) != 0).astype(np.float64)
    n = b.shape[0]
    p11 = (b.T @ b).toarray() / n
    p1 = np.asarray(b.sum(0)).ravel() / n
    p10 = p1[:, None] - p11
    p01 = p1[None, :] - p11
    p00 = 1.0 - p1[:, None] - p1[None, :] + p11
    mi = np.zeros_like(p11)
    for p, a, c in ((p11, p1[:, None], p1[None, :]), (p10, p1[:, None], 1 - p1[None, :]),
                    (p01, 1 - p1[:, None], p1[None, :]), (p00, 1 - p1[:, None], 1 - p1[None, :])):
        denom = a * c
        ok = (p > 1e-15) & (denom > 1e-15)
        mi[ok] += p[ok] * np.log(p[ok] / denom[ok])
    return np.maximum(mi, 0.0)


def group_by_mutual_information(mi: np.ndarray, n_groups: int, *, order: np.ndarray | None = None) -> np.ndarray:
    """(V,) group id of each feature: ``n_groups`` groups of near-equal size, each a seed feature plus the
    not yet grouped features sharing most information with it.

    Args:
        mi: (V, V) pairwise mutual information.
        n_groups: number of groups G (1 <= G <= V).
        order: the order in which seeds are taken (default: by decreasing entropy, the diagonal of ``mi``).
    Every feature lands in exactly one group.
    """
    v = mi.shape[0]
    if not 1 <= n_groups <= v:
        raise ValueError(f"n_groups must be in [1, {v}], got {n_groups}")
    sizes = [len(s) for s in np.array_split(np.arange(v), n_groups)]
    order = np.argsort(-np.diag(mi), kind="stable") if order is None else np.asarray(order)
    group = np.full(v, -1, np.int64)
    for g, size in enumerate(sizes):
        seed = next(f for f in order if group[f] < 0)
        free = np.flatnonzero(group < 0)
        free = free[free != seed]
        near = free[np.argsort(-mi[seed, free], kind="stable")[:size - 1]]
        group[seed] = g
        group[near] = g
    return group


def group_mutual_information(mi: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(G, G) mean pairwise mutual information between the features of two groups."""
    g = int(group.max()) + 1
    onehot = np.eye(g)[group]                                      # (V, G)
    size = onehot.sum(0)
    return (onehot.T @ mi @ onehot) / np.outer(size, size)


def correlated_masks(group_mi: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """(B, G) bool masks of view 1: each row holds its seed group and the ``G // 2 - 1`` groups with the highest
    mutual information to it; view 2 masks the complement.

    Args:
        group_mi: (G, G) mutual information between groups; seeds: (B,) seed group of each item.
    """
    g = group_mi.shape[0]
    rows = group_mi[seeds].clone()                                   # (B, G)
    rows.scatter_(1, seeds[:, None], float("inf"))                   # the seed always comes first
    rank = rows.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    return rank < max(1, g // 2)


def random_masks(batch: int, n_groups: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, G) bool masks of view 1 that hold a random half of the groups (random feature masking, RFM)."""
    noise = torch.rand(batch, n_groups, generator=generator)
    rank = noise.argsort(dim=1).argsort(dim=1)
    return rank < max(1, n_groups // 2)
