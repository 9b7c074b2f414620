"""Per-feature learning dynamics of deep linear JEPA and MAE: the ODEs, their solutions, learning times.

Setting (Littwin et al., "How JEPA Avoids Noisy Features: The Implicit Bias of Deep Linear Self
Distillation Networks", NeurIPS 2024): views x, y in R^d, a depth-L linear encoder E = W_L .. W_1 and a
linear predictor (JEPA) or decoder (MAE) V, trained by gradient flow on

    JEPA  1/2 E||V E x - sg(E) y||^2        (stop-gradient target, no EMA needed for the analysis)
    MAE   1/2 E||V E x - y||^2

With Sigma_xx = diag(sigma_i^2) and Sigma_yx = diag(lambda_i), a balanced diagonal initialisation
(every layer and V start at eps^(1/L) on each feature, so E starts at eps) stays diagonal and balanced,
and each feature i follows a scalar ODE in its per-layer weight w (encoder gain e = w^L):

    JEPA  dw/dt = sigma^2 w^(2L) (rho - w)           e -> rho^L
    MAE   dw/dt = (lambda - sigma^2 w^(L+1)) w^L     e -> rho^(L/(L+1))

with rho = lambda / sigma^2 the regression coefficient of y on x along the feature. Both are separable,
so the time to reach any w has a closed form (:func:`jepa_time`, :func:`mae_time`). To leading order
in small eps, MAE's learning time depends on lambda alone, while JEPA's gains powers of 1/rho that grow
with depth: JEPA learns high-rho (predictable, low-noise) features first, increasingly so as L grows;
MAE learns high-covariance features first, noisy or not. Time is gradient time t = lr x step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError

METHODS = ("jepa", "mae")


def _check(method: str, depth: int, eps: float) -> None:
    if method not in METHODS:
        raise UserError(f"method must be 'jepa' or 'mae', got {method!r}")
    if int(depth) != depth or depth < 1:
        raise UserError(f"depth must be a positive integer (encoder layers), got {depth!r}")
    if not 0 < eps < 1:
        raise UserError(f"the initial encoder gain eps must be in (0, 1), got {eps!r}")


def _features(lam, rho) -> tuple[np.ndarray, np.ndarray]:
    lam, rho = np.broadcast_arrays(np.asarray(lam, dtype=np.float64), np.asarray(rho, dtype=np.float64))
    if (lam <= 0).any() or (rho <= 0).any():
        raise UserError("every feature needs a positive cross-view covariance lambda and regression coefficient "
                        "rho (features with lambda <= 0 are never learned)")
    return lam, rho


def final_gain(method: str, rho, depth: int) -> np.ndarray:
    """The encoder gain gradient flow converges to: rho^L (JEPA), rho^(L/(L+1)) (MAE)."""
    _check(method, depth, 0.5)
    rho = np.asarray(rho, dtype=np.float64)
    return rho ** depth if method == "jepa" else rho ** (depth / (depth + 1))


def feature_rhs(method: str, w: np.ndarray, lam, rho, depth: int) -> np.ndarray:
    """dw/dt of the per-layer weight w of each feature (the ODEs in the module docstring)."""
    lam, rho = _features(lam, rho)
    sigma2 = lam / rho
    if method == "jepa":
        return sigma2 * w ** (2 * depth) * (rho - w)
    return (lam - sigma2 * w ** (depth + 1)) * w ** depth


def _jepa_primitive(w, rho, depth):
    # sigma^2 * t(w) up to a constant: partial fractions of 1 / (w^(2L) (rho - w)).
    k = 2 * depth
    out = (np.log(w) - np.log(rho - w)) / rho ** k
    for n in range(2, k + 1):
        out = out - w ** (1 - n) / ((n - 1) * rho ** (k - n + 1))
    return out


def jepa_time(w, lam, rho, depth: int, eps: float) -> np.ndarray:
    """Exact time for JEPA's per-layer weight to grow from eps^(1/L) to ``w`` (< rho).

    sigma^2 t = sum_{n=2}^{2L} (w0^(1-n) - w^(1-n)) / ((n-1) rho^(2L-n+1)) + rho^(-2L) ln[w (rho - w0) / (w0 (rho - w))]
    """
    _check("jepa", depth, eps)
    lam, rho = _features(lam, rho)
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), lam.shape)
    w0 = eps ** (1.0 / depth)
    if (w0 >= rho).any() or (w >= rho).any():
        raise UserError(f"jepa_time needs eps^(1/L) = {w0:.3g} < w < rho for every feature; "
                        f"use a smaller eps or a target below rho")
    return (_jepa_primitive(w, rho, depth) - _jepa_primitive(w0, rho, depth)) * rho / lam


def _mae_primitive(w, lam, a_pow, depth, tol=1e-15, max_terms=100000):
    # lambda * t(w) up to a constant: 1 / (w^L (1 - w^(L+1)/a^(L+1))) expanded as a geometric series,
    # integrated term by term; converges for w < a = rho^(1/(L+1)).
    q = w ** (depth + 1) / a_pow
    if depth == 1:
        return np.log(w) - 0.5 * np.log1p(-q)
    out = w ** (1 - depth) / (1 - depth)
    term_w = w ** (1 - depth)
    qk = np.ones_like(q)
    for k in range(1, max_terms):
        qk = qk * q
        p = (depth + 1) * k - depth + 1
        term = term_w * qk / p
        out = out + term
        if np.all(np.abs(term) <= tol * np.abs(out)):
            break
    return out


def mae_time(w, lam, rho, depth: int, eps: float) -> np.ndarray:
    """Exact time for MAE's per-layer weight to grow from eps^(1/L) to ``w`` (< rho^(1/(L+1))).

    lambda t = [G(w) - G(w0)] with G(w) = ln w - 1/2 ln(1 - w^2/rho) for L = 1 and, for L >= 2,
    G(w) = w^(1-L)/(1-L) + sum_{k>=1} w^((L+1)k-L+1) / (((L+1)k-L+1) rho^k).
    """
    _check("mae", depth, eps)
    lam, rho = _features(lam, rho)
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), lam.shape)
    w0 = eps ** (1.0 / depth)
    top = rho ** (1.0 / (depth + 1))
    if (w0 >= top).any() or (w >= top).any():
        raise UserError(f"mae_time needs eps^(1/L) = {w0:.3g} < w < rho^(1/(L+1)) for every feature; "
                        f"use a smaller eps or a lower target")
    return (_mae_primitive(w, lam, rho, depth) - _mae_primitive(np.full_like(w, w0), lam, rho, depth)) / lam


def learning_time(method: str, lam, rho, depth: int, eps: float, *, frac: float = 0.5) -> np.ndarray:
    """Predicted time at which each feature's encoder gain reaches ``frac`` of its final value."""
    _check(method, depth, eps)
    if not 0 < frac < 1:
        raise UserError(f"frac must be in (0, 1), got {frac}")
    lam, rho = _features(lam, rho)
    w_end = rho if method == "jepa" else rho ** (1.0 / (depth + 1))
    w = frac ** (1.0 / depth) * w_end
    return jepa_time(w, lam, rho, depth, eps) if method == "jepa" else mae_time(w, lam, rho, depth, eps)


def leading_time(method: str, lam, rho, depth: int, eps: float) -> np.ndarray:
    """Small-eps critical time: JEPA (1/lambda) sum_{n=1}^{2L-1} 1 / (n rho^(2L-1-n) eps^(n/L));
    MAE eps^(-(L-1)/L) / ((L-1) lambda) for L >= 2 and ln(rho/eps^2) / (2 lambda) for L = 1."""
    _check(method, depth, eps)
    lam, rho = _features(lam, rho)
    if method == "jepa":
        n = np.arange(1, 2 * depth)
        return sum(1.0 / (k * rho ** (2 * depth - 1 - k) * eps ** (k / depth)) for k in n) / lam
    if depth == 1:
        return np.log(rho / eps ** 2) / (2 * lam)
    return eps ** (-(depth - 1) / depth) / ((depth - 1) * lam)


def solve_gains(method: str, lam, rho, depth: int, eps: float, times) -> np.ndarray:
    """Encoder gains e(t) = w(t)^L of every feature at ``times`` (T,), by numerical integration (LSODA).

    Returns (T, F).
    """
    from scipy.integrate import solve_ivp

    _check(method, depth, eps)
    lam, rho = _features(lam, rho)
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or (np.diff(t) < 0).any() or t[0] < 0:
        raise UserError("times must be a non-decreasing 1-D array starting at or after 0")
    w0 = np.full(lam.shape, eps ** (1.0 / depth))
    sol = solve_ivp(lambda _, w: feature_rhs(method, w, lam, rho, depth), (0.0, float(t[-1])), w0,
                    method="LSODA", t_eval=t, rtol=1e-10, atol=1e-14)
    if not sol.success:
        raise RuntimeError(f"ODE integration failed: {sol.message}")
    return sol.y.T ** depth


@dataclass
class DeepLinearRun:
    """A recorded gradient-descent run: times (T,), per-feature encoder gains (T, F) (the column norms
    of E, |E_ii| for a diagonal E), the encoder E (F, F) and predictor/decoder V at the end."""

    times: np.ndarray
    gains: np.ndarray
    E: np.ndarray
    V: np.ndarray


def train_deep_linear(method: str, sigma_xx, sigma_yx, *, depth: int, eps: float, lr: float, steps: int,
                      init: str = "diagonal", seed: int = 0, record_every: int = 1) -> DeepLinearRun:
    """Full-batch gradient descent on the full matrices of the deep linear JEPA or MAE (torch autograd).

    The loss is written with population (or sample) covariances, equal to the expected loss up to a
    constant: 1/2 tr(V E Sxx E^T V^T) - tr(V E Sxy T^T) with T = sg(E) for JEPA and T = I for MAE.
    Gradients come from autograd, independent of the per-feature ODEs.

    Args:
        sigma_xx: (F, F) input covariance E[x x^T]; sigma_yx: (F, F) cross covariance E[y x^T].
        init: "diagonal" (every layer and V equal to eps^(1/L) I: balanced, aligned) or "orthogonal"
            (each a random orthogonal matrix times eps^(1/L): balanced, not aligned).
    """
    import torch

    _check(method, depth, eps)
    if init not in ("diagonal", "orthogonal"):
        raise UserError(f"init must be 'diagonal' or 'orthogonal', got {init!r}")
    sxx = torch.as_tensor(np.asarray(sigma_xx, dtype=np.float64))
    sxy = torch.as_tensor(np.asarray(sigma_yx, dtype=np.float64)).T.contiguous()
    F_ = sxx.shape[0]
    if sxx.shape != (F_, F_) or sxy.shape != (F_, F_):
        raise UserError(f"sigma_xx and sigma_yx must both be (F, F), got {tuple(sxx.shape)} and {tuple(sxy.shape)}")
    scale = eps ** (1.0 / depth)
    gen = torch.Generator().manual_seed(seed)

    def start():
        if init == "diagonal":
            return scale * torch.eye(F_, dtype=torch.float64)
        q, r = torch.linalg.qr(torch.randn(F_, F_, generator=gen, dtype=torch.float64))
        return scale * q * torch.sign(torch.diagonal(r))

    layers = [start().requires_grad_() for _ in range(depth)]
    V = start().requires_grad_()
    params = layers + [V]

    def encoder():
        E = layers[0]
        for W in layers[1:]:
            E = W @ E
        return E

    times, gains = [], []
    for step in range(steps + 1):
        E = encoder()
        if step % record_every == 0 or step == steps:
            times.append(step * lr)
            gains.append(E.detach().norm(dim=0).numpy().copy())
        if step == steps:
            break
        target = E.detach() if method == "jepa" else torch.eye(F_, dtype=torch.float64)
        VE = V @ E
        loss = 0.5 * torch.trace(VE @ sxx @ VE.T) - torch.trace(VE @ sxy @ target.T)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
        if not torch.isfinite(VE).all():
            raise UserError(f"gradient descent diverged at step {step}: lower lr (now {lr:g})")
    return DeepLinearRun(np.array(times), np.array(gains), encoder().detach().numpy(), V.detach().numpy())


def gain_crossing_times(times, gains, final, *, frac: float = 0.5) -> np.ndarray:
    """First time each feature's gain (T, F) reaches ``frac`` x its final value (F,); nan if never."""
    from .stepwise import crossing_times

    return crossing_times(times, np.asarray(gains) / np.asarray(final)[None, :], level=frac)
