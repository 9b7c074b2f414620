"""An action-conditioned latent world model: encoder of one observation, MLP dynamics in its embedding.

Trained JEPA-style on logged transitions: from the embedding of o_t the dynamics roll the logged
commands forward ``rollout`` steps, and each predicted embedding regresses the EMA target
encoder's embedding of the observation actually reached (no reconstruction of observations).
A variance-covariance term on the online embeddings (VICReg's, Bardes et al. 2022) keeps the
embedding from collapsing to a constant, which would make every prediction trivially right.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..objectives.vicreg import vicreg_loss
from .actjepa import EMATeacher, mlp
from .rollout import Episode


class LatentDynamics(EMATeacher, nn.Module):
    """z = encoder(o); z' = z + dynamics([z, u]); planning happens in z.

    Args:
        obs_dim, action_dim: widths of an observation and a command.
        latent, hidden: embedding and MLP widths.
        var_weight, cov_weight: weights of the variance and covariance terms.
        momentum: (start, end) of the EMA target encoder's momentum.
    Shapes:
        encode(o (N, O)) -> (N, latent); step(z (N, latent), u (N, A)) -> (N, latent).
    """

    def __init__(self, *, obs_dim: int, action_dim: int, latent: int = 8, hidden: int = 128,
                 var_weight: float = 1.0, cov_weight: float = 0.04, momentum: tuple[float, float] = (0.99, 1.0)):
        super().__init__()
        for key, v in {"latent": latent, "hidden": hidden}.items():
            if not (isinstance(v, int) and v >= 1):
                raise UserError(f"method.{key}={v!r} must be a whole number >= 1")
        self.obs_dim, self.action_dim, self.latent = obs_dim, action_dim, latent
        self.var_weight, self.cov_weight, self.momentum = var_weight, cov_weight, tuple(momentum)
        self.encoder = mlp([obs_dim, hidden, hidden, latent])
        self.dynamics = mlp([latent + action_dim, hidden, hidden, latent])
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs)

    def step(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if u.shape[-1] != self.action_dim:
            raise UserError(f"the world model takes commands of width {self.action_dim}, got {u.shape[-1]}: "
                            f"plan with planner action_dim={self.action_dim}")
        return z + self.dynamics(torch.cat([z, u.to(z.dtype)], -1))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch: obs (B, K + 1, O) consecutive observations, commands (B, K, A) taken between them."""
        obs, u = batch["obs"], batch["commands"]
        K = u.shape[1]
        z = self.encode(obs[:, 0])
        with torch.no_grad():
            h = self.target(obs[:, 1:])                                     # (B, K, D)
        preds = []
        for k in range(K):
            z = self.step(z, u[:, k])
            preds.append(z)
        p = torch.stack(preds, 1)
        pred = (p - h).square().sum(-1).mean()
        reg = vicreg_loss(self.encode(obs[:, 0]), self.encode(obs[:, -1]), sim_weight=0.0,
                          var_weight=self.var_weight, cov_weight=self.cov_weight)
        return {"loss": pred + reg["loss"], "prediction": pred.detach(), "regularizer": reg["loss"].detach()}


def transition_dataset(episodes: list[Episode], *, rollout: int, mean: np.ndarray, std: np.ndarray):
    """Every stretch of ``rollout`` + 1 consecutive observations (standardised) and the commands the simulator
    carried out between them (``Episode.applied``)."""
    obs, cmd = [], []
    for ep in episodes:
        T = len(ep.commands)
        if T < rollout:
            continue
        o = (ep.obs - mean) / std
        starts = np.arange(T - rollout + 1)
        obs.append(o[starts[:, None] + np.arange(rollout + 1)])
        cmd.append(ep.applied[starts[:, None] + np.arange(rollout)])
    if not obs:
        raise UserError(f"no logged episode lasts {rollout} steps: lower method.rollout or log longer episodes")
    return {"obs": torch.from_numpy(np.concatenate(obs)).float(), "commands": torch.from_numpy(np.concatenate(cmd)).float()}


def train_world_model(model: LatentDynamics, data: dict[str, torch.Tensor], *, steps: int, batch_size: int = 128,
                      lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0, ckpts=None,
                      stage: str = "world_model") -> list[float]:
    """Train the latent dynamics on logged rollouts (AdamW, cosine learning rate, EMA target). Returns the losses.
    ``ckpts``, ``stage``: see :func:`~polyjepa.control.actjepa.train_minibatch`."""
    from .actjepa import train_minibatch

    return train_minibatch(model, data, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                           ckpts=ckpts, stage=stage)


class PlanningController:
    """Model-predictive control in the world model's embedding: at each step CEM plans ``horizon``
    commands that bring the predicted embeddings close to the goal's (squared distance, summed over
    the horizon), executes the first, and warm-starts the next plan with the rest.

    Args:
        model: a trained :class:`LatentDynamics`; planner: a :class:`CEMPlanner`.
        goal: (O,) the goal observation (raw units); mean, std: the observation standardisation.
        discrete: the simulator takes the command's sign, so plans are rolled with signs.
    """

    def __init__(self, model: LatentDynamics, planner, goal: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 *, discrete: bool = False):
        self.model, self.planner, self.mean, self.std, self.discrete = model, planner, mean, std, discrete
        with torch.no_grad():
            self.z_goal = model.encode(torch.from_numpy(((goal - mean) / std).astype(np.float32))[None])

    def reset(self, n: int) -> None:
        self.last: torch.Tensor | None = None

    @torch.no_grad()
    def act(self, obs: np.ndarray, states) -> np.ndarray:
        z = self.model.encode(torch.from_numpy(((np.asarray(obs) - self.mean) / self.std).astype(np.float32)))
        init = None
        if self.last is not None and len(self.last) == len(z):
            init = torch.cat([self.last[:, 1:], self.last[:, -1:]], 1)
        quantize = (lambda u: torch.where(u > 0, 1.0, -1.0).to(u.dtype)) if self.discrete else None
        goal = self.z_goal

        def distance(x):
            return (x - goal).square().sum(-1)

        plan = self.planner.plan(z, self.model.step, lambda x, u: distance(x), terminal=distance, init_mean=init,
                                 quantize=quantize)
        self.last = plan
        return plan[:, 0].numpy().astype(np.float64)
