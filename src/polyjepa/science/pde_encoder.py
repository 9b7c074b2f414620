"""A small convolutional encoder of space-time fields that reads the coordinates beside the values."""
from __future__ import annotations

import torch
from torch import nn

from .symmetries import Field


def field_channels(field: Field, *, u_scale: float, length: float, duration: float) -> torch.Tensor:
    """(B, 3, T, N) input: ``u / u_scale``, ``x / length`` and ``(t - t0) / duration`` on each sample's grid.

    The coordinate channels carry the grid that a scaling symmetry stretches; time is counted from the
    window's first row, so a time translation changes nothing the encoder sees.
    """
    u = field.u
    b, t, n = u.shape
    x = torch.arange(n, dtype=u.dtype, device=u.device) * (field.length.to(u.dtype)[:, None] / n)        # (B, N)
    tt = torch.arange(t, dtype=u.dtype, device=u.device) * field.dt.to(u.dtype)[:, None]                 # (B, T)
    return torch.stack([u / u_scale, (x / length)[:, None, :].expand(b, t, n),
                        (tt / duration)[:, :, None].expand(b, t, n)], dim=1)


class FieldEncoder(nn.Module):
    """Conv(3x3) blocks over (time, space), circular in space, halving both after the first; mean-pooled.

    Args:
        width: channels of the first block (doubling up to ``dim``); dim: the embedding width.
    forward: (B, C, T, N) -> (B, dim).
    """

    def __init__(self, *, in_channels: int = 3, width: int = 32, dim: int = 128, blocks: int = 4):
        super().__init__()
        layers, c = [], in_channels
        for i in range(blocks):
            out = dim if i == blocks - 1 else min(dim, width * 2 ** i)
            layers += [nn.Conv2d(c, out, 3, stride=1 if i == 0 else 2, padding=(1, 0)),
                       nn.GroupNorm(1, out), nn.GELU()]
            c = out
        self.blocks = nn.ModuleList(layers)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.blocks:
            if isinstance(layer, nn.Conv2d):
                x = nn.functional.pad(x, (1, 1, 0, 0), mode="circular")     # periodic in x
            x = layer(x)
        return x.mean(dim=(2, 3))
