"""T-JEPA's feature-subset masker: a random context subset and target subsets of the other columns."""
from __future__ import annotations

import torch


def subset_sizes(n_features: int, context_ratio: tuple[float, float], target_ratio: tuple[float, float],
                 generator: torch.Generator, max_tries: int = 100) -> tuple[int, int]:
    """(n_context, n_target) for one batch, as in the T-JEPA reference: each count is drawn uniformly
    between round(F * low) and round(F * high) (rounded), redrawn until n_context + n_target <= F;
    both are at least 1."""
    bounds = []
    for lo, hi in (context_ratio, target_ratio):
        a, b = max(1, round(n_features * lo)), max(1, round(n_features * hi))
        bounds.append((a, max(a, b)))
    for _ in range(max_tries):
        nc, nt = (a + round((b - a) * torch.rand((), generator=generator).item()) for a, b in bounds)
        if nc + nt <= n_features:
            return nc, nt
    return min(bounds[0][0], n_features - 1), 1


class FeatureSubsetMasker:
    """Context and target column subsets for T-JEPA (Thimonier et al., 2024).

    Per batch, a context size and a target size are drawn (same for every row, so indices stack);
    per row, a random ``n_context`` columns form the context and each of ``n_targets`` targets is a
    random subset of size ``n_target`` of the remaining columns (targets may overlap each other,
    never the context). The ``n_reg_tokens`` leading regularisation tokens are always in the
    context and never targets.

    Args:
        grid: (R + F,) from the tokenizer.
        context_ratio, target_ratio: share ranges of F (defaults: the reference's tuned values,
            0.136-0.368 and 0.156-0.622).
    Shapes:
        __call__(B, generator) -> context_idx (B, R + Nc), target_idx (B, M, Nt), token indices in [0, R + F).
    """

    def __init__(self, *, grid: tuple[int], n_reg_tokens: int = 1, n_targets: int = 4,
                 context_ratio: tuple[float, float] = (0.136, 0.368), target_ratio: tuple[float, float] = (0.156, 0.622)):
        n_tokens = int(grid[0])
        self.n_reg, self.n_features = n_reg_tokens, n_tokens - n_reg_tokens
        if self.n_features < 2:
            raise ValueError(f"feature-subset masking needs at least 2 feature columns, got {self.n_features}")
        for name, (lo, hi) in (("context_ratio", context_ratio), ("target_ratio", target_ratio)):
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got ({lo}, {hi})")
        if n_targets < 1:
            raise ValueError(f"n_targets must be >= 1, got {n_targets}")
        self.n_targets = n_targets
        self.context_ratio, self.target_ratio = tuple(context_ratio), tuple(target_ratio)

    def __call__(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        F, R, M = self.n_features, self.n_reg, self.n_targets
        nc, nt = subset_sizes(F, self.context_ratio, self.target_ratio, generator)
        perm = torch.rand(batch_size, F, generator=generator).argsort(1)       # (B, F)
        context = perm[:, :nc]
        rest = perm[:, nc:]                                                     # (B, F - nc)
        pick = torch.rand(batch_size, M, F - nc, generator=generator).argsort(2)[..., :nt]  # (B, M, nt)
        targets = rest[:, None, :].expand(-1, M, -1).gather(2, pick)
        reg = torch.arange(R).expand(batch_size, R)
        context_idx = torch.cat([reg, context.sort(1).values + R], dim=1)
        return context_idx, targets.sort(2).values + R
