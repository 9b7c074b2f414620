"""Control: physics experts in gymnasium's simulators, LQR and linearisations against independent
computations, the CEM planner on a linear-quadratic problem with a known answer, ACT-JEPA's parts, and
the errors a user meets."""
import sys

import numpy as np
import pytest
import torch

from polyjepa.cli import main
from polyjepa.control.actjepa import ACTJEPA, ChunkController, chunk_dataset, windows
from polyjepa.control.experts import lqr_gain
from polyjepa.control.planner import CEMPlanner, finite_horizon_lqr_first_gain
from polyjepa.control.rollout import Episode
from polyjepa.control.worldmodel import LatentDynamics
from polyjepa.errors import UserError

gym = pytest.importorskip("gymnasium", reason="the control extra (gymnasium) is not installed")

from polyjepa.control.envs import ControlEnv  # noqa: E402
from polyjepa.control.experts import (CartPoleExpert, PendulumExpert, cartpole_linearization,  # noqa: E402
                                      pendulum_linearization)
from polyjepa.control.rollout import ExpertController, run_episodes  # noqa: E402


def riccati_by_iteration(A, B, Q, R, iters=5000):
    P = Q.copy()
    for _ in range(iters):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
    return K


def test_lqr_gain_equals_the_riccati_recursion_and_stabilises():
    env = ControlEnv("cartpole")
    A, B = cartpole_linearization(env.physics)
    Q, R = np.diag([1.0, 1.0, 10.0, 1.0]), np.array([[0.01]])
    K = lqr_gain(A, B, Q, R)
    np.testing.assert_allclose(K, riccati_by_iteration(A, B, Q, R), rtol=1e-6)
    assert np.abs(np.linalg.eigvals(A - B @ K)).max() < 1
    assert np.abs(np.linalg.eigvals(A)).max() > 1          # the open loop is unstable


def _finite_difference(env, state, act, eps=1e-5):
    """Jacobian of gymnasium's own step in the state (central differences), at a given simulator action."""
    n = len(state)
    J = np.zeros((n, n))
    for i in range(n):
        out = []
        for sign in (1, -1):
            env.reset(0)
            s = np.array(state, dtype=np.float64)
            s[i] += sign * eps
            env.physics.state = s
            env.env.step(act)
            out.append(np.asarray(env.physics.state, dtype=np.float64))
        J[:, i] = (out[0] - out[1]) / (2 * eps)
    return J


def test_cartpole_linearisation_matches_gymnasiums_step():
    env = ControlEnv("cartpole")
    A, B = cartpole_linearization(env.physics)
    zero = np.zeros(4)
    np.testing.assert_allclose(_finite_difference(env, zero, 1), A, atol=1e-6)
    ends = []
    for act in (1, 0):
        env.reset(0)
        env.physics.state = zero.copy()
        env.env.step(act)
        ends.append(np.asarray(env.physics.state, dtype=np.float64))
    np.testing.assert_allclose((ends[0] - ends[1]) / (2 * env.physics.force_mag), B[:, 0], atol=1e-9)


def test_pendulum_linearisation_matches_gymnasiums_step():
    env = ControlEnv("pendulum")
    A, B = pendulum_linearization(env.physics)
    np.testing.assert_allclose(_finite_difference(env, np.zeros(2), np.zeros(1, np.float32)), A, atol=1e-5)
    ends = []
    for u in (1.0, -1.0):
        env.reset(0)
        env.physics.state = np.zeros(2)
        env.env.step(np.array([u], np.float32))
        ends.append(np.asarray(env.physics.state, dtype=np.float64))
    np.testing.assert_allclose((ends[0] - ends[1]) / 2, B[:, 0], atol=1e-6)


def test_the_cartpole_expert_balances_the_full_episode_on_fixed_seeds():
    stats = run_episodes(lambda: ControlEnv("cartpole"), ExpertController(ControlEnv("cartpole")), [0, 1, 2, 3, 4])
    assert stats.lengths.tolist() == [500] * 5 and stats.mean == 500.0


def test_recorded_episodes_hold_what_the_simulator_gave():
    make = lambda: ControlEnv("cartpole", obs_noise=0.1)  # noqa: E731
    stats, eps = run_episodes(make, ExpertController(make(), epsilon=0.2, seed=3), [7, 8], record=True,
                              max_steps=20)
    for ep in eps:
        np.testing.assert_array_equal(ep.obs[0], make().reset(ep.seed))       # the reset observation, kept
        assert len(ep.obs) == len(ep.states) == len(ep.commands) + 1 == 21
        np.testing.assert_array_equal(ep.applied[:, 0], np.where(ep.commands[:, 0] > 0, 1.0, -1.0))
        assert np.abs(ep.obs - ep.states).max() > 0                             # noise on what is observed
    assert stats.lengths.tolist() == [20, 20]


def test_the_pendulum_expert_swings_up_and_holds():
    _, eps = run_episodes(lambda: ControlEnv("pendulum"), ExpertController(ControlEnv("pendulum")), [0, 1, 2],
                          record=True)
    for ep in eps:
        theta = (ep.states[-50:, 0] + np.pi) % (2 * np.pi) - np.pi
        assert np.abs(theta).max() < 0.05, ep.seed       # upright for the last 50 steps
        assert ep.ret > -500


def test_experts_read_gymnasiums_constants():
    env = ControlEnv("cartpole")
    env.physics.gravity = 2 * env.physics.gravity
    assert not np.allclose(CartPoleExpert(env.physics).K, CartPoleExpert(ControlEnv("cartpole").physics).K)
    assert PendulumExpert(ControlEnv("pendulum").physics).energy(0.0, 0.0) == pytest.approx(5.0)  # m g l / 2


def _double_integrator(dt=0.1):
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[0.5 * dt ** 2], [dt]])
    return A, B


def test_finite_horizon_gain_equals_the_batch_least_squares_optimum():
    A, B = _double_integrator()
    Q, R, Qf, H = np.diag([1.0, 0.5]), np.array([[0.1]]), np.diag([5.0, 1.0]), 6
    x0 = np.array([1.0, -0.5])
    # states as an affine map of the stacked actions: x_{h+1} = A^{h+1} x0 + sum_j A^{h-j} B u_j
    G = np.zeros((2 * H, H))
    F = np.zeros((2 * H, 2))
    for h in range(H):
        F[2 * h:2 * h + 2] = np.linalg.matrix_power(A, h + 1)
        for j in range(h + 1):
            G[2 * h:2 * h + 2, j] = (np.linalg.matrix_power(A, h - j) @ B)[:, 0]
    W = np.kron(np.eye(H), Q)
    W[-2:, -2:] = Qf  # the stage costs of x_1..x_{H-1} and the terminal cost of x_H (x_0 is fixed)
    M = G.T @ W @ G + R[0, 0] * np.eye(H)
    u = -np.linalg.solve(M, G.T @ W @ F @ x0)
    # the recursion's stage cost includes x_0 (a constant) and uses Q for x_1..x_{H-1}
    K0 = finite_horizon_lqr_first_gain(A, B, Q, R, Qf, H)
    np.testing.assert_allclose(-(K0 @ x0)[0], u[0], rtol=1e-8)


def test_cem_finds_the_lqr_first_action_on_a_double_integrator():
    A, B = _double_integrator()
    Q, R, Qf, H = np.diag([1.0, 0.5]), 0.1, np.diag([5.0, 1.0]), 6
    x0 = np.array([[1.0, -0.5], [-0.3, 0.8]])
    At, Bt = torch.tensor(A), torch.tensor(B)
    Qt, Qft = torch.tensor(Q), torch.tensor(Qf)
    planner = CEMPlanner(horizon=H, samples=2000, iterations=25, elites=100, low=-5.0, high=5.0, init_std=2.0, seed=0)
    plan = planner.plan(torch.tensor(x0), lambda x, u: x @ At.T + u @ Bt.T,
                        lambda x, u: ((x @ Qt) * x).sum(-1) + R * u.square().sum(-1),
                        terminal=lambda x: ((x @ Qft) * x).sum(-1))
    K0 = finite_horizon_lqr_first_gain(A, B, Q, np.array([[R]]), Qf, H)
    np.testing.assert_allclose(plan[:, 0, 0].numpy(), -(x0 @ K0.T)[:, 0], atol=0.02)


def test_cem_argument_checks():
    with pytest.raises(UserError, match="elites"):
        CEMPlanner(samples=4, elites=8)
    with pytest.raises(UserError, match="horizon"):
        CEMPlanner(horizon=0)


def _episode(T=5, obs_dim=2):
    obs = np.arange((T + 1) * obs_dim, dtype=np.float32).reshape(T + 1, obs_dim)
    return Episode(obs, obs.astype(np.float64), np.arange(T, dtype=np.float32)[:, None], np.ones(T, np.float32))


def test_chunk_dataset_windows_chunks_and_masks():
    ep = _episode()
    d = chunk_dataset([ep], history=2, chunk=3, mean=np.zeros(2), std=np.ones(2))
    assert d["window"].shape == (5, 2, 2) and d["future"].shape == (5, 3, 2, 2)
    np.testing.assert_array_equal(d["window"][0].numpy(), ep.obs[[0, 0]])      # the first obs repeated
    np.testing.assert_array_equal(d["window"][3].numpy(), ep.obs[[2, 3]])
    np.testing.assert_array_equal(d["actions"][3, :, 0].numpy(), [3, 4, 4])      # padded with the last command
    assert d["action_mask"][3].tolist() == [True, True, False]
    np.testing.assert_array_equal(d["future"][3, 1].numpy(), ep.obs[[4, 5]])    # window of step 5, the final obs
    assert d["future_mask"][3].tolist() == [True, True, False]
    np.testing.assert_array_equal(windows(ep.obs, 3)[1], ep.obs[[0, 0, 1]])


def test_actjepa_gradients_and_target():
    model = ACTJEPA(obs_dim=2, action_dim=1, history=2, chunk=3, hidden=16, latent=8, jepa_weight=1.0)
    d = chunk_dataset([_episode()], history=2, chunk=3, mean=np.zeros(2), std=np.ones(2) * 5)
    out = model.loss(d)
    out["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith("target."):
            assert p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    bc = ACTJEPA(obs_dim=2, action_dim=1, history=2, chunk=3, hidden=16, latent=8, jepa_weight=0.0)
    bc.loss(d)["loss"].backward()
    assert all(p.grad is None for p in bc.predictor.parameters())               # no JEPA term, no predictor signal
    before = [p.clone() for p in model.target.parameters()]
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    model.update_target(0, 10)                                                    # momentum 0.99
    for b, t, o in zip(before, model.target.parameters(), model.encoder.parameters()):
        torch.testing.assert_close(t, 0.99 * b + 0.01 * o)


def test_temporal_ensemble_weights_older_chunks_first():
    model = ACTJEPA(obs_dim=2, action_dim=1, history=1, chunk=3, hidden=8, latent=4)
    ctl = ChunkController(model, np.zeros(2, np.float32), np.ones(2, np.float32), ensemble=0.5)
    ctl.reset(1)
    obs = [np.array([[0.1, 0.2]], np.float32), np.array([[0.3, -0.1]], np.float32)]
    got = [ctl.act(o, None) for o in obs]
    with torch.no_grad():
        c0 = model(torch.from_numpy(obs[0])[:, None]).numpy()[0, :, 0]
        c1 = model(torch.from_numpy(obs[1])[:, None]).numpy()[0, :, 0]
    w = np.exp(-0.5 * np.arange(2))
    assert got[0][0, 0] == pytest.approx(np.clip(c0[0], -1, 1), abs=1e-6)
    assert got[1][0, 0] == pytest.approx(np.clip((w[0] * c0[1] + w[1] * c1[0]) / w.sum(), -1, 1), abs=1e-6)


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("polyjepa: error: ") and "\n" not in err
    return err


def test_a_command_of_the_wrong_width_is_one_clear_error():
    env = ControlEnv("cartpole")
    env.reset(0)
    with pytest.raises(UserError, match=r"cartpole command is 1 finite number.*action head of width 1"):
        env.step(np.zeros(2))
    with pytest.raises(UserError, match="windows of shape"):
        ACTJEPA(obs_dim=4, action_dim=1, history=2)(torch.zeros(3, 2, 5))
    with pytest.raises(UserError, match="commands of width 1"):
        LatentDynamics(obs_dim=4, action_dim=1).step(torch.zeros(3, 32), torch.zeros(3, 2))


def test_a_missing_gymnasium_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now raises ImportError
    with pytest.raises(UserError, match=r"need the 'gymnasium' package: pip install 'polyjepa\[control\]'"):
        ControlEnv("cartpole")
    assert main(["pretrain", "actjepa-cartpole", "--out", "unused"]) == 2
    assert "polyjepa[control]" in _one_line(capsys)


def test_an_unknown_environment_is_one_clear_error(capsys):
    with pytest.raises(UserError, match="unknown environment 'mountaincar': choose one of cartpole, pendulum"):
        ControlEnv("mountaincar")
    assert main(["pretrain", "actjepa-cartpole", "env.name=mountaincar"]) == 2
    assert "unknown env 'mountaincar': choose one of cartpole, pendulum" in _one_line(capsys)


def test_pretrain_runs_the_control_recipes_end_to_end(tmp_path, capsys):
    import json

    assert main(["pretrain", "actjepa-cartpole", "--out", str(tmp_path / "a"), "train.max_steps=30",
                 "rollouts.train_seeds=1", "rollouts.episodes=1", "demos.episodes=1"]) == 0
    out = capsys.readouterr().out
    assert "| expert (LQR) | 500.0 |" in out and "| BC (no JEPA term) |" in out
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert [r["controller"].split(" ")[0] for r in summary["rows"]] == ["expert", "ACT-JEPA", "BC"]
    assert (tmp_path / "a" / "actjepa_seed0.safetensors").exists()
    assert main(["pretrain", "planner-cartpole", "--out", str(tmp_path / "p"), "train.max_steps=20",
                 "rollouts.train_seeds=1", "rollouts.episodes=1", "transitions.random_episodes=3",
                 "transitions.noisy_episodes=1", "planner.samples=8", "planner.elites=2", "planner.horizon=3"]) == 0
    assert "CEM in the learned latent model" in capsys.readouterr().out
    # a finished run resumes to the same table: its policies come from the checkpoints, nothing is trained again
    assert main(["pretrain", "--resume", str(tmp_path / "a")]) == 0
    again = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert again["rows"] == summary["rows"]
    capsys.readouterr()
    # a run of a method that keeps no checkpoint (no run.json) is refused in one line
    (tmp_path / "a" / "run.json").unlink()
    assert main(["pretrain", "--resume", str(tmp_path / "a")]) == 2
    assert "start it again" in _one_line(capsys)


def test_a_registered_run_entry_replaces_the_pretrain_pipeline(tmp_path, monkeypatch):
    import polyjepa as pj
    from polyjepa import registry

    monkeypatch.setattr(registry, "_USER", {})
    monkeypatch.setattr(registry, "_USER_RUNNERS", {})
    calls = []

    def my_method(*, width: int = 3):
        return None

    def run(cfg, *, out, seed, echo):
        calls.append((cfg.method.width, out, seed))
        return {"ran": True}

    registry.register("method", "my_policy", my_method, run=run)
    try:
        recipe = tmp_path / "mine.yaml"
        recipe.write_text("method: {name: my_policy, width: 5}\ncard: {modality: control}\n")
        assert pj.pretrain(str(recipe), out="somewhere", seed=4) == {"ran": True}
        assert calls == [(5, "somewhere", 4)]
        with pytest.raises(UserError, match="makes its own data"):
            pj.pretrain(str(recipe), data="digits")
        with pytest.raises(UserError, match="method.width"):
            pj.pretrain(str(recipe), overrides=["method.width=abc"])
    finally:
        registry._tables.cache_clear()
