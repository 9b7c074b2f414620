"""Seeded data sets of PDE solutions with the coefficients and initial-condition parameters to regress.

Each trajectory starts from ``u0 = sum_l A_l sin(2 pi l x / length + phi_l)`` (random amplitudes and phases,
as in Brandstetter et al. 2022) and is solved with :func:`polyjepa.science.spectral.solve` on a fine grid, then
stored on a coarser one (every ``solve_grid // grid``-th point, so nothing is interpolated).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..errors import UserError
from .spectral import EQUATIONS, solve


@dataclass
class PDEData:
    """Which equation, how many trajectories, on which grid (the recipe's ``pde`` section).

    ``nu`` is the (low, high) range of the viscosity / diffusivity, drawn log-uniformly (KdV has none);
    ``amplitude`` the range of each mode's amplitude; the targets are ``log nu`` for heat and Burgers and the
    amplitudes of the initial modes for KdV.
    """

    equation: str = "burgers"
    n_train: int = 1024
    n_test: int = 512
    few_labels: int = 128       # the small labelled subset of the train trajectories (the rest stay unlabelled)
    grid: int = 32
    solve_grid: int = 256
    length: float = 2 * math.pi
    dt: float = 0.075
    steps: int = 32
    nu: tuple[float, float] = (0.03, 0.3)
    amplitude: tuple[float, float] = (0.1, 0.5)
    modes: tuple[int, ...] = (1, 2, 3)
    max_dt: float = 5e-3
    seed: int = 0
    targets: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self):
        if self.equation not in EQUATIONS:
            raise UserError(f"pde.equation={self.equation!r} is not known: choose one of "
                            f"{', '.join(sorted(EQUATIONS))}")
        for key in ("n_train", "n_test", "few_labels", "grid", "solve_grid", "steps"):
            v = getattr(self, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise UserError(f"pde.{key}={v!r} must be a whole number >= 1")
        if self.few_labels > self.n_train:
            raise UserError(f"pde.few_labels={self.few_labels} exceeds pde.n_train={self.n_train}")
        if self.solve_grid % self.grid:
            raise UserError(f"pde.solve_grid={self.solve_grid} must be a multiple of pde.grid={self.grid}")
        if not (self.length > 0 and self.dt > 0 and self.max_dt > 0):
            raise UserError("pde.length, pde.dt and pde.max_dt must be > 0")
        lo, hi = self.nu
        if self.equation != "kdv" and not 0 < lo <= hi:
            raise UserError(f"pde.nu={list(self.nu)} must be a range 0 < low <= high")
        if not 0 <= self.amplitude[0] <= self.amplitude[1]:
            raise UserError(f"pde.amplitude={list(self.amplitude)} must be a range 0 <= low <= high")
        if not self.modes or any(int(m) < 1 or 3 * int(m) >= self.grid for m in self.modes):
            raise UserError(f"pde.modes={list(self.modes)} must be wavenumbers >= 1, well below grid/3")
        self.targets = (("log_nu",) if self.equation != "kdv" else tuple(f"A{m}" for m in self.modes))


def sample_parameters(spec: PDEData, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Amplitudes and phases (n, len(modes)) and nu (n,), drawn from the spec's ranges."""
    m = len(spec.modes)
    lo, hi = spec.nu
    nu = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) if spec.equation != "kdv" else np.zeros(n)
    return {"amplitudes": rng.uniform(*spec.amplitude, (n, m)), "phases": rng.uniform(0, 2 * math.pi, (n, m)),
            "nu": nu}


def initial_values(spec: PDEData, amplitudes: np.ndarray, phases: np.ndarray) -> torch.Tensor:
    """(n, solve_grid) float64 sums of sines."""
    x = torch.arange(spec.solve_grid, dtype=torch.float64) * spec.length / spec.solve_grid
    a, p = torch.as_tensor(amplitudes), torch.as_tensor(phases)
    k = torch.tensor([2 * math.pi * m / spec.length for m in spec.modes], dtype=torch.float64)
    return (a[:, :, None] * torch.sin(k[None, :, None] * x + p[:, :, None])).sum(1)


def generate(spec: PDEData, *, batch: int = 512) -> dict[str, np.ndarray]:
    """Train and test trajectories: ``u_train`` (n_train, steps, grid) float32, ``y_train`` (n_train, n_targets),
    the same for test, and the parameters they came from."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n_train + spec.n_test
    params = sample_parameters(spec, n, rng)
    coeffs = EQUATIONS[spec.equation](1.0)
    times = torch.arange(spec.steps, dtype=torch.float64) * spec.dt
    stride = spec.solve_grid // spec.grid
    us = []
    for s in range(0, n, batch):
        sl = slice(s, s + batch)
        u0 = initial_values(spec, params["amplitudes"][sl], params["phases"][sl])
        nu = torch.as_tensor(params["nu"][sl]) if spec.equation != "kdv" else 0.0
        u = solve(u0, times, length=spec.length, nu=nu, alpha=coeffs.alpha, beta=coeffs.beta, max_dt=spec.max_dt)
        us.append(u[..., ::stride].float().numpy())
    u = np.concatenate(us)
    if not np.isfinite(u).all():
        raise UserError(f"the {spec.equation} solutions blew up: lower pde.amplitude or pde.max_dt, or raise "
                        f"pde.solve_grid")
    if spec.equation == "kdv":
        y = params["amplitudes"]
    else:
        y = np.log(params["nu"])[:, None]
    y = y.astype(np.float32)
    tr, te = slice(0, spec.n_train), slice(spec.n_train, n)
    return {"u_train": u[tr], "y_train": y[tr], "u_test": u[te], "y_test": y[te], "nu": params["nu"],
            "amplitudes": params["amplitudes"], "phases": params["phases"], "spec": asdict(spec)}
