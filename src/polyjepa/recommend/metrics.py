"""Leave-one-out ranking metrics: the held-out item's rank among all candidates, HitRate@k and NDCG@k."""
from __future__ import annotations

import numpy as np


def heldout_ranks(scores: np.ndarray, target: np.ndarray, exclude: list[np.ndarray] | None = None) -> np.ndarray:
    """(Q,) 0-based rank of each query's held-out item; an item scoring equal to it counts as ranked above.

    Args:
        scores: (Q, n_items) scores of every item for each test query (higher is better).
        target: (Q,) the held-out item of each query.
        exclude: per query, items that are not candidates (its training items, itself); the target must
            not be among them.
    """
    s = np.array(scores, dtype=np.float64, copy=True)
    rows = np.arange(len(s))
    if exclude is not None:
        for r, ex in enumerate(exclude):
            s[r, ex] = -np.inf
    t = s[rows, target]
    if not np.isfinite(t).all():
        raise ValueError("a held-out item is excluded or has a non-finite score")
    return (s > t[:, None]).sum(1) + (s == t[:, None]).sum(1) - 1


def hit_rate(ranks: np.ndarray, k: int = 10) -> float:
    """Share of queries whose held-out item is in the top k."""
    return float(np.mean(np.asarray(ranks) < k)) if len(ranks) else float("nan")


def ndcg(ranks: np.ndarray, k: int = 10) -> float:
    """Mean of ``1 / log2(rank + 2)`` over queries, 0 where the held-out item is below the top k (one relevant
    item per query, so the ideal DCG is 1)."""
    r = np.asarray(ranks, dtype=np.float64)
    if not len(r):
        return float("nan")
    return float(np.mean(np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)))
