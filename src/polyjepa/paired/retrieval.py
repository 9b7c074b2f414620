"""Cross-modal retrieval metrics: recall@k and median rank in both directions."""
from __future__ import annotations

import numpy as np


def retrieval_metrics(sim: np.ndarray, owner: np.ndarray | None = None,
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k and median rank of a->b (each a queries the b's) and b->a (each b queries the a's).

    Args:
        sim: (n_a, n_b) similarity between side-a items (rows) and side-b items (columns).
        owner: (n_b,) the a item each b belongs to (default: b j belongs to a j, so n_a = n_b). An a with
            several b's (an image with 5 captions) counts as found at the rank of its best-placed b.
    Returns:
        {"a2b_r1", "a2b_r5", "a2b_r10", "a2b_medr", "b2a_r1", ..., "b2a_medr"}. A rank is 1 + the number of
        wrong candidates scoring at least as high as the match: ties count against the query (pessimistic).
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"retrieval needs an (n_a, n_b) similarity matrix, got shape {sim.shape}")
    n_a, n_b = sim.shape
    owner = np.arange(n_b) if owner is None else np.asarray(owner)
    if owner.shape != (n_b,) or (n_b and (owner.min() < 0 or owner.max() >= n_a)):
        raise ValueError(f"owner must give each of the {n_b} b items an a item in [0, {n_a})")
    own = owner[None, :] == np.arange(n_a)[:, None]                         # (n_a, n_b) True = a match
    best = np.where(own, sim, -np.inf).max(1, keepdims=True)                 # a's best-scoring own b
    rank_a = 1 + ((sim >= best) & ~own).sum(1)                               # (n_a,)
    match = sim[owner, np.arange(n_b)][:, None]                              # (n_b, 1) score of b's own a
    rank_b = 1 + ((sim.T >= match) & ~own.T).sum(1)                          # (n_b,)
    out = {}
    for name, r in (("a2b", rank_a), ("b2a", rank_b)):
        for k in ks:
            out[f"{name}_r{k}"] = float((r <= k).mean())
        out[f"{name}_medr"] = float(np.median(r))
    return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, D) x (m, D) -> (n, m) cosine similarities."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def knn_overlap(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean share of each item's ``k`` nearest neighbours (cosine, itself left out) that two spaces have in common.

    Args:
        x: (n, Dx) and y: (n, Dy) two embeddings of the same n items (e.g. the shared space and a tower's own).
    1 means the neighbourhoods agree exactly; random spaces give about k / (n - 1).
    """
    if len(x) != len(y) or not 0 < k < len(x):
        raise ValueError(f"knn_overlap needs two embeddings of the same n > k items, got {len(x)}, {len(y)}, k={k}")

    def neighbours(e):
        s = cosine_similarity(e, e)
        np.fill_diagonal(s, -np.inf)
        return np.argsort(-s, axis=1, kind="stable")[:, :k]

    nx, ny = neighbours(x), neighbours(y)
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(nx, ny)]))
