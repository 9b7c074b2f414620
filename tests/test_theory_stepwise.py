"""The linearised Barlow Twins theory against direct computation: the operator, its eigenmodes, the
kernel form, the closed-form end point and the predicted step times versus gradient descent."""
import numpy as np
import pytest

from polyjepa.errors import UserError
from polyjepa.theory import (barlow_linear_loss, crossing_times, effective_init_power, final_embedding,
                             init_power, kernel_modes, logistic_eigenvalues, pair_correlation,
                             principal_angles, step_times, stepwise_modes, train_linear_barlow)


def _spectrum_operator(m, spectrum, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((m, m)))
    return Q @ np.diag(spectrum) @ Q.T


def _views(n=200, m=7, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, m)) * np.linspace(2, 0.5, m)
    return base + 0.3 * rng.standard_normal((n, m)), base + 0.3 * rng.standard_normal((n, m))


def test_pair_correlation_equals_explicit_sum():
    a, b = _views()
    ref = sum(np.outer(x, y) + np.outer(y, x) for x, y in zip(a, b)) / (2 * len(a))
    np.testing.assert_allclose(pair_correlation(a, b), ref, rtol=1e-12, atol=1e-12)
    mu = (a.mean(0) + b.mean(0)) / 2
    refc = sum(np.outer(x - mu, y - mu) + np.outer(y - mu, x - mu) for x, y in zip(a, b)) / (2 * len(a))
    np.testing.assert_allclose(pair_correlation(a, b, center=True), refc, rtol=1e-12, atol=1e-12)
    # images are flattened; the two views must match
    assert pair_correlation(a.reshape(200, 7, 1), b.reshape(200, 7, 1)).shape == (7, 7)
    with pytest.raises(UserError):
        pair_correlation(a, b[:-1])


def test_modes_match_direct_eigendecomposition():
    a, b = _views()
    G = pair_correlation(a, b)
    w, v = stepwise_modes(G, 4)
    ref_w, ref_v = np.linalg.eigh(G)
    np.testing.assert_allclose(w, ref_w[::-1][:4], rtol=1e-10)
    for j in range(4):
        assert abs(abs(v[:, j] @ ref_v[:, -1 - j]) - 1) < 1e-8
        np.testing.assert_allclose(G @ v[:, j], w[j] * v[:, j], atol=1e-10)
    assert (np.diff(w) <= 0).all()


def test_kernel_modes_equal_feature_space_modes():
    # An explicit finite feature map: the Gram-matrix route must give Gamma_phi's eigenvalues, and
    # the eigenfunctions k(X, x) @ alpha must be the projections of phi(x) onto Gamma_phi's eigenvectors.
    a, b = _views(n=60, m=5, seed=1)
    R = np.random.default_rng(2).standard_normal((5, 12))
    phi_a, phi_b = np.tanh(a @ R), np.tanh(b @ R)
    Phi = np.concatenate([phi_a, phi_b])
    mu, alpha = kernel_modes(Phi @ Phi.T, 4)
    w, v = stepwise_modes(pair_correlation(phi_a, phi_b), 4)
    np.testing.assert_allclose(mu, w, rtol=1e-8)
    x_new = np.tanh(np.random.default_rng(3).standard_normal((10, 5)) @ R)
    via_kernel = (x_new @ Phi.T) @ alpha
    direct = x_new @ v
    for j in range(4):
        sign = np.sign(via_kernel[:, j] @ direct[:, j])
        np.testing.assert_allclose(sign * via_kernel[:, j], direct[:, j], atol=1e-8)


def test_closed_form_end_point_is_the_gradient_descent_fixed_point():
    G = _spectrum_operator(8, [1.0, 0.6, 0.35, 0.15, 0.08, 0.04, 0.02, 0.01])
    d = 3
    W0 = 1e-8 * np.random.default_rng(4).standard_normal((d, 8))
    run = train_linear_barlow(G, W0, lr=5e-3, steps=12000, record_every=100)
    W_star = final_embedding(G, d)
    # W is unique up to a left rotation: compare the invariant W^T W.
    rel = np.linalg.norm(run.W.T @ run.W - W_star.T @ W_star) / np.linalg.norm(W_star.T @ W_star)
    assert rel < 1e-3
    np.testing.assert_allclose(run.W @ G @ run.W.T, np.eye(d), atol=1e-6)
    assert barlow_linear_loss(W_star, G) < 1e-20
    _, v = stepwise_modes(G, d)
    assert principal_angles(run.W.T, v).max() < 1e-3
    assert run.loss[0] == pytest.approx(d, rel=1e-6)  # starts with d unlearned modes
    with pytest.raises(UserError):
        final_embedding(_spectrum_operator(4, [1.0, -0.5, -1.0, -2.0]), 2)


def test_aligned_step_times_and_trajectories_match_gradient_descent():
    # Card setup: m = 12, d = 4, spectrum 1, .6, .35, .2, ... aligned start of size 1e-3.
    G = _spectrum_operator(12, [1, 0.6, 0.35, 0.2, 0.1, 0.05] + [0.02] * 6)
    w, v = stepwise_modes(G, 4)
    W0 = 1e-3 * v.T
    run = train_linear_barlow(G, W0, lr=2e-3, steps=9000, record_every=5)
    measured = crossing_times(run.times, run.eigenvalues)
    predicted = step_times(w, init_power(W0, v))
    np.testing.assert_allclose(measured, predicted, rtol=0.02)
    np.testing.assert_allclose(measured, [1.73, 2.99, 5.32, 9.65], atol=0.02)
    curves = logistic_eigenvalues(w, init_power(W0, v), run.times)
    assert np.abs(curves - run.eigenvalues).max() < 0.02
    # a loss step of about one per learned mode
    assert run.loss[0] == pytest.approx(4, rel=1e-5) and run.loss[-1] < 1e-6


def test_unaligned_step_order_predicted_on_a_fixed_seed():
    # Top 8 modes, random small start: Spearman >= 0.9 between predicted and measured step times,
    # and each time within 2% with the Gram-Schmidt effective initial power (gradient-flow rate; lr is small).
    m, d = 16, 8
    spectrum = np.geomspace(1.0, 0.08, m)
    G = _spectrum_operator(m, spectrum, seed=5)
    w, v = stepwise_modes(G, d)
    W0 = 1e-4 * np.random.default_rng(6).standard_normal((d, m)) / np.sqrt(m)
    pred = step_times(w, effective_init_power(W0, v))
    run = train_linear_barlow(G, W0, lr=1e-2, steps=int(1.3 * pred.max() / 1e-2), record_every=2, track=v)
    # each eigenvector's own power gamma_j ||W v_j||^2 (unlike sorted eigenvalues, its order is not forced)
    measured = crossing_times(run.times, run.projections * w)
    np.testing.assert_allclose(measured, crossing_times(run.times, run.eigenvalues), rtol=0.01)
    assert np.isfinite(measured).all()
    rank = lambda x: np.argsort(np.argsort(x))
    rho = np.corrcoef(rank(pred), rank(measured))[0, 1]
    assert rho >= 0.9
    np.testing.assert_allclose(measured, pred, rtol=0.02)
    assert (np.diff(pred) > 0).all()  # learned in the order of the eigenvalues
    # the plain projection (no Gram-Schmidt) is the aligned formula, and differs for later modes
    assert effective_init_power(v.T, v) == pytest.approx(init_power(v.T, v))


def test_step_times_properties():
    w = np.array([2.0, 1.0, 0.5, -0.1])
    t = step_times(w, 1e-6)
    t2 = step_times(w, 1e-8)
    assert (np.diff(t[:3]) > 0).all() and np.isinf(t[3])
    # smaller start: later steps, by ln(1/s^2) / (8 gamma) per decade of s^2
    np.testing.assert_allclose(t2[:3] - t[:3], np.log(100) / (8 * w[:3]), rtol=1e-3)
    with pytest.raises(UserError):
        step_times(w, 1e-6, level=1.5)


def test_principal_angles():
    e = np.eye(4)
    np.testing.assert_allclose(principal_angles(e[:, :2], e[:, :2]), 0, atol=1e-7)
    np.testing.assert_allclose(principal_angles(e[:, :1], e[:, 1:2]), [np.pi / 2])
    c, s = np.cos(0.3), np.sin(0.3)
    np.testing.assert_allclose(principal_angles(e[:, :1], (c * e[:, 0] + s * e[:, 2])[:, None]), [0.3])
