"""EMA teacher: a slowly moving copy of the online backbone that provides regression targets."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def ema_update(target: list[torch.Tensor], online: list[torch.Tensor], momentum: float) -> None:
    """In place, fused: target <- momentum * target + (1 - momentum) * online."""
    torch._foreach_lerp_(target, online, 1.0 - momentum)


def momentum_at(step: int, total_steps: int, start: float, end: float, kind: str = "linear") -> float:
    """EMA momentum after ``step`` of ``total_steps``, rising from start to end (I-JEPA: linear)."""
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if kind == "linear":
        return start + (end - start) * t
    if kind == "cosine":
        return end - (end - start) * (math.cos(math.pi * t) + 1) / 2
    raise ValueError(f"unknown momentum schedule {kind!r}: use 'linear' or 'cosine'")


def batch_standardize(h: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise (B, N, D) features over the batch axis, per (N, D) entry, across processes if distributed."""
    import torch.distributed as dist

    stats = torch.stack([h.sum(0), h.pow(2).sum(0)])  # (2, N, D)
    count = torch.tensor(float(h.shape[0]), device=h.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stats)
        dist.all_reduce(count)
    mean = stats[0] / count
    var = (stats[1] / count - mean.pow(2)).clamp_min(0)
    return (h - mean) / torch.sqrt(var + eps)


class EMATarget(nn.Module):
    """Target encoder: an EMA copy of the online backbone, without gradients.

    Args:
        online: the backbone to copy (its current weights become the start of the EMA).
        momentum: (start, end) of the momentum schedule over all optimizer steps.
        schedule: 'linear' (I-JEPA) or 'cosine'.
        normalize: 'layer_norm' (affine-free LN over D, I-JEPA), or 'none'.
        layers: average the last ``layers`` blocks' outputs (1 = last layer only).
        batch_standardize: after the normalisation, standardise every (token position, channel) over
            the batch (over all processes under DDP). This removes what the position alone predicts,
            so the regression targets carry only what varies between samples.
    Shapes:
        forward(x) -> (B, N, D) normalised target features of every token.
    """

    def __init__(self, online: nn.Module, *, momentum: tuple[float, float] = (0.996, 1.0),
                 schedule: str = "linear", normalize: str = "layer_norm", layers: int = 1,
                 batch_standardize: bool = False):
        super().__init__()
        if normalize not in ("layer_norm", "none"):
            raise ValueError(f"unknown target normalisation {normalize!r}: use 'layer_norm' or 'none'")
        if len(momentum) != 2 or not all(0.0 <= float(m) <= 1.0 for m in momentum):
            raise ValueError(f"momentum must be (start, end) with both in [0, 1], got {tuple(momentum)}")
        self.model = copy.deepcopy(online).requires_grad_(False)
        self.momentum = (float(momentum[0]), float(momentum[1]))
        self.schedule = schedule
        self.normalize = normalize
        self.layers = layers
        self.batch_standardize = batch_standardize
        momentum_at(0, 1, *self.momentum, kind=schedule)  # validates the schedule name

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.model(x, layers=self.layers)
        if self.normalize == "layer_norm":
            h = F.layer_norm(h, h.shape[-1:])
        if self.batch_standardize:
            h = batch_standardize(h)
        return h

    @torch.no_grad()
    def update(self, online: nn.Module, step: int, total_steps: int) -> float:
        """EMA step with the scheduled momentum; returns the momentum used."""
        m = momentum_at(step, total_steps, *self.momentum, kind=self.schedule)
        ema_update(list(self.model.parameters()), list(online.parameters()), m)
        return m
