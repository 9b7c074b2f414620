"""The spectral solver against closed forms, the Lie symmetries as maps from solutions to solutions, and the
Lie-symmetry SSL pipeline end to end at toy size."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.science.exact import burgers_cole_hopf, heat_modes, kdv_soliton
from polyjepa.science.lie_augment import LieAugment
from polyjepa.science.lie_ssl import nmse, run_lie_ssl
from polyjepa.science.pde_data import PDEData, generate
from polyjepa.science.pde_encoder import FieldEncoder, field_channels
from polyjepa.science.spectral import pde_residual, solve, spectral_derivative
from polyjepa.science.symmetries import Field, amplitude, galilean_boost, scale, space_shift, time_shift

COEFFS = {"heat": dict(nu=0.1), "burgers": dict(nu=0.1, alpha=1.0), "kdv": dict(alpha=1.0, beta=1.0)}
DOMAIN = {"heat": (2 * math.pi, 64), "burgers": (2 * math.pi, 128), "kdv": (16.0, 128)}


@pytest.fixture(autouse=True)
def _one_thread():
    # thousands of small FFTs: a second thread only adds waiting on a shared machine
    torch.set_num_threads(1)


def grid(length, n):
    return torch.arange(n, dtype=torch.float64) * length / n


def test_spectral_derivative_of_sines_is_exact():
    x = grid(3.0, 48)
    k = 2 * math.pi * 2 / 3.0
    u = torch.sin(k * x)
    assert torch.allclose(spectral_derivative(u, 3.0, 1), k * torch.cos(k * x), atol=1e-12)
    assert torch.allclose(spectral_derivative(u, 3.0, 2), -k ** 2 * u, atol=1e-11)
    assert torch.allclose(spectral_derivative(u, 3.0, 3), -k ** 3 * torch.cos(k * x), atol=1e-10)


def test_heat_decays_each_fourier_mode_exactly_with_one_nu_per_sample():
    length, n = 2 * math.pi, 64
    x, t = grid(length, n), torch.linspace(0, 2, 5, dtype=torch.float64)
    nus = [0.05, 0.3]
    exact = torch.stack([heat_modes(x, t, nu=nu, length=length, amplitudes=[1.0, 0.4], modes=[1, 5],
                                    phases=[0.3, 1.1]) for nu in nus])
    u = solve(exact[:, 0], t, length=length, nu=torch.tensor(nus, dtype=torch.float64))
    assert (u - exact).abs().max() < 1e-12
    assert exact[1, -1].abs().max() < 0.7 * exact[0, -1].abs().max()       # the two really differ


def test_burgers_matches_cole_hopf():
    length, n = 2 * math.pi, 128
    x, t = grid(length, n), torch.linspace(0, 1.5, 4, dtype=torch.float64)
    exact = burgers_cole_hopf(x, t, nu=0.15, length=length, amplitudes=[0.9, 0.05], modes=[1, 2], phases=[0.0, 1.0],
                              offset=1.0)
    assert exact.abs().max() > 0.3                                          # a non-trivial, steepening wave
    u = solve(exact[0], t, length=length, nu=0.15, alpha=1.0, max_dt=2e-3)
    assert (u - exact).abs().max() < 1e-9
    # the heat equation's solution from the same start is far off: the nonlinear term is really integrated
    assert (solve(exact[0], t, length=length, nu=0.15) - exact).abs().max() > 1e-2


def test_kdv_soliton_travels_at_its_speed():
    length, n = 40.0, 256
    x, t = grid(length, n), torch.linspace(0, 4, 5, dtype=torch.float64)
    exact = kdv_soliton(x, t, speed=1.0, length=length, x0=12.0)
    u = solve(exact[0], t, length=length, alpha=1.0, beta=1.0, max_dt=5e-3)
    assert (u - exact).abs().max() < 1e-6
    assert (exact[-1] - exact[0]).abs().max() > 1.0                         # it moved


def _five_snapshots(equation, seed=0, batch=3, at=1.0, h=None):
    length, n = DOMAIN[equation]
    h = h or (2e-3 if equation == "kdv" else 1e-2)
    g = torch.Generator().manual_seed(seed)
    x = grid(length, n)
    u0 = sum((torch.rand(batch, 1, generator=g, dtype=torch.float64) - 0.5)
             * torch.sin(2 * math.pi * m * x / length + 6.3 * torch.rand(batch, 1, generator=g, dtype=torch.float64))
             for m in (1, 2, 3))
    times = at + h * torch.arange(-2, 3, dtype=torch.float64)
    u = solve(u0, times, length=length, max_dt=1e-3, **COEFFS[equation])
    full = lambda v: torch.full((batch,), v, dtype=torch.float64)  # noqa: E731
    return Field(u=u, length=full(length), dt=full(h), t0=full(at - 2 * h))


def _residual(f: Field, equation: str) -> float:
    return pde_residual(f.u, dt=f.dt, length=f.length, **COEFFS[equation]).abs().max().item()


SYMMETRIES = [("heat", "space_shift"), ("heat", "time_shift"), ("heat", "scale"), ("heat", "amplitude"),
              ("burgers", "space_shift"), ("burgers", "time_shift"), ("burgers", "galilean"), ("burgers", "scale"),
              ("kdv", "space_shift"), ("kdv", "time_shift"), ("kdv", "galilean"), ("kdv", "scale")]


def _apply(f, equation, kind, g):
    return {"space_shift": lambda: space_shift(f, g), "time_shift": lambda: time_shift(f, g),
            "galilean": lambda: galilean_boost(f, g, equation), "scale": lambda: scale(f, g, equation),
            "amplitude": lambda: amplitude(f, g, equation)}[kind]()


@pytest.mark.parametrize("equation, kind", SYMMETRIES)
def test_each_symmetry_maps_a_solution_to_a_solution(equation, kind):
    f = _five_snapshots(equation)
    base = _residual(f, equation)
    size = f.u.abs().max().item()
    assert base < 1e-5 * size
    g = torch.tensor([0.37, -0.25, 0.6], dtype=torch.float64)
    out = _apply(f, equation, kind, g)
    assert _residual(out, equation) < max(10 * base, 1e-9)
    # the same move done wrongly is not a solution: the check can fail
    if kind == "galilean":
        wrong = replace(out, u=out.u - g[:, None, None])                   # the boost without u + g
    elif kind == "scale":
        wrong = replace(out, dt=out.dt * torch.exp(g))                      # the wrong time exponent
    elif kind == "time_shift":
        wrong = replace(out, dt=out.dt * 1.5)                               # time stretched, u unchanged
    else:  # shifts and amplitude: the x grid stretched under unchanged samples
        wrong = replace(out, length=out.length * 1.3)
    assert _residual(wrong, equation) > 1e3 * max(base, 1e-9)


def test_augmented_trajectory_equals_the_solver_from_the_transformed_start():
    equation, length, n = "burgers", 2 * math.pi, 128
    x = grid(length, n)
    u0 = 0.4 * torch.sin(x) + 0.2 * torch.cos(2 * x + 0.5)
    times = torch.arange(0, 12, dtype=torch.float64) * 0.1
    u = solve(u0[None], times, length=length, nu=0.1, alpha=1.0, max_dt=2e-3)
    ones = torch.ones(1, dtype=torch.float64)
    f = Field(u=u, length=length * ones, dt=0.1 * ones, t0=0 * ones)
    aug = scale(galilean_boost(space_shift(f, 1.1), 0.3, equation), 0.2, equation)
    # the transformed field is the solver's solution from its own first row, on its own (stretched) grid
    t_new = aug.times[0] - aug.t0[0]
    again = solve(aug.u[:, 0], t_new, length=aug.length, nu=0.1, alpha=1.0, max_dt=2e-3)
    assert (again - aug.u).abs().max() < 1e-8
    assert (aug.u - u).abs().max() > 0.1


def test_symmetry_identities_and_composition():
    f = _five_snapshots("kdv", batch=2)
    for kind in ("space_shift", "galilean", "scale"):
        assert torch.allclose(_apply(f, "kdv", kind, 0.0).u, f.u, atol=1e-13)
    a = space_shift(space_shift(f, 0.4), 0.9)
    assert torch.allclose(a.u, space_shift(f, 1.3).u, atol=1e-12)
    s = scale(scale(f, 0.1, "kdv"), 0.2, "kdv")
    t = scale(f, 0.3, "kdv")
    assert torch.allclose(s.u, t.u) and torch.allclose(s.length, t.length) and torch.allclose(s.dt, t.dt)
    whole = f.u.shape[-1] // 4                                              # a shift by whole cells is a roll
    assert torch.allclose(space_shift(f, f.length / 4).u, torch.roll(f.u, whole, dims=-1), atol=1e-12)


def test_symmetries_the_equation_lacks_are_refused_in_one_line():
    f = _five_snapshots("heat", batch=1)
    with pytest.raises(UserError, match="no periodic Galilean boost"):
        galilean_boost(f, 0.1, "heat")
    with pytest.raises(UserError, match="heat equation only"):
        amplitude(f, 0.1, "burgers")
    with pytest.raises(UserError, match="symmetries.galilean=0"):
        LieAugment(galilean=0.2).check("heat", 32)
    with pytest.raises(UserError, match="longer than the trajectories"):
        LieAugment(crop=40).check("burgers", 32)


def test_bad_solver_input_is_one_clear_line():
    with pytest.raises(UserError, match="NaN or inf"):
        solve(torch.tensor([0.0, float("nan"), 0.0, 0.0, 1.0]), [0.0, 1.0], length=1.0)
    with pytest.raises(UserError, match="strictly increasing"):
        solve(torch.zeros(8), [1.0, 0.5], length=1.0)
    with pytest.raises(UserError, match="ill-posed"):
        solve(torch.zeros(8), [1.0], length=1.0, nu=-0.1)
    with pytest.raises(UserError, match="pde.equation"):
        PDEData(equation="navier")
    with pytest.raises(UserError, match="multiple of pde.grid"):
        PDEData(grid=48, solve_grid=256)


def test_lie_views_are_seeded_and_shaped():
    spec = PDEData(equation="burgers", n_train=8, n_test=4, few_labels=4, grid=32, solve_grid=64, nu=(0.2, 0.4))
    data = generate(spec)
    u = torch.as_tensor(data["u_train"])
    b = u.shape[0]
    f = Field(u=u, length=torch.full((b,), spec.length), dt=torch.full((b,), spec.dt), t0=torch.zeros(b))
    aug = LieAugment(crop=10, galilean=0.2, scale=0.1)
    v1 = aug(f, "burgers", torch.Generator().manual_seed(3))
    v2 = aug(f, "burgers", torch.Generator().manual_seed(3))
    v3 = aug(f, "burgers", torch.Generator().manual_seed(4))
    assert v1.u.shape == (b, 10, 32) and torch.equal(v1.u, v2.u) and not torch.equal(v1.u, v3.u)
    x = field_channels(v1, u_scale=1.0, length=spec.length, duration=1.0)
    assert x.shape == (b, 3, 10, 32)
    # the coordinate channels carry each view's stretched grid
    assert torch.allclose(x[:, 1, 0, 1] * spec.length, v1.length.float() / 32)
    assert torch.allclose(x[:, 2, 1, 0], v1.dt.float())


def test_encoder_is_invariant_to_shifts_by_its_total_stride():
    torch.manual_seed(0)
    enc = FieldEncoder(width=8, dim=16, blocks=4).eval()
    x = torch.randn(2, 3, 12, 32)
    with torch.no_grad():
        a, b = enc(x), enc(torch.roll(x, 8, dims=-1))
        c = enc(torch.roll(x, 3, dims=-1))
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, c, atol=1e-4)
    out = enc(x)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


def test_nmse_is_one_minus_r2_per_target():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3)) * [1.0, 5.0, 0.1]
    pred = y + rng.normal(size=y.shape) * [0.5, 1.0, 0.05]
    r2 = r2_score(y, pred, multioutput="raw_values")
    assert nmse(pred, y) == pytest.approx(float(np.mean(1 - r2)), rel=1e-10)
    assert nmse(np.broadcast_to(y.mean(0), y.shape), y) == pytest.approx(1.0)


def test_lie_recipe_runs_end_to_end_at_toy_size(tmp_path):
    from polyjepa.config import load_recipe

    cfg = load_recipe("lie-burgers", ["pde.n_train=32", "pde.n_test=16", "pde.few_labels=16", "pde.solve_grid=64",
                                      "train.max_steps=3", "train.batch_size=8", "method.width=4", "method.dim=8",
                                      "method.projector=16", "method.ablation=false"])
    lines = []
    summary = run_lie_ssl(cfg, out=str(tmp_path / "run"), seed=0, echo=lines.append)
    names = [r["representation"] for r in summary["rows"]]
    assert names[0].startswith("raw values") and any(n.startswith("VICReg") for n in names) and \
        names[-1].startswith("supervised")
    assert all(np.isfinite(r["nmse"]) and np.isfinite(r["nmse_few"]) for r in summary["rows"])
    assert (tmp_path / "run" / "encoder.safetensors").exists() and (tmp_path / "run" / "report.md").exists()
    assert summary["built"]["embedding_dim"] == 8
    with pytest.raises(UserError, match="symmetries.galilean=0"):
        run_lie_ssl(load_recipe("lie-heat", ["symmetries.galilean=0.1"]), out=None, echo=lines.append, write=False)
