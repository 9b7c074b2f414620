"""I-JEPA multi-block masking on a 2-D token grid, vectorised over the batch."""
from __future__ import annotations

import math

import torch


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def block_size(scale: float, aspect: float, grid: tuple[int, int]) -> tuple[int, int]:
    """Side lengths (h, w) of a block covering ``scale`` of the grid with aspect h/w = ``aspect``.

    Clipped to [1, H-1] x [1, W-1] like the I-JEPA reference, so that no block covers a whole side
    (on a 1-wide axis the block is 1).
    """
    gh, gw = grid
    area = scale * gh * gw
    h = int(round(math.sqrt(area * aspect)))
    w = int(round(math.sqrt(area / aspect)))
    h = max(1, min(h, gh - 1 if gh > 1 else 1))
    w = max(1, min(w, gw - 1 if gw > 1 else 1))
    return h, w


def block_masks(n: int, size: tuple[int, int], grid: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """n boolean masks (n, H*W), each one (h, w) block at a uniform random position."""
    gh, gw = grid
    h, w = size
    top = torch.randint(0, gh - h + 1, (n, 1, 1), generator=generator)
    left = torch.randint(0, gw - w + 1, (n, 1, 1), generator=generator)
    rows = torch.arange(gh).view(1, gh, 1)
    cols = torch.arange(gw).view(1, 1, gw)
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    return inside.view(n, gh * gw)


class MultiBlockMasker:
    """Context and target indices for I-JEPA (Assran et al., CVPR 2023).

    Each sample gets ``n_targets`` target blocks and one context block; the target tokens are
    removed from the context. Block sizes are drawn once per batch (so every target block in the
    batch has the same number of tokens and the indices stack), positions per sample. The context
    is cut to the smallest context in the batch by a uniformly random choice of tokens per sample
    (the reference truncates to the lowest indices, which biases the context to the top rows).

    Args:
        grid: (H, W) token grid of the tokenizer.
        n_targets: M, target blocks per sample.
        target_scale, target_aspect: ranges of a target block's area fraction and h/w ratio.
        context_scale, context_aspect: the same for the context block.
        min_keep: fewest context tokens a sample may have; target positions are redrawn until met.
        max_tries: redraws before giving up with an error that names the scales.
    Returns (from ``__call__(batch_size, generator)``):
        context_idx (B, Nc) int64, sorted per row; target_idx (B, M, Nt) int64, sorted per block.
    """

    def __init__(
        self,
        *,
        grid: tuple[int, int],
        n_targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        context_aspect: tuple[float, float] = (1.0, 1.0),
        min_keep: int = 4,
        max_tries: int = 50,
    ):
        if n_targets < 1:
            raise ValueError(f"n_targets must be >= 1, got {n_targets}")
        for name, (lo, hi) in {"target_scale": target_scale, "context_scale": context_scale,
                               "target_aspect": target_aspect, "context_aspect": context_aspect}.items():
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < lo <= hi, got ({lo}, {hi})")
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_tokens = self.grid[0] * self.grid[1]
        if not 1 <= min_keep < self.num_tokens:
            raise ValueError(f"min_keep must be in [1, {self.num_tokens}), got {min_keep}")
        self.n_targets = n_targets
        self.target_scale = tuple(target_scale)
        self.target_aspect = tuple(target_aspect)
        self.context_scale = tuple(context_scale)
        self.context_aspect = tuple(context_aspect)
        self.min_keep = min_keep
        self.max_tries = max_tries

    def __call__(self, batch_size: int, generator: torch.Generator | None = None):
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        B, M, N = batch_size, self.n_targets, self.num_tokens
        t_size = block_size(_uniform(*self.target_scale, g), _uniform(*self.target_aspect, g), self.grid)
        c_size = block_size(_uniform(*self.context_scale, g), _uniform(*self.context_aspect, g), self.grid)

        targets = block_masks(B * M, t_size, self.grid, g).view(B, M, N)
        context = block_masks(B, c_size, self.grid, g) & ~targets.any(1)
        for _ in range(self.max_tries):
            bad = context.sum(1) < self.min_keep
            n_bad = int(bad.sum())
            if n_bad == 0:
                break
            targets[bad] = block_masks(n_bad * M, t_size, self.grid, g).view(n_bad, M, N)
            context[bad] = block_masks(n_bad, c_size, self.grid, g) & ~targets[bad].any(1)
        else:
            raise ValueError(
                f"could not keep {self.min_keep} context tokens on a {self.grid} grid with {M} targets of "
                f"scale {self.target_scale}: lower n_targets/target_scale or min_keep")

        # Equal counts across the batch: keep a random subset of each context of the smallest size.
        n_keep = int(context.sum(1).min())
        scores = torch.rand(B, N, generator=g).masked_fill_(~context, -1.0)
        context_idx = scores.topk(n_keep, dim=1).indices.sort(dim=1).values
        target_idx = targets.view(B * M, N).nonzero()[:, 1].view(B, M, t_size[0] * t_size[1])
        return context_idx, target_idx

    def __repr__(self) -> str:
        return (f"MultiBlockMasker(grid={self.grid}, n_targets={self.n_targets}, target_scale={self.target_scale}, "
                f"context_scale={self.context_scale}, min_keep={self.min_keep})")
