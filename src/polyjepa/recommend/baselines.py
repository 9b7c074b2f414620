"""The field's baselines for implicit-feedback recommendation: item popularity, matrix factorisation by
alternating least squares (Hu, Koren and Volinsky, ICDM 2008) and, where items have text, TF-IDF similarity."""
from __future__ import annotations

import numpy as np
from scipy import sparse


def popularity_scores(train_items: np.ndarray, n_items: int) -> np.ndarray:
    """(n_items,) the number of training interactions of each item."""
    return np.bincount(train_items, minlength=n_items).astype(np.float64)


def interaction_matrix(queries: np.ndarray, items: np.ndarray, n_queries: int, n_items: int) -> sparse.csr_matrix:
    """(n_queries, n_items) CSR matrix with 1 at every observed (query, item)."""
    m = sparse.csr_matrix((np.ones(len(queries)), (queries, items)), shape=(n_queries, n_items))
    m.data[:] = 1.0
    return m


def _als_half(r: sparse.csr_matrix, y: np.ndarray, reg: float, alpha: float) -> np.ndarray:
    """Exact minimiser of the implicit-ALS objective over the rows' factors, the other side's ``y`` fixed:
    ``x_u = (Y^T Y + Y^T (C_u - I) Y + reg I)^-1 Y^T C_u p_u`` with ``c = 1 + alpha * r``."""
    f = y.shape[1]
    yty = y.T @ y + reg * np.eye(f)
    out = np.zeros((r.shape[0], f))
    for u in range(r.shape[0]):
        lo, hi = r.indptr[u], r.indptr[u + 1]
        if lo == hi:
            continue
        yu, c = y[r.indices[lo:hi]], 1.0 + alpha * r.data[lo:hi]
        a = yty + (yu.T * (c - 1.0)) @ yu
        out[u] = np.linalg.solve(a, (yu * c[:, None]).sum(0))
    return out


def implicit_als(r: sparse.csr_matrix, *, factors: int = 64, reg: float = 0.1, alpha: float = 20.0,
                 iterations: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(query factors (U, f), item factors (I, f)) minimising
    ``sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (|X|^2 + |Y|^2)`` with ``p = [r > 0]``, ``c = 1 + alpha r``,
    by alternating exact least-squares solves. A query with no interactions keeps a zero vector."""
    rng = np.random.default_rng(seed)
    r = sparse.csr_matrix(r, dtype=np.float64)
    rt = r.T.tocsr()
    x = rng.normal(0, 0.01, (r.shape[0], factors))
    y = rng.normal(0, 0.01, (r.shape[1], factors))
    for _ in range(iterations):
        x = _als_half(r, y, reg, alpha)
        y = _als_half(rt, x, reg, alpha)
    return x, y


def als_objective(r: sparse.csr_matrix, x: np.ndarray, y: np.ndarray, *, reg: float, alpha: float) -> float:
    """The implicit-ALS loss computed densely (for checks on small matrices)."""
    dense = np.asarray(sparse.csr_matrix(r).todense(), dtype=np.float64)
    p, c = (dense > 0).astype(np.float64), 1.0 + alpha * dense
    return float((c * (p - x @ y.T) ** 2).sum() + reg * ((x ** 2).sum() + (y ** 2).sum()))


def implicit_package_als(r: sparse.csr_matrix, *, factors: int = 64, reg: float = 0.1, alpha: float = 20.0,
                         iterations: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The same model fitted by the ``implicit`` package (a cross-check), or None when it is not installed."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        return None
    # implicit takes alpha * value as an observed pair's confidence; ours is 1 + alpha * value: hand it those
    conf = sparse.csr_matrix(r, dtype=np.float32)
    conf.data = 1.0 + alpha * conf.data
    model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=1.0, iterations=iterations,
                                    random_state=seed, num_threads=1)
    model.fit(conf, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)
