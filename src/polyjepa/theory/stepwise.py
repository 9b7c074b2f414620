"""Stepwise learning in a linearised Barlow Twins model: the contrastive operator of a set of positive
pairs, its eigenmodes, the closed-form end point, and the step times from small initialisation.

Model and normalisation (Simon et al., "On the Stepwise Nature of Self-Supervised Learning", ICML 2023):
the embedding is f(x) = W x with W (d, m); for n positive pairs (a_i, b_i)

    Gamma = 1/(2n) sum_i (a_i b_i^T + b_i a_i^T)       (m, m), symmetric, not necessarily PSD
    C     = W Gamma W^T                                 the symmetrised cross-correlation of the embeddings
    L(W)  = ||C - I||_F^2                               Barlow Twins with equal on/off-diagonal weights, no BN

Gradient flow is dW/dt = -4 (C - I) W Gamma. Along an eigenpair (gamma_j, v_j) of Gamma the squared
singular value s_j^2 of W obeys a logistic law in u_j = gamma_j s_j^2:

    u_j(t) = 1 / (1 + (1/u_j(0) - 1) exp(-8 gamma_j t))

so each positive mode switches on at t_j = ln(1/u_j(0) - 1) / (8 gamma_j) (the time C's j-th eigenvalue
crosses 1/2), i.e. the inverse eigenvalue times the log of the inverse initial scale, and the modes are
learned one at a time in the order of gamma. The end point from small initialisation keeps the top-d
modes, whitened: W* = U diag(gamma_1^-1/2 .. gamma_d^-1/2) [v_1 .. v_d]^T for any orthogonal U.
Time is gradient-descent time t = lr x step. The paper states the same law; its constants follow from
its own loss normalisation, the ones here from the loss written above.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError


def _pairs(x_a, x_b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x_a, dtype=np.float64)
    b = np.asarray(x_b, dtype=np.float64)
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if a.shape != b.shape or len(a) < 1:
        raise UserError(f"two views of the same samples are needed, one row per sample; got shapes "
                        f"{np.shape(x_a)} and {np.shape(x_b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise UserError("the views contain NaN or inf; clean the data before computing the contrastive operator")
    return a, b


def pair_correlation(x_a, x_b, *, center: bool = False) -> np.ndarray:
    """Gamma = 1/(2n) sum_i (a_i b_i^T + b_i a_i^T), the symmetrised cross-correlation of positive pairs.

    Args:
        x_a, x_b: (n, ...) two views of the same n samples (flattened to (n, m)).
        center: subtract the mean of all 2n views first (the operator of the centred data).
    Returns:
        (m, m) float64, symmetric.
    """
    a, b = _pairs(x_a, x_b)
    if center:
        mu = (a.sum(0) + b.sum(0)) / (2 * len(a))
        a, b = a - mu, b - mu
    g = a.T @ b / len(a)
    return 0.5 * (g + g.T)


def stepwise_modes(gamma: np.ndarray, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the contrastive operator, largest first.

    Args:
        gamma: (m, m) symmetric operator (:func:`pair_correlation`).
        d: keep the top d (default all).
    Returns:
        eigenvalues (d,) descending, eigenvectors (m, d) as columns.
    """
    g = np.asarray(gamma, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise UserError(f"the contrastive operator must be a square (m, m) matrix, got shape {g.shape}")
    w, v = np.linalg.eigh(0.5 * (g + g.T))
    w, v = w[::-1], v[:, ::-1]
    if d is not None:
        w, v = w[:d], v[:, :d]
    return w, v


def kernel_modes(K: np.ndarray, d: int, *, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """The same eigenmodes for a kernel machine f(x) = W phi(x), from the (2n, 2n) Gram matrix alone.

    The 2n points are ordered [a_1 .. a_n, b_1 .. b_n]. With Phi the stacked feature rows and P the
    swap of the two halves, Gamma_phi = Phi^T P Phi / (2n); its non-zero eigenvalues are those of
    K^1/2 P K^1/2 / (2n), and mode j evaluated at x is k(x)^T alpha_j with alpha_j = K^-1/2 u_j
    (pseudo-inverse on K's range). This is the "contrastive kernel" whose top eigenfunctions the
    linearised model learns (kernel PCA with the pair structure in P).

    Args:
        K: (2n, 2n) symmetric PSD Gram matrix over [views a; views b].
        d: number of modes.
    Returns:
        eigenvalues (d,) descending (equal to those of Gamma_phi), coefficients alpha (2n, d): the
        unit-norm mode j evaluated at a point x is k(X, x) @ alpha[:, j].
    """
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] % 2:
        raise UserError(f"the Gram matrix must be (2n, 2n) over [views a; views b], got shape {K.shape}")
    n = K.shape[0] // 2
    s2, U = np.linalg.eigh(0.5 * (K + K.T))
    keep = s2 > rtol * max(s2.max(), 0.0)
    s, U = np.sqrt(s2[keep]), U[:, keep]
    PU = np.concatenate([U[n:], U[:n]])  # P @ U: swap the two views
    M = (s[:, None] * (U.T @ PU) * s[None, :]) / (2 * n)
    mu, w = np.linalg.eigh(0.5 * (M + M.T))
    mu, w = mu[::-1][:d], w[:, ::-1][:, :d]
    alpha = U @ (w / s[:, None])
    return mu, alpha


def final_embedding(gamma: np.ndarray, d: int) -> np.ndarray:
    """The end point of gradient flow from small initialisation, W* (d, m) = diag(gamma_j^-1/2) V_d^T.

    Unique up to a left orthogonal factor; W*^T W* = V_d diag(1/gamma) V_d^T is the invariant to compare.
    Needs the top d eigenvalues positive (modes with gamma <= 0 are never learned).
    """
    w, v = stepwise_modes(gamma, d)
    if len(w) < d or w[-1] <= 0:
        raise UserError(f"only {int((w > 0).sum())} positive eigenmodes, fewer than the embedding width d={d}: "
                        f"use a smaller d or views that share more of the signal")
    return (v / np.sqrt(w)).T


def init_power(W0: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """s_j(0)^2 = ||W0 v_j||^2, the initial weight along each eigenvector (columns of ``vectors``)."""
    return np.square(np.asarray(W0, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64)).sum(0)


def effective_init_power(W0: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The initial weight of each mode that is still free when its turn comes: R_jj^2 from W0 V = Q R.

    From a random (unaligned) start, mode j can only grow in the embedding directions not taken by
    modes 1 .. j-1, which each grow along their own initial direction W0 v_i; so its effective initial
    power is the squared norm of W0 v_j after removing its components along W0 v_1 .. W0 v_{j-1}
    (Gram-Schmidt, i.e. the diagonal of R). Equal to :func:`init_power` for an aligned start; with it,
    :func:`step_times` predicts unaligned runs to about 0.1% (our derivation, checked by gradient
    descent in the tests). Only the first d = W0.shape[0] modes can be learned; later ones get 0.
    """
    W0 = np.asarray(W0, dtype=np.float64)
    V = np.asarray(vectors, dtype=np.float64)
    P = W0 @ V
    k = min(P.shape)
    r = np.diagonal(np.linalg.qr(P[:, :k], mode="r"))
    out = np.zeros(V.shape[1])
    out[:k] = r ** 2
    return out


def step_times(eigenvalues, s0_sq, *, level: float = 0.5, lr: float | None = None) -> np.ndarray:
    """Predicted time (lr x step) at which mode j's eigenvalue of C = W Gamma W^T crosses ``level``.

    t_j = [ln(1/u_j(0) - 1) - ln(1/level - 1)] / (8 gamma_j) with u_j(0) = gamma_j s_j(0)^2: exact for an
    initialisation aligned with the eigenvectors; from an unaligned small start pass
    :func:`effective_init_power` as ``s0_sq``. inf for gamma_j <= 0 or s_j(0) = 0.
    With ``lr``, the growth rate 8 gamma_j of gradient flow becomes that of gradient descent with
    that step, 2 ln(1 + 4 gamma_j lr) / lr per unit of t = lr x step (the early, linear phase
    dominates the step time).
    """
    g = np.asarray(eigenvalues, dtype=np.float64)
    s2 = np.broadcast_to(np.asarray(s0_sq, dtype=np.float64), g.shape)
    if not 0 < level < 1:
        raise UserError(f"level must be in (0, 1), got {level}")
    out = np.full(g.shape, np.inf)
    pos = (g > 0) & (s2 > 0)
    u0 = g[pos] * s2[pos]
    rate = 8 * g[pos] if lr is None else 2 * np.log1p(4 * g[pos] * lr) / lr
    with np.errstate(divide="ignore"):
        out[pos] = (np.log(1 / u0 - 1) - np.log(1 / level - 1)) / rate
    out[pos & (g * s2 >= level)] = 0.0
    return out


def logistic_eigenvalues(eigenvalues, s0_sq, t) -> np.ndarray:
    """Predicted eigenvalues of C at times ``t`` (T,): u_j(t), shape (T, d); 0 for non-positive modes."""
    g = np.asarray(eigenvalues, dtype=np.float64)
    u0 = np.clip(g * np.asarray(s0_sq, dtype=np.float64), 1e-300, None)
    t = np.asarray(t, dtype=np.float64)[:, None]
    with np.errstate(over="ignore"):
        u = 1.0 / (1.0 + (1.0 / u0 - 1.0) * np.exp(-8.0 * g * t))
    return np.where(g > 0, u, 0.0)


def barlow_linear_loss(W: np.ndarray, gamma: np.ndarray) -> float:
    """L = ||W Gamma W^T - I||_F^2."""
    C = W @ gamma @ W.T
    return float(np.square(C - np.eye(len(C))).sum())


@dataclass
class LinearBarlowRun:
    """A recorded gradient-descent run of the linear model: times (T,), eigenvalues of C (T, d)
    descending, loss (T,), the final weights (d, m), and ||W v_j||^2 (T, k) for tracked vectors."""

    times: np.ndarray
    eigenvalues: np.ndarray
    loss: np.ndarray
    W: np.ndarray
    projections: np.ndarray | None = None


def train_linear_barlow(gamma: np.ndarray, W0: np.ndarray, *, lr: float, steps: int,
                        record_every: int = 1, track: np.ndarray | None = None) -> LinearBarlowRun:
    """Full-batch gradient descent on L(W) = ||W Gamma W^T - I||_F^2, step W -= lr * 4 (C - I) W Gamma.

    Equivalent to full-batch training of f(x) = W x on the pairs that built Gamma. Records the
    eigenvalues of C every ``record_every`` steps (and at step 0 and the last step), and with
    ``track`` (m, k) the power ||W v||^2 along each of its columns (e.g. Gamma's eigenvectors).
    """
    W = np.array(W0, dtype=np.float64)
    g = np.asarray(gamma, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != g.shape[0]:
        raise UserError(f"W0 must be (d, m) with m = {g.shape[0]} (the operator's size), got {W.shape}")
    eye = np.eye(W.shape[0])
    times, eigs, losses, proj = [], [], [], []
    for step in range(steps + 1):
        WG = W @ g
        C = WG @ W.T
        if step % record_every == 0 or step == steps:
            times.append(step * lr)
            if track is not None:
                proj.append(np.square(W @ track).sum(0))
            eigs.append(np.linalg.eigvalsh(0.5 * (C + C.T))[::-1])
            losses.append(float(np.square(C - eye).sum()))
        if step < steps:
            W = W - lr * 4.0 * (C - eye) @ WG
            if not np.isfinite(W).all():
                raise UserError(f"gradient descent diverged at step {step}: lower lr (now {lr:g}) below "
                                f"about 1 / (8 * the largest eigenvalue of Gamma)")
    return LinearBarlowRun(np.array(times), np.array(eigs), np.array(losses), W,
                           np.array(proj) if track is not None else None)


def crossing_times(times, values, *, level: float = 0.5) -> np.ndarray:
    """First time each column of ``values`` (T, d) reaches ``level``, linearly interpolated; nan if never."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape[1], np.nan)
    for j in range(v.shape[1]):
        hit = np.nonzero(v[:, j] >= level)[0]
        if len(hit) == 0:
            continue
        k = hit[0]
        if k == 0:
            out[j] = t[0]
            continue
        v0, v1 = v[k - 1, j], v[k, j]
        out[j] = t[k - 1] + (level - v0) / (v1 - v0) * (t[k] - t[k - 1]) if v1 != v0 else t[k]
    return out


def principal_angles(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of A (m, p) and B (m, q)."""
    qa, _ = np.linalg.qr(np.asarray(A, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(B, dtype=np.float64))
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.sort(np.arccos(np.clip(s, -1.0, 1.0)))
