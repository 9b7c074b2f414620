"""Deep linear JEPA vs MAE: closed-form learning times against numerical integration, the ODE
solutions against gradient descent on the full matrices, and the orderings the theory predicts."""
import numpy as np
import pytest

from polyjepa.errors import UserError
from polyjepa.theory import (feature_rhs, final_gain, gain_crossing_times, jepa_time, leading_time, learning_time,
                             mae_time, solve_gains, train_deep_linear)


@pytest.mark.parametrize("method", ["jepa", "mae"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_closed_form_time_against_numerical_integration(method, depth):
    from scipy.integrate import solve_ivp

    lam, rho, eps = np.array([1.0, 0.7, 1.3]), np.array([0.5, 0.9, 0.3]), 1e-4
    w_end = rho if method == "jepa" else rho ** (1 / (depth + 1))
    target = 0.6 * w_end
    t = (jepa_time if method == "jepa" else mae_time)(target, lam, rho, depth, eps)
    for i in range(3):
        # integrate each feature's ODE, written out here independently, up to the closed-form time
        sigma2 = lam[i] / rho[i]
        if method == "jepa":
            f = lambda _, w: sigma2 * w ** (2 * depth) * (rho[i] - w)
        else:
            f = lambda _, w: (lam[i] - sigma2 * w ** (depth + 1)) * w ** depth
        sol = solve_ivp(f, (0, t[i]), [eps ** (1 / depth)], method="Radau", rtol=1e-11, atol=1e-14)
        assert sol.y[0, -1] == pytest.approx(target[i], rel=1e-6)


@pytest.mark.parametrize("method", ["jepa", "mae"])
def test_solve_gains_reaches_half_at_learning_time_and_ends_at_final_gain(method):
    lam, rho = np.array([1.05, 1.0]), np.array([0.3, 0.9])
    for depth in (1, 3):
        t = learning_time(method, lam, rho, depth, 1e-3)
        times = np.concatenate([[0.0], np.sort(t), [60 * t.max()]])
        e = solve_gains(method, lam, rho, depth, 1e-3, times)
        final = final_gain(method, rho, depth)
        order = np.argsort(t)
        np.testing.assert_allclose(e[1 + np.arange(2), order], 0.5 * final[order], rtol=1e-4)
        np.testing.assert_allclose(e[-1], final, rtol=1e-3)


def test_feature_rhs_vanishes_at_the_end_points():
    lam, rho = np.array([1.0, 2.0]), np.array([0.4, 0.8])
    for depth in (1, 2, 3):
        np.testing.assert_allclose(feature_rhs("jepa", rho, lam, rho, depth), 0, atol=1e-15)
        np.testing.assert_allclose(feature_rhs("mae", rho ** (1 / (depth + 1)), lam, rho, depth), 0, atol=1e-14)


@pytest.mark.parametrize("method,lr", [("jepa", 0.02), ("mae", 0.01)])
def test_ode_matches_gradient_descent_on_the_full_matrices(method, lr):
    # diagonal covariances with given lambda and rho; balanced diagonal start: the per-feature
    # trajectories of the full matrix model (autograd) follow the ODE within 1% of the final gain.
    lam, rho, depth, eps = np.array([1.0, 0.8, 0.5]), np.array([0.4, 0.9, 0.7]), 2, 0.05
    t = learning_time(method, lam, rho, depth, eps)
    run = train_deep_linear(method, np.diag(lam / rho), np.diag(lam), depth=depth, eps=eps, lr=lr,
                            steps=int(2 * t.max() / lr), record_every=10)
    ode = solve_gains(method, lam, rho, depth, eps, run.times)
    final = final_gain(method, rho, depth)
    assert np.abs(run.gains - ode).max() / final.max() < 0.01
    measured = gain_crossing_times(run.times, run.gains, final)
    np.testing.assert_allclose(measured, t, rtol=0.01)
    # the encoder stays diagonal
    assert np.abs(run.E - np.diag(np.diag(run.E))).max() < 1e-12


@pytest.mark.parametrize("method,lr,steps", [("jepa", 0.5, 600), ("mae", 0.05, 4000)])
def test_final_gains_from_gradient_descent(method, lr, steps):
    lam, rho, depth = np.array([1.0, 1.0]), np.array([0.5, 0.9]), 2
    run = train_deep_linear(method, np.diag(lam / rho), np.diag(lam), depth=depth, eps=0.1, lr=lr,
                            steps=steps, record_every=steps)
    np.testing.assert_allclose(run.gains[-1], final_gain(method, rho, depth), rtol=1e-3)


def test_near_tie_reversal_reproduces_the_card_numbers():
    # feature A: high covariance, noisy (lambda 1.05, rho 0.3); B: lambda 1.0, rho 0.9; eps = 1e-3.
    lam, rho = np.array([1.05, 1.0]), np.array([0.3, 0.9])
    ratios = {L: np.divide(*learning_time("jepa", lam, rho, L, 1e-3)) for L in (1, 2, 3)}
    assert ratios[1] < 1 < ratios[2] < ratios[3]        # JEPA: A first at L = 1, B first from L = 2
    np.testing.assert_allclose([ratios[1], ratios[2], ratios[3]], [0.96, 1.07, 1.40], atol=0.02)
    for L in (1, 2, 3):
        tA, tB = learning_time("mae", lam, rho, L, 1e-3)
        assert tA < tB                                  # MAE: A (higher lambda) first at every depth
    np.testing.assert_allclose(learning_time("jepa", lam, rho, 3, 1e-3), [32690, 23280], rtol=1e-3)
    np.testing.assert_allclose(learning_time("mae", lam, rho, 3, 1e-3), [47.0, 49.6], rtol=5e-3)


def test_orderings_follow_rho_for_deep_jepa_and_lambda_for_mae():
    # equal covariance, different rho: the JEPA ratio t(low rho) / t(high rho) grows with depth; MAE's stays ~1
    lam, rho = np.array([1.0, 1.0]), np.array([0.3, 0.9])
    jepa = [np.divide(*learning_time("jepa", lam, rho, L, 1e-4)) for L in (1, 2, 3, 4)]
    mae = [np.divide(*learning_time("mae", lam, rho, L, 1e-4)) for L in (1, 2, 3, 4)]
    assert all(b > a for a, b in zip(jepa, jepa[1:]))
    assert abs(jepa[0] - 1) < 0.01 and jepa[3] > 1.3
    assert max(abs(r - 1) for r in mae) < 0.07
    # equal rho, different lambda: both learn the higher-covariance feature first
    lam, rho = np.array([2.0, 1.0]), np.array([0.5, 0.5])
    for L in (1, 2, 3):
        for m in ("jepa", "mae"):
            t = learning_time(m, lam, rho, L, 1e-3)
            assert t[0] < t[1]


def test_leading_order_approaches_the_exact_time_as_eps_shrinks():
    lam, rho = np.array([1.0]), np.array([0.6])
    for method in ("jepa", "mae"):
        for L in (2, 3):
            errs = [abs(leading_time(method, lam, rho, L, e) / learning_time(method, lam, rho, L, e) - 1)[0]
                    for e in (1e-2, 1e-4, 1e-6)]
            assert errs[2] < errs[0] and errs[2] < 0.05


def test_bad_arguments():
    with pytest.raises(UserError):
        learning_time("byol", 1.0, 0.5, 2, 1e-3)
    with pytest.raises(UserError):
        learning_time("jepa", 1.0, 0.5, 0, 1e-3)
    with pytest.raises(UserError):
        learning_time("jepa", -1.0, 0.5, 2, 1e-3)
    with pytest.raises(UserError):
        jepa_time(0.6, 1.0, 0.5, 2, 1e-3)  # beyond the end point rho
    with pytest.raises(UserError):
        train_deep_linear("mae", np.eye(2), np.eye(3), depth=1, eps=0.1, lr=0.1, steps=1)
