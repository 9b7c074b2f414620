"""Episodes in the simulator: seeded demonstrations from an expert, and returns of any controller.

A controller is an object with ``reset(n)`` (n episodes start) and
``act(obs (n, obs_dim), states: list of simulator states) -> commands (n, action_dim)``; the n
episodes run in lock step so that a learned controller sees a batch at every step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .envs import ControlEnv
from .experts import make_expert


@dataclass
class Episode:
    """One recorded episode: obs (T + 1, obs_dim) as observed (noise included; the last follows the
    last action), states (T + 1, state_dim) noise-free, commands (T, action_dim) as the controller gave
    them, rewards (T,), applied (T, action_dim) the commands as the simulator carried them out (CartPole:
    their sign)."""

    obs: np.ndarray
    states: np.ndarray
    commands: np.ndarray
    rewards: np.ndarray
    seed: int = 0
    applied: np.ndarray | None = None

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())


@dataclass
class EpisodeStats:
    """Returns and lengths of n seeded episodes."""

    returns: np.ndarray
    lengths: np.ndarray
    seeds: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    def success(self, full_length: int) -> float:
        """Fraction of episodes that lasted ``full_length`` steps (CartPole: balanced to the end)."""
        return float((self.lengths >= full_length).mean())


class ExpertController:
    """The task's expert as a controller (it reads the noise-free state), optionally with random commands
    mixed in: with probability ``epsilon`` a step's command is uniform in [-1, 1]."""

    def __init__(self, env: ControlEnv, *, epsilon: float = 0.0, seed: int = 0):
        self.expert, self.epsilon = make_expert(env), float(epsilon)
        self.rng = np.random.default_rng(seed)

    def reset(self, n: int) -> None:
        pass

    def act(self, obs: np.ndarray, states: list[np.ndarray]) -> np.ndarray:
        out = np.stack([self.expert(s) for s in states])
        if self.epsilon > 0:
            swap = self.rng.random(len(out)) < self.epsilon
            out[swap] = self.rng.uniform(-1, 1, size=out[swap].shape)
        return out


class RandomController:
    """Uniform random commands in [-1, 1]."""

    def __init__(self, action_dim: int, *, seed: int = 0):
        self.action_dim, self.rng = action_dim, np.random.default_rng(seed)

    def reset(self, n: int) -> None:
        pass

    def act(self, obs: np.ndarray, states: list[np.ndarray]) -> np.ndarray:
        return self.rng.uniform(-1, 1, size=(len(obs), self.action_dim))


def run_episodes(make, controller, seeds: list[int], *, record: bool = False, max_steps: int | None = None):
    """Run one episode per seed, all in lock step, with ``controller``.

    Args:
        make: () -> ControlEnv, called once per episode.
        seeds: the episodes' seeds (initial state and observation noise).
        record: also return the :class:`Episode` list.
        max_steps: stop every episode after this many steps (None: the task's own limit).
    Returns EpisodeStats, or (EpisodeStats, episodes) with ``record``.
    """
    envs = [make() for _ in seeds]
    obs = np.stack([e.reset(s) for e, s in zip(envs, seeds)])
    n, active = len(envs), np.ones(len(envs), dtype=bool)
    logs = [{"obs": [o.copy()], "states": [e.state()], "commands": [], "rewards": [], "applied": []} for o, e in zip(obs, envs)]
    returns, lengths = np.zeros(n), np.zeros(n, dtype=int)
    controller.reset(n)
    limit = max_steps if max_steps is not None else envs[0].spec.max_steps
    for _ in range(limit):
        if not active.any():
            break
        commands = np.asarray(controller.act(obs, [e.state() for e in envs]), dtype=np.float64).reshape(n, -1)
        for i in np.flatnonzero(active):
            o, r, done = envs[i].step(commands[i])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            if record:
                log = logs[i]
                log["obs"].append(o)
                log["states"].append(envs[i].state())
                log["commands"].append(commands[i].copy())
                log["applied"].append(envs[i].applied(commands[i]))
                log["rewards"].append(r)
            active[i] = not done
    for e in envs:
        e.close()
    stats = EpisodeStats(returns, lengths, list(seeds))
    if not record:
        return stats
    A = envs[0].action_dim
    episodes = [Episode(np.asarray(g["obs"], np.float32), np.asarray(g["states"]),
                        np.asarray(g["commands"], np.float32).reshape(-1, A), np.asarray(g["rewards"], np.float32), s,
                        np.asarray(g["applied"], np.float32).reshape(-1, A)) for g, s in zip(logs, seeds)]
    return stats, episodes


def record_demonstrations(make, seeds: list[int], *, epsilon: float = 0.0, seed: int = 0):
    """The expert's episodes for ``seeds`` (with ``epsilon`` random commands mixed in); (stats, episodes)."""
    env = make()
    controller = ExpertController(env, epsilon=epsilon, seed=seed)
    env.close()
    return run_episodes(make, controller, seeds, record=True)
