"""Backbone over a (T, H, W) token grid, with readouts that keep coarse layout in space and time."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.encoder import Backbone, grid_regions


class VideoBackbone(Backbone):
    """Tubelet tokenizer + encoder; ``embed`` adds pools for a 3-D token grid.

    Pools (each starts with the token mean, D features):
        ``mean``; ``mean+std``; ``tokens`` (all tokens flattened);
        ``time``: + the mean of each time slot, (1 + T) D: keeps the order of events (motion);
        ``grid:K``: + K x K spatial regions averaged over time, (1 + K*K) D: keeps coarse layout;
        ``time+grid:K``: both of the above, (1 + T + K*K) D.

    ``split_slots`` (VJ-VCR): the encoder sees time slots ``[0, split)`` and ``[split, T)`` as two
    separate sequences when it encodes a whole clip, as it was trained (past and future apart).
    """

    split_slots: int | None = None

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None, layers: int = 1) -> torch.Tensor:
        if self.split_slots is None or keep_idx is not None:
            return super().forward(x, keep_idx, layers=layers)
        tokens = self.tokenizer(x)                                   # (B, N, D), time-major
        cut = self.split_slots * (tokens.shape[1] // self.tokenizer.grid[0])
        return torch.cat([self.encoder(tokens[:, :cut], layers=layers), self.encoder(tokens[:, cut:], layers=layers)], 1)

    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        if pool in ("mean", "mean+std", "tokens"):
            return super().embed(x, pool=pool, layers=layers)
        h = self(x, layers=layers)                                   # (B, N, D)
        B, N, D = h.shape
        g = h.transpose(1, 2).reshape(B, D, *self.tokenizer.grid)    # (B, D, T, H, W)
        parts = [h.mean(1)]
        names = pool.split("+")
        if not all(n == "time" or (n.startswith("grid:") and n[5:].isdigit()) for n in names):
            raise ValueError(f"unknown pool {pool!r}: use mean, mean+std, tokens, time, grid:K or time+grid:K")
        for name in names:
            if name == "time":
                parts.append(g.mean((3, 4)).transpose(1, 2).flatten(1))                 # (B, T*D)
            else:
                k = grid_regions(name)
                regions = F.adaptive_avg_pool2d(g.mean(2), k)                           # (B, D, k, k)
                parts.append(regions.flatten(2).transpose(1, 2).flatten(1))            # (B, k*k*D)
        return torch.cat(parts, dim=1)
