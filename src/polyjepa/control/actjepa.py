"""ACT-JEPA: a policy that predicts an action chunk and, as a JEPA term, the embeddings of the next observations.

Vujinovic & Kovacevic, 2025. The context encoder reads the last ``history`` observations; an
ACT-style head predicts the next ``chunk`` commands (L1 loss); a predictor maps the same latent to
the EMA target encoder's (layer-normalised) embeddings of the observation windows of the next
``chunk`` steps (L2 loss). Total ``L = L_action + jepa_weight * L_JEPA``; ``jepa_weight = 0`` is plain
behaviour cloning with the same network.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..targets.ema import ema_update, momentum_at
from ..train.stages import StageCheckpoints
from .rollout import Episode


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with GELU between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class EMATeacher:
    """The control models' teacher: ``target`` follows ``encoder`` by EMA, its momentum rising over
    ``self.momentum`` (start, end) through training."""

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        m = momentum_at(step, total_steps, *self.momentum)
        ema_update(list(self.target.parameters()), list(self.encoder.parameters()), m)
        return m


class ACTJEPA(EMATeacher, nn.Module):
    """Policy with an action-chunk head and a latent-future (JEPA) head.

    Args:
        obs_dim, action_dim: widths of one observation and one command.
        history: observations the encoder reads (the current one and history - 1 before it).
        chunk: commands predicted at once, and future observation windows predicted by the JEPA head.
        hidden, latent: MLP width and the policy latent's width.
        jepa_weight: weight of the JEPA term (0: behaviour cloning).
        momentum: (start, end) of the EMA target encoder's momentum over training.
    Shapes:
        window (B, history, obs_dim) -> latent (B, latent) -> chunk (B, chunk, action_dim);
        future (B, chunk, history, obs_dim) -> targets (B, chunk, latent).
    """

    def __init__(self, *, obs_dim: int, action_dim: int, history: int = 4, chunk: int = 8, hidden: int = 128,
                 latent: int = 64, jepa_weight: float = 1.0, momentum: tuple[float, float] = (0.99, 1.0)):
        super().__init__()
        for key, v in {"history": history, "chunk": chunk, "hidden": hidden, "latent": latent}.items():
            if not (isinstance(v, int) and v >= 1):
                raise UserError(f"method.{key}={v!r} must be a whole number >= 1")
        if not jepa_weight >= 0:
            raise UserError(f"method.jepa_weight={jepa_weight!r} must be >= 0 (0: behaviour cloning)")
        self.obs_dim, self.action_dim, self.history, self.chunk = obs_dim, action_dim, history, chunk
        self.latent, self.jepa_weight, self.momentum = latent, float(jepa_weight), tuple(momentum)
        self.encoder = mlp([history * obs_dim, hidden, hidden, latent])
        self.action_head = mlp([latent, hidden, chunk * action_dim])
        self.predictor = mlp([latent, hidden, chunk * latent])
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

    def encode(self, window: torch.Tensor) -> torch.Tensor:
        """(B, history, obs_dim) -> (B, latent)."""
        if window.shape[1:] != (self.history, self.obs_dim):
            raise UserError(f"the policy reads windows of shape (B, {self.history}, {self.obs_dim}), got "
                            f"{tuple(window.shape)}: pass the last {self.history} observations of width {self.obs_dim}")
        return self.encoder(window.flatten(1))

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """(B, history, obs_dim) -> (B, chunk, action_dim) commands."""
        return self.action_head(self.encode(window)).view(len(window), self.chunk, self.action_dim)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch: window (B, H, O), actions (B, k, A), action_mask (B, k), future (B, k, H, O), future_mask (B, k)."""
        z = self.encode(batch["window"])
        B = len(z)
        pred = self.action_head(z).view(B, self.chunk, self.action_dim)
        m = batch["action_mask"].to(pred.dtype)
        l_act = ((pred - batch["actions"]).abs().mean(-1) * m).sum() / m.sum().clamp_min(1)
        out = {"action_l1": l_act}
        loss = l_act
        if self.jepa_weight > 0:
            with torch.no_grad():
                h = self.target(batch["future"].flatten(2))                        # (B, k, D)
                h = F.layer_norm(h, h.shape[-1:])
            p = self.predictor(z).view(B, self.chunk, self.latent)
            fm = batch["future_mask"].to(p.dtype)
            l_jepa = ((p - h).square().mean(-1) * fm).sum() / fm.sum().clamp_min(1)
            out["jepa"] = l_jepa
            loss = loss + self.jepa_weight * l_jepa
        out["loss"] = loss
        return out


def windows(obs: np.ndarray, history: int) -> np.ndarray:
    """(T, O) observations -> (T, history, O): at each t the observations t - history + 1 .. t, the
    first observation repeated before the episode's start."""
    idx = np.arange(len(obs))[:, None] + np.arange(-history + 1, 1)[None]
    return obs[np.clip(idx, 0, None)]


def chunk_dataset(episodes: list[Episode], *, history: int, chunk: int, mean: np.ndarray,
                  std: np.ndarray) -> dict[str, torch.Tensor]:
    """Training samples of every step of every episode (observations standardised with mean/std).

    For step t of an episode of T steps: window(t), commands t .. t + chunk - 1 (masked past T - 1)
    and the windows of steps t + 1 .. t + chunk (masked past T, the last observation)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("window", "actions", "action_mask", "future", "future_mask")}
    for ep in episodes:
        T = len(ep.commands)
        w = windows((ep.obs - mean) / std, history)                              # (T + 1, H, O)
        t = np.arange(T)[:, None]
        j = np.arange(chunk)[None]
        a_idx, f_idx = t + j, t + j + 1                                          # (T, k)
        parts["window"].append(w[:T])
        parts["actions"].append(ep.commands[np.clip(a_idx, None, T - 1)])
        parts["action_mask"].append(a_idx < T)
        parts["future"].append(w[np.clip(f_idx, None, T)])
        parts["future_mask"].append(f_idx <= T)
    return {k: torch.from_numpy(np.concatenate(v)).float() if k not in ("action_mask", "future_mask")
            else torch.from_numpy(np.concatenate(v)) for k, v in parts.items()}


def train_minibatch(model: nn.Module, data: dict[str, torch.Tensor], *, steps: int, batch_size: int = 64,
                    lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0, ckpts: StageCheckpoints | None = None,
                    stage: str = "model") -> list[float]:
    """Train ``model`` (``loss(batch)`` and ``update_target(step, total)``) on seeded minibatches of the
    equal-length tensors in ``data``: AdamW with a cosine learning rate over ``steps``, the EMA target
    following each step. Returns the losses.

    With ``ckpts`` the training is stage ``stage`` of the run's checkpoints (a module of that name): finished
    before a stop, its weights and losses are loaded; stopped midway, it continues from its checkpoint."""
    n = len(next(iter(data.values())))
    g = torch.Generator().manual_seed(seed)
    ckpts = ckpts or StageCheckpoints(None)
    done = ckpts.skip(stage, {stage: model})
    if done is not None:
        model.eval()
        return list(done["losses"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    model.train()
    pos = ckpts.begin(stage, {stage: model}, opt, generators={"batches": g}, state={"losses": []})
    losses = list(pos.state["losses"])
    for step in range(pos.step, steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        out = model.loss({k: v[idx] for k, v in data.items()})
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.update_target(step + 1, steps)
        losses.append(float(out["loss"].detach()))
        pos.advance(losses=losses)
    model.eval()
    pos.finish(losses=losses)
    return losses


def train_policy(model: ACTJEPA, data: dict[str, torch.Tensor], *, steps: int, batch_size: int = 64,
                 lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0, ckpts: StageCheckpoints | None = None,
                 stage: str = "policy") -> list[float]:
    """Train an ACT-JEPA policy on its demonstration windows (see :func:`train_minibatch`)."""
    return train_minibatch(model, data, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                           ckpts=ckpts, stage=stage)


class ChunkController:
    """Runs a trained :class:`ACTJEPA` in the simulator: at each step it reads the last ``history``
    observations and executes the first command of its chunk, or, with ``ensemble`` = m > 0, the
    average of every chunk's command for this step weighted by exp(-m * age) (ACT's temporal ensembling,
    oldest first)."""

    def __init__(self, model: ACTJEPA, mean: np.ndarray, std: np.ndarray, *, ensemble: float = 0.0):
        self.model, self.mean, self.std, self.ensemble = model, mean, std, float(ensemble)

    def reset(self, n: int) -> None:
        self.buffer: np.ndarray | None = None  # (n, H, O)
        self.chunks: list[np.ndarray] = []     # newest last, each (n, k, A)

    @torch.no_grad()
    def act(self, obs: np.ndarray, states) -> np.ndarray:
        o = (np.asarray(obs, np.float32) - self.mean) / self.std
        if self.buffer is None:
            self.buffer = np.repeat(o[:, None], self.model.history, 1)
        else:
            self.buffer = np.concatenate([self.buffer[:, 1:], o[:, None]], 1)
        chunk = self.model(torch.from_numpy(self.buffer.astype(np.float32))).numpy()
        if self.ensemble <= 0:
            return np.clip(chunk[:, 0], -1, 1)
        self.chunks = (self.chunks + [chunk])[-self.model.chunk:]
        ages = len(self.chunks)
        preds = np.stack([c[:, ages - 1 - i] for i, c in enumerate(self.chunks)])  # (ages, n, A), oldest first
        w = np.exp(-self.ensemble * np.arange(ages))[:, None, None]
        return np.clip((w * preds).sum(0) / w.sum(), -1, 1)
