"""Expert controllers written from the physics of gymnasium's classic-control tasks.

CartPole: LQR on the dynamics linearised about the upright equilibrium, with gymnasium's own
constants and its explicit-Euler step; the simulator only pushes with +-force_mag, so the expert
pushes in the direction of the LQR force. Pendulum: energy shaping swings the pole up
(dE/dt = theta_dot * u, so u = k (E_top - E) theta_dot adds energy while E < E_top), and an LQR
on the linearised upright dynamics catches and holds it.
"""
from __future__ import annotations

import numpy as np


def lqr_gain(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Infinite-horizon discrete-time LQR gain K (u = -K x) from the discrete algebraic Riccati equation.

    Args: A (n, n), B (n, m), Q (n, n) state cost, R (m, m) action cost. Returns K (m, n).
    """
    from scipy.linalg import solve_discrete_are

    P = solve_discrete_are(A, B, Q, R)
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


def cartpole_linearization(physics) -> tuple[np.ndarray, np.ndarray]:
    """(A (4, 4), B (4, 1)) of gymnasium's CartPole step about the upright rest state, per newton of force.

    The continuous dynamics at theta = 0 (sin theta ~ theta, cos theta ~ 1, theta_dot^2 ~ 0):
    theta_acc = (g theta - F / M) / (l (4/3 - m_p / M)),  x_acc = F / M - m_p l theta_acc / M,
    with M the total mass and l the half-length; the step is explicit Euler with dt = tau.
    """
    g, mp, M, l, dt = physics.gravity, physics.masspole, physics.total_mass, physics.length, physics.tau
    denom = l * (4.0 / 3.0 - mp / M)
    th_theta, th_force = g / denom, -1.0 / (M * denom)             # theta_acc = th_theta theta + th_force F
    x_theta, x_force = -mp * l * th_theta / M, 1.0 / M - mp * l * th_force / M
    Ac = np.array([[0, 1, 0, 0], [0, 0, x_theta, 0], [0, 0, 0, 1], [0, 0, th_theta, 0]], dtype=np.float64)
    Bc = np.array([[0], [x_force], [0], [th_force]], dtype=np.float64)
    return np.eye(4) + dt * Ac, dt * Bc


def pendulum_linearization(physics) -> tuple[np.ndarray, np.ndarray]:
    """(A (2, 2), B (2, 1)) of gymnasium's Pendulum step about upright, per unit torque, state (theta, theta_dot).

    theta_acc = 3 g / (2 l) sin theta + 3 / (m l^2) u; the step is semi-implicit Euler
    (theta_dot first, then theta with the new theta_dot).
    """
    g, m, l, dt = physics.g, physics.m, physics.l, physics.dt
    a, b = 3 * g / (2 * l), 3 / (m * l ** 2)
    A = np.array([[1 + a * dt ** 2, dt], [a * dt, 1]], dtype=np.float64)
    B = np.array([[b * dt ** 2], [b * dt]], dtype=np.float64)
    return A, B


class CartPoleExpert:
    """LQR balance controller for gymnasium's CartPole; the command is the LQR force over force_mag, clipped.

    Args:
        physics: the unwrapped gymnasium CartPole (its constants).
        q: state cost weights (x, x_dot, theta, theta_dot); r: force cost (per newton squared).
    """

    def __init__(self, physics, *, q: tuple[float, ...] = (1.0, 1.0, 10.0, 1.0), r: float = 0.01):
        A, B = cartpole_linearization(physics)
        self.K = lqr_gain(A, B, np.diag(q), np.array([[r]]))
        self.force_mag = float(physics.force_mag)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """(4,) simulator state -> (1,) command in [-1, 1]."""
        force = -(self.K @ np.asarray(state, dtype=np.float64))
        return np.clip(force / self.force_mag, -1.0, 1.0)


class PendulumExpert:
    """Energy-shaping swing-up with an LQR catch for gymnasium's Pendulum; command = torque / max_torque.

    Args:
        physics: the unwrapped gymnasium Pendulum (its constants).
        k_energy: gain of the energy pump; catch: |theta| (radians) below which the LQR takes over.
        q, r: LQR costs on (theta, theta_dot) and on torque (gymnasium's reward weights by default).
    """

    def __init__(self, physics, *, k_energy: float = 1.0, catch: float = 0.5,
                 q: tuple[float, float] = (1.0, 0.1), r: float = 0.001):
        A, B = pendulum_linearization(physics)
        self.K = lqr_gain(A, B, np.diag(q), np.array([[r]]))
        self.m, self.l, self.g = float(physics.m), float(physics.l), float(physics.g)
        self.max_torque, self.k_energy, self.catch = float(physics.max_torque), k_energy, catch

    def energy(self, theta: float, theta_dot: float) -> float:
        """Rod about its pivot: 1/2 (m l^2 / 3) theta_dot^2 + m g (l / 2) cos theta (upright: m g l / 2)."""
        return 0.5 * self.m * self.l ** 2 / 3 * theta_dot ** 2 + self.m * self.g * self.l / 2 * np.cos(theta)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """(2,) simulator state (theta, theta_dot) -> (1,) command in [-1, 1]."""
        theta, theta_dot = float(state[0]), float(state[1])
        theta = (theta + np.pi) % (2 * np.pi) - np.pi
        if abs(theta) < self.catch:
            u = float(-(self.K @ np.array([theta, theta_dot]))[0])
        else:
            gap = self.m * self.g * self.l / 2 - self.energy(theta, theta_dot)
            u = self.k_energy * gap * np.sign(theta_dot if theta_dot != 0 else 1.0) * self.max_torque
        return np.clip(np.array([u / self.max_torque]), -1.0, 1.0)


def make_expert(env):
    """The expert controller of a :class:`~polyjepa.control.envs.ControlEnv`'s task."""
    return {"cartpole": CartPoleExpert, "pendulum": PendulumExpert}[env.name](env.physics)
