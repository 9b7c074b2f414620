"""V-JEPA multi-block 3-D masks: spatial blocks that span time (tubes), unioned into one target per clip."""
from __future__ import annotations

import math

import torch

from ..masks.multiblock import _uniform, block_size


def _pair(v, name: str) -> tuple[float, float]:
    lo, hi = (float(v), float(v)) if isinstance(v, (int, float)) else (float(v[0]), float(v[1]))
    if not 0 < lo <= hi:
        raise ValueError(f"{name} must be a number or a range 0 < lo <= hi, got {v}")
    return lo, hi


class MultiBlock3DMasker:
    """One V-JEPA mask generator on a (T, H, W) token grid (Bardes et al., 2024, multiblock3d).

    Each clip gets ``n_blocks`` blocks of ``spatial_scale`` of the frame area (aspect h/w in
    ``aspect``) that cover ``temporal_scale`` of the time slots (1.0: all of them, a tube). The
    target is the union of the blocks, the context its complement. Block sizes are drawn once per
    batch, positions per clip; clips whose context would be smaller than ``min_keep`` are redrawn.
    Counts are equalised across the batch by keeping a uniformly random subset of each context (and
    of each target) of the smallest size, so context and target stay disjoint.

    ``per_frame=True`` is the image-style ablation: every time slot draws its own block positions
    (each block one slot deep), so a target token's neighbours in time are often visible.

    Returns (``__call__(batch_size, generator)``): context_idx (B, Nc), target_idx (B, 1, Nt), int64,
    sorted per row.
    """

    def __init__(self, *, grid: tuple[int, int, int], n_blocks: int = 8, spatial_scale=(0.15, 0.15),
                 aspect=(0.75, 1.5), temporal_scale=(1.0, 1.0), per_frame: bool = False, min_keep: int = 1,
                 max_tries: int = 50):
        if len(grid) != 3:
            raise ValueError(f"multiblock3d needs a (time, height, width) token grid, got {tuple(grid)}: "
                             f"use it with the tubelet tokenizer")
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.grid = tuple(int(g) for g in grid)
        self.num_tokens = math.prod(self.grid)
        if not 1 <= min_keep < self.num_tokens:
            raise ValueError(f"min_keep must be in [1, {self.num_tokens}), got {min_keep}")
        self.n_blocks, self.per_frame, self.min_keep, self.max_tries = n_blocks, per_frame, min_keep, max_tries
        self.spatial_scale = _pair(spatial_scale, "spatial_scale")
        self.aspect = _pair(aspect, "aspect")
        self.temporal_scale = _pair(temporal_scale, "temporal_scale")
        if self.temporal_scale[1] > 1:
            raise ValueError(f"temporal_scale is a fraction of the clip's time slots (<= 1), got {temporal_scale}")

    def _targets(self, n: int, size: tuple[int, int, int], g: torch.Generator) -> torch.Tensor:
        """(n, T*H*W) bool: the union of each clip's blocks."""
        T, H, W = self.grid
        bt, bh, bw = size
        k = self.n_blocks * (T if self.per_frame else 1)
        top = torch.randint(0, H - bh + 1, (n, k, 1, 1, 1), generator=g)
        left = torch.randint(0, W - bw + 1, (n, k, 1, 1, 1), generator=g)
        if self.per_frame:
            start = torch.arange(T).repeat_interleave(self.n_blocks).view(1, k, 1, 1, 1).expand(n, -1, -1, -1, -1)
        else:
            start = torch.randint(0, T - bt + 1, (n, k, 1, 1, 1), generator=g)
        t = torch.arange(T).view(1, 1, T, 1, 1)
        r = torch.arange(H).view(1, 1, 1, H, 1)
        c = torch.arange(W).view(1, 1, 1, 1, W)
        inside = (t >= start) & (t < start + bt) & (r >= top) & (r < top + bh) & (c >= left) & (c < left + bw)
        return inside.any(1).view(n, T * H * W)  # (n, N)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None):
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        T, H, W = self.grid
        B, N = batch_size, self.num_tokens
        h, w = block_size(_uniform(*self.spatial_scale, g), _uniform(*self.aspect, g), (H, W))
        bt = 1 if self.per_frame else max(1, min(T, int(round(_uniform(*self.temporal_scale, g) * T))))
        size = (bt, h, w)
        target = self._targets(B, size, g)
        for _ in range(self.max_tries):
            bad = (~target).sum(1) < self.min_keep
            n_bad = int(bad.sum())
            if n_bad == 0:
                break
            target[bad] = self._targets(n_bad, size, g)
        else:
            raise ValueError(f"could not keep {self.min_keep} context tokens on a {self.grid} grid with {self.n_blocks} "
                             f"blocks of spatial scale {self.spatial_scale}: lower n_blocks or spatial_scale")
        context = ~target
        n_ctx, n_tgt = int(context.sum(1).min()), int(target.sum(1).min())
        scores = torch.rand(B, N, generator=g)
        context_idx = scores.masked_fill(~context, -1.0).topk(n_ctx, dim=1).indices.sort(dim=1).values
        target_idx = scores.masked_fill(~target, -1.0).topk(n_tgt, dim=1).indices.sort(dim=1).values
        return context_idx, target_idx.unsqueeze(1)

    def __repr__(self) -> str:
        return (f"MultiBlock3DMasker(grid={self.grid}, n_blocks={self.n_blocks}, spatial_scale={self.spatial_scale}, "
                f"temporal_scale={self.temporal_scale}, per_frame={self.per_frame})")


class TubeMaskSet:
    """Several mask generators applied to every clip, each giving its own (context, target) pair.

    V-JEPA's default is two: short-range (8 blocks of 0.15 of the frame) and long-range (2 blocks of
    0.7), both spanning all time. The k-th pair's mask tokens are the predictor's k-th mask token.

    Args:
        grid: (T, H, W) token grid.
        n_blocks, spatial_scale: one entry per generator (a scale is a number or a [lo, hi] range).
        aspect, temporal_scale, per_frame, min_keep: shared by the generators (see MultiBlock3DMasker).
    Returns (``__call__(batch_size, generator)``): ([context_idx (B, Nc_k)], [target_idx (B, 1, Nt_k)]).
    """

    def __init__(self, *, grid: tuple[int, int, int], n_blocks=(8, 2), spatial_scale=(0.15, 0.7),
                 aspect=(0.75, 1.5), temporal_scale=1.0, per_frame: bool = False, min_keep: int = 1):
        n_blocks = [n_blocks] if isinstance(n_blocks, int) else list(n_blocks)
        scales = [spatial_scale] if isinstance(spatial_scale, (int, float)) else list(spatial_scale)
        if len(n_blocks) != len(scales):
            raise ValueError(f"give one spatial_scale per generator: n_blocks {n_blocks} vs spatial_scale {scales}")
        self.grid = tuple(int(g) for g in grid)
        self.generators = [MultiBlock3DMasker(grid=grid, n_blocks=int(n), spatial_scale=s, aspect=aspect,
                                              temporal_scale=temporal_scale, per_frame=per_frame, min_keep=min_keep)
                           for n, s in zip(n_blocks, scales)]

    def __len__(self) -> int:
        return len(self.generators)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None):
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        pairs = [m(batch_size, g) for m in self.generators]
        return [c for c, _ in pairs], [t for _, t in pairs]

    def __repr__(self) -> str:
        return f"TubeMaskSet({self.generators})"
