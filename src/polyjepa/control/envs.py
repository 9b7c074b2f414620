"""Gymnasium's classic-control tasks behind one interface: a continuous command in [-1, 1] per step.

Every task takes a command vector c (A numbers in [-1, 1]) and turns it into the simulator's own
action: CartPole (discrete push left/right) pushes in the direction of ``c[0]``'s sign; Pendulum
applies the torque ``c[0] * max_torque``. Learners regress commands (ACT-style L1), experts
produce them, and a planner searches over them, so all three share one action space.

Observations may carry Gaussian noise, scaled per coordinate by the task's typical magnitude
(``obs_noise=0.1``: a tenth of that scale); experts read the noise-free simulator state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError, require


@dataclass(frozen=True)
class TaskSpec:
    """What the wrapper needs to know about a gymnasium task."""

    gym_id: str
    obs_dim: int
    action_dim: int
    obs_scale: tuple[float, ...]   # a typical magnitude of each observation coordinate (noise is relative to it)
    max_steps: int                 # gymnasium's episode limit
    discrete: bool                 # the simulator takes a discrete action (the command's sign)


TASKS = {
    # x, x_dot, theta, theta_dot: CartPole-v1 fails at |x| > 2.4 or |theta| > 12 degrees
    "cartpole": TaskSpec("CartPole-v1", 4, 1, (1.0, 1.0, 0.1, 0.5), 500, True),
    # cos theta, sin theta, theta_dot (theta = 0 upright); torque up to 2, episodes of 200 steps
    "pendulum": TaskSpec("Pendulum-v1", 3, 1, (1.0, 1.0, 4.0), 200, False),
}


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise UserError(f"unknown environment {name!r}: choose one of {', '.join(sorted(TASKS))} (env.name)")
    return TASKS[name]


def gymnasium():
    """The gymnasium module, or a one-line UserError naming the extra that installs it."""
    return require("gymnasium", "control", "control environments")


class ControlEnv:
    """One gymnasium classic-control environment taking commands in [-1, 1].

    Args:
        name: 'cartpole' or 'pendulum'.
        obs_noise: standard deviation of the observation noise, as a fraction of each coordinate's
            typical magnitude (``TaskSpec.obs_scale``); 0 gives the simulator's observation.
    Shapes:
        reset(seed) -> obs (obs_dim,); step(command (action_dim,)) -> (obs, reward, done).
    """

    def __init__(self, name: str = "cartpole", *, obs_noise: float = 0.0):
        self.spec = task_spec(name)
        if not obs_noise >= 0:
            raise UserError(f"env.obs_noise={obs_noise!r} must be >= 0 (a fraction of each coordinate's scale)")
        self.name, self.obs_noise = name, float(obs_noise)
        self.env = gymnasium().make(self.spec.gym_id)
        self._noise = np.random.default_rng(0)

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    @property
    def action_dim(self) -> int:
        return self.spec.action_dim

    @property
    def physics(self):
        """The unwrapped gymnasium environment (its constants and ``state``)."""
        return self.env.unwrapped

    def state(self) -> np.ndarray:
        """The simulator's noise-free state: CartPole (x, x_dot, theta, theta_dot), Pendulum (theta, theta_dot)."""
        return np.asarray(self.physics.state, dtype=np.float64).copy()

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if self.obs_noise > 0:
            obs = obs + self._noise.normal(size=obs.shape) * self.obs_noise * np.asarray(self.spec.obs_scale)
        return obs.astype(np.float32)

    def reset(self, seed: int) -> np.ndarray:
        """Start an episode; the seed fixes the initial state and the observation noise."""
        self._noise = np.random.default_rng([int(seed), 1])
        obs, _ = self.env.reset(seed=int(seed))
        return self._observe(obs)

    def to_action(self, command: np.ndarray):
        """The simulator's action for a command (action_dim,) in [-1, 1]."""
        command = np.asarray(command, dtype=np.float64).reshape(-1)
        if command.shape != (self.action_dim,) or not np.all(np.isfinite(command)):
            raise UserError(f"a {self.name} command is {self.action_dim} finite number(s) in [-1, 1], got shape "
                            f"{command.shape}: give the policy an action head of width {self.action_dim}")
        if self.spec.discrete:
            return int(command[0] > 0)
        high = self.physics.max_torque
        return np.clip(command, -1.0, 1.0).astype(np.float32) * np.float32(high)

    def applied(self, command: np.ndarray) -> np.ndarray:
        """The command the simulator really carries out: CartPole's is the sign (+-1), Pendulum's the clipped value."""
        command = np.asarray(command, dtype=np.float64).reshape(-1)
        return np.where(command > 0, 1.0, -1.0) if self.spec.discrete else np.clip(command, -1.0, 1.0)

    def step(self, command: np.ndarray) -> tuple[np.ndarray, float, bool]:
        obs, reward, terminated, truncated, _ = self.env.step(self.to_action(command))
        return self._observe(obs), float(reward), bool(terminated or truncated)

    def close(self) -> None:
        self.env.close()


def make_env(name: str = "cartpole", *, obs_noise: float = 0.0) -> ControlEnv:
    """A :class:`ControlEnv` (the recipe's ``env`` section)."""
    return ControlEnv(name, obs_noise=obs_noise)
