"""TS-JEPA remote control: a sensor sends a quantised embedding of its recent state series over a noisy link.

Girgis, Valcarce & Bennis, 2024 ("Time-Series JEPA for Predictive Remote Control under
Capacity-Limited Networks"). The sensor encodes the window of its last ``window`` observations into
a ``dims``-wide embedding, trained as a time-series JEPA on logged episodes: from a window's embedding
a predictor regresses the EMA target encoder's embeddings of the windows 1 .. ``horizon`` steps later
(optionally told the commands carried out in between, as the paper's predictor is), with a
variance-covariance term keeping the embedding from collapsing. No labels are used. The embedding is
quantised to a bit budget and sent over a bit-flip channel; the controller acts on what arrives.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..objectives.vcr import vcr_loss
from ..train.stages import StageCheckpoints
from .actjepa import EMATeacher, mlp, windows
from .channel import BitFlipChannel, UniformQuantizer
from .rollout import Episode


class WindowJEPA(EMATeacher, nn.Module):
    """Time-series JEPA on windows of a state series: the sensor's encoder.

    Args:
        obs_dim, action_dim: widths of one observation and one command.
        window: observations in a window (the current one and window - 1 before it).
        dims: width of the embedding (the message has dims numbers).
        hidden: MLP width.
        horizon: the predictor regresses the embeddings of the windows ending 1 .. horizon steps later.
        condition: the predictor also reads the commands carried out over those steps.
        var_weight, cov_weight: weights of the variance and covariance terms on the online embedding.
        momentum: (start, end) of the EMA target encoder's momentum.
    Shapes:
        encode(window (B, window, obs_dim)) -> (B, dims);
        loss: window (B, W, O), future (B, horizon, W, O), commands (B, horizon, A), mask (B, horizon).
    """

    def __init__(self, *, obs_dim: int, action_dim: int, window: int = 8, dims: int = 4, hidden: int = 128,
                 horizon: int = 4, condition: bool = True, var_weight: float = 1.0, cov_weight: float = 0.04,
                 momentum: tuple[float, float] = (0.99, 1.0)):
        super().__init__()
        for key, v in {"window": window, "dims": dims, "hidden": hidden, "horizon": horizon}.items():
            if isinstance(v, bool) or not (isinstance(v, int) and v >= 1):
                raise UserError(f"method.{key}={v!r} must be a whole number >= 1")
        self.obs_dim, self.action_dim, self.window, self.dims = obs_dim, action_dim, window, dims
        self.horizon, self.condition = horizon, bool(condition)
        self.var_weight, self.cov_weight, self.momentum = float(var_weight), float(cov_weight), tuple(momentum)
        self.encoder = mlp([window * obs_dim, hidden, hidden, dims])
        cond = horizon * action_dim if self.condition else 0
        self.predictor = mlp([dims + cond, hidden, hidden, horizon * dims])
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

    def encode(self, window: torch.Tensor) -> torch.Tensor:
        """(B, window, obs_dim) standardised observations -> (B, dims)."""
        if window.shape[1:] != (self.window, self.obs_dim):
            raise UserError(f"the sensor encoder reads windows of shape (B, {self.window}, {self.obs_dim}), got "
                            f"{tuple(window.shape)}: pass the last {self.window} observations of width {self.obs_dim}")
        return self.encoder(window.flatten(1))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = self.encode(batch["window"])
        B = len(z)
        with torch.no_grad():
            h = self.target(batch["future"].flatten(2))                          # (B, H, dims)
        inp = torch.cat([z, batch["commands"].flatten(1)], 1) if self.condition else z
        p = self.predictor(inp).view(B, self.horizon, self.dims)
        m = batch["mask"].to(p.dtype)
        pred = ((p - h).square().mean(-1) * m).sum() / m.sum().clamp_min(1)
        reg = vcr_loss(z, var_weight=self.var_weight, cov_weight=self.cov_weight)
        return {"loss": pred + reg["loss"], "prediction": pred.detach(), "regularizer": reg["loss"].detach()}


def window_dataset(episodes: list[Episode], *, window: int, horizon: int, mean: np.ndarray,
                   std: np.ndarray) -> dict[str, torch.Tensor]:
    """JEPA samples of every step t of every episode (T steps): the window ending at t, the windows ending at
    t + 1 .. t + horizon (masked past the last observation T) and the commands carried out at t .. t + horizon - 1."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("window", "future", "commands", "mask")}
    for ep in episodes:
        T = len(ep.commands)
        w = windows((ep.obs - mean) / std, window)                               # (T + 1, W, O)
        f_idx = np.arange(T)[:, None] + np.arange(1, horizon + 1)[None]          # (T, H)
        parts["window"].append(w[:T])
        parts["future"].append(w[np.clip(f_idx, None, T)])
        parts["commands"].append(ep.applied[np.clip(f_idx - 1, None, T - 1)])
        parts["mask"].append(f_idx <= T)
    return {k: torch.from_numpy(np.concatenate(v)) if k == "mask" else torch.from_numpy(np.concatenate(v)).float()
            for k, v in parts.items()}


class PCAWindow(nn.Module):
    """The classical reference for a learned window encoder: the top ``dims`` principal components of the
    flattened (standardised) window, fitted on training windows.

    Shapes: fit(windows (N, W, O)); encode(window (B, W, O)) -> (B, dims).
    """

    def __init__(self, *, window: int, obs_dim: int, dims: int):
        super().__init__()
        self.window, self.obs_dim, self.dims = window, obs_dim, dims
        self.register_buffer("center", torch.zeros(window * obs_dim))
        self.register_buffer("components", torch.zeros(window * obs_dim, dims))

    def fit(self, windows: np.ndarray) -> "PCAWindow":
        x = np.asarray(windows, np.float64).reshape(len(windows), -1)
        center = x.mean(0)
        _, _, vt = np.linalg.svd(x - center, full_matrices=False)
        self.center = torch.from_numpy(center).float()
        self.components = torch.from_numpy(vt[:self.dims].T.copy()).float()
        return self

    def encode(self, window: torch.Tensor) -> torch.Tensor:
        return (window.flatten(1) - self.center) @ self.components


class Sensor:
    """What the sensor sends before quantisation: a window encoder's embedding, or the current observation.

    Args:
        encoder: a window encoder with ``encode`` and ``dims`` (:class:`WindowJEPA`, trained or not, or
            :class:`PCAWindow`), or None for the raw current observation.
        mean, std: the observation standardisation.
    """

    def __init__(self, encoder: WindowJEPA | PCAWindow | None, mean: np.ndarray, std: np.ndarray, *, window: int):
        self.encoder, self.mean, self.std, self.window = encoder, mean, std, window

    @property
    def dims(self) -> int:
        return self.encoder.dims if self.encoder is not None else len(self.mean)

    @torch.no_grad()
    def __call__(self, win: np.ndarray) -> np.ndarray:
        """(N, window, obs_dim) standardised windows -> (N, dims)."""
        if self.encoder is None:
            return np.asarray(win[:, -1], dtype=np.float64)
        return self.encoder.encode(torch.from_numpy(np.asarray(win, np.float32))).double().numpy()

    def episode_features(self, episodes: list[Episode]) -> tuple[np.ndarray, np.ndarray]:
        """Features of every step of every episode (N, dims) and, for each, the row of the same episode's first step."""
        feats, first = [], []
        start = 0
        for ep in episodes:
            T = len(ep.commands)
            feats.append(self(windows((ep.obs - self.mean) / self.std, self.window)[:T]))
            first.append(np.full(T, start))
            start += T
        return np.concatenate(feats), np.concatenate(first)


class MessageController(nn.Module):
    """The remote controller: an MLP from the last ``history`` received messages (each on [-1, 1]) to a command.

    Shapes: (B, history, dims) -> (B, action_dim).
    """

    def __init__(self, *, dims: int, action_dim: int, history: int = 1, hidden: int = 128):
        super().__init__()
        self.dims, self.history, self.action_dim = dims, history, action_dim
        self.net = mlp([history * dims, hidden, hidden, action_dim])

    def forward(self, msgs: torch.Tensor) -> torch.Tensor:
        return self.net(msgs.flatten(1))


def history_index(first: np.ndarray, history: int) -> np.ndarray:
    """(N,) row of each sample's episode start -> (N, history) rows of its last ``history`` messages, oldest
    first, the episode's first message repeated before its start."""
    rows = np.arange(len(first))[:, None] + np.arange(-history + 1, 1)[None]
    return np.maximum(rows, first[:, None])


class Link:
    """Quantiser + channel as the controller sees them: ``receive(x (N, dims)) -> (N, dims)`` on [-1, 1].

    ``quantizer`` None sends the floats unquantised and error-free (the reference of infinite bits)."""

    def __init__(self, quantizer: UniformQuantizer | None, ber: float = 0.0, *, seed: int = 0, reference=None):
        self.quantizer, self.channel = quantizer, BitFlipChannel(ber, seed=seed)
        self.reference = reference  # a fitted quantiser whose range scales the unquantised floats

    @property
    def bits(self) -> int | None:
        return None if self.quantizer is None else self.quantizer.message_bits()

    def receive_codes(self, codes: np.ndarray) -> np.ndarray:
        q = self.quantizer
        return q.unit(self.channel.send_codes(codes, q.bits))

    def receive(self, x: np.ndarray) -> np.ndarray:
        if self.quantizer is None:
            return self.reference.unit_float(x)
        return self.receive_codes(self.quantizer.encode(x))


def train_controller(controller: MessageController, feats: np.ndarray, first: np.ndarray, labels: np.ndarray,
                     link: Link, *, steps: int, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-4,
                     seed: int = 0, ckpts: StageCheckpoints | None = None, stage: str = "controller") -> list[float]:
    """Behaviour cloning on received messages: every batch is quantised and sent through the link's channel
    afresh (new bit flips), and the controller regresses the expert's commands (L1). Returns the losses.

    With ``ckpts`` the training is stage ``stage`` of the run's checkpoints: stopped midway, it continues from
    its checkpoint (weights, optimizer, batch generator and the channel's bit-flip generator as they were).
    Its weights leave the checkpoints once it is trained: the caller adds what it needs of the controller to
    the stage's record (``ckpts.finished[stage]``) and skips a finished stage itself."""
    rows = history_index(first, controller.history)
    codes = link.quantizer.encode(feats) if link.quantizer is not None else None
    unq = torch.from_numpy(link.reference.unit_float(feats)).float() if codes is None else None
    y = torch.from_numpy(np.asarray(labels, np.float32))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(controller.parameters(), lr=lr, weight_decay=weight_decay)
    flips = link.channel.rng.bit_generator
    pos = (ckpts or StageCheckpoints(None)).begin(stage, {stage: controller}, opt, generators={"batches": g},
                                                  state={"losses": [], "channel": flips.state})
    if pos.resumed:
        flips.state = pos.state["channel"]
    losses = list(pos.state["losses"])
    controller.train()
    for step in range(pos.step, steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
        idx = torch.randint(0, len(rows), (min(batch_size, len(rows)),), generator=g).numpy()
        r = rows[idx]                                                            # (B, history)
        if codes is None:
            msgs = unq[torch.from_numpy(r)]
        else:
            sent = codes[r.reshape(-1)]
            msgs = torch.from_numpy(link.receive_codes(sent).reshape(len(idx), controller.history, -1)).float()
        loss = (controller(msgs) - y[idx]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        pos.advance(losses=losses, channel=flips.state)
    controller.eval()
    pos.finish(keep=False)      # a run trains many controllers: their losses stay out of its checkpoints
    return losses


class RemoteLoopController:
    """Sensor -> link -> controller, run in the simulator: at each step every episode's sensor encodes its
    last ``window`` observations, the message crosses the link, and the controller reads the last ``history``
    messages it received."""

    def __init__(self, sensor: Sensor, link: Link, controller: MessageController):
        self.sensor, self.link, self.controller = sensor, link, controller

    def reset(self, n: int) -> None:
        self.buffer: np.ndarray | None = None   # (n, W, O) standardised observations
        self.received: np.ndarray | None = None  # (n, history, dims)

    @torch.no_grad()
    def act(self, obs: np.ndarray, states) -> np.ndarray:
        o = (np.asarray(obs, np.float64) - self.sensor.mean) / self.sensor.std
        if self.buffer is None:
            self.buffer = np.repeat(o[:, None], self.sensor.window, 1)
        else:
            self.buffer = np.concatenate([self.buffer[:, 1:], o[:, None]], 1)
        msg = self.link.receive(self.sensor(self.buffer))                         # (n, dims)
        if self.received is None:
            self.received = np.repeat(msg[:, None], self.controller.history, 1)
        else:
            self.received = np.concatenate([self.received[:, 1:], msg[:, None]], 1)
        out = self.controller(torch.from_numpy(self.received.astype(np.float32))).numpy()
        return np.clip(out.astype(np.float64), -1, 1)
