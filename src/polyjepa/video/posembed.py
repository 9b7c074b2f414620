"""Fixed 3-D sine-cosine positions for a (T, H, W) token grid."""
from __future__ import annotations

import math

import torch

from ..tokenizers.posembed import sincos_1d


def sincos_3d(dim: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """Sine-cosine embedding of a (T, H, W) token grid, time-major then row-major.

    Each axis gets the same even width ``2 * ceil(dim / 6)`` (V-JEPA's ``uniform_power``), the three
    are concatenated as [time | row | column] and cut to ``dim``.

    Returns:
        (T*H*W, dim) float32.
    """
    if dim < 6:
        raise ValueError(f"3-D sin-cos embedding width must be at least 6, got {dim}")
    t, h, w = (int(g) for g in grid)
    axis_dim = 2 * math.ceil(dim / 6)
    times = torch.arange(t).repeat_interleave(h * w)
    rows = torch.arange(h).repeat_interleave(w).repeat(t)
    cols = torch.arange(w).repeat(t * h)
    emb = torch.cat([sincos_1d(axis_dim, times), sincos_1d(axis_dim, rows), sincos_1d(axis_dim, cols)], dim=1)
    return emb[:, :dim].contiguous()
