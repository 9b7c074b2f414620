"""Maskers over sequenced patch tokens: Point-JEPA's sequence blocks and 3D-JEPA's spatial blocks.

Both follow the core protocol ``masker(batch_size, generator, ...) -> (context_idx (B, Nc), target_idx
(B, M, Nt))``: sizes are drawn once per batch (so index tensors stack), positions per sample; context
and targets are disjoint; all randomness comes from ``generator``.
"""
from __future__ import annotations

import torch


def _uniform(generator: torch.Generator, lo: float, hi: float, *shape) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=generator)


def _check_scales(n_tokens: int, n_targets: int, target_scale, context_scale) -> None:
    if not 0 < target_scale[0] <= target_scale[1] < 1:
        raise ValueError(f"target_scale must satisfy 0 < lo <= hi < 1, got {tuple(target_scale)}")
    if not 0 < context_scale[0] <= context_scale[1] <= 1:
        raise ValueError(f"context_scale must satisfy 0 < lo <= hi <= 1, got {tuple(context_scale)}")
    if n_targets < 1:
        raise ValueError(f"n_targets must be >= 1, got {n_targets}")
    if n_targets * max(1, int(n_tokens * target_scale[1])) >= n_tokens:
        raise ValueError(f"{n_targets} targets of up to {target_scale[1]} of {n_tokens} tokens leave no context: "
                         f"lower masker.n_targets or masker.target_scale")


def _target_mask(target_idx: torch.Tensor, n_tokens: int) -> torch.Tensor:
    B = target_idx.shape[0]
    mask = torch.zeros(B, n_tokens, dtype=torch.bool)
    mask.scatter_(1, target_idx.reshape(B, -1), True)
    return mask


class SequenceBlockMasker:
    """Point-JEPA masks on sequenced tokens: contiguous target runs, a contiguous run of the rest as context.

    Targets: ``n_targets`` runs of ``int(N * r)`` consecutive tokens, r ~ U(target_scale), start uniform
    (runs may overlap each other). Context: of the tokens in no target, in sequence order, a run of
    consecutive ones covering a fraction U(context_scale) of them (Point-JEPA:
    ``context_sample_method=contiguous``), cut to the smallest count in the batch.
    ``targets='random'`` draws each target as ``int(N * r)`` random tokens instead (the ablation).

    Args:
        grid: (N,) the token count (injected from the tokenizer).
    Defaults are Point-JEPA's: 4 targets of 0.15-0.2, context 0.4-0.75 (Saito et al., 2024).
    """

    def __init__(self, *, grid: tuple[int], n_targets: int = 4, target_scale: tuple[float, float] = (0.15, 0.2),
                 context_scale: tuple[float, float] = (0.4, 0.75), targets: str = "contiguous"):
        (self.n_tokens,) = tuple(grid)
        if targets not in ("contiguous", "random"):
            raise ValueError(f"targets must be 'contiguous' or 'random', got {targets!r}")
        _check_scales(self.n_tokens, n_targets, target_scale, context_scale)
        self.n_targets, self.targets = n_targets, targets
        self.target_scale, self.context_scale = tuple(target_scale), tuple(context_scale)

    def __call__(self, batch_size: int, generator: torch.Generator, **_) -> tuple[torch.Tensor, torch.Tensor]:
        B, N, M = batch_size, self.n_tokens, self.n_targets
        nt = max(1, int(N * float(_uniform(generator, *self.target_scale, 1))))
        if self.targets == "contiguous":
            start = torch.randint(0, N - nt + 1, (B, M, 1), generator=generator)
            target_idx = start + torch.arange(nt)                            # (B, M, Nt)
        else:
            target_idx = torch.rand(B, M, N, generator=generator).argsort(-1)[..., :nt].sort(-1).values
        rest = ~_target_mask(target_idx, N)                                  # (B, N)
        n_rest = rest.sum(1)                                                 # (B,) >= N - M * Nt >= 1
        nc = max(1, int(float(_uniform(generator, *self.context_scale, 1)) * int(n_rest.min())))
        # the remaining tokens first, in sequence order; then a run of nc of them from a random start
        order = (torch.where(rest, 0, N) + torch.arange(N)).argsort(1)
        start = (torch.rand(B, generator=generator) * (n_rest - nc + 1)).long()
        context_idx = order.gather(1, start[:, None] + torch.arange(nc))
        return context_idx, target_idx


class SpatialBlockMasker:
    """3D-JEPA multi-block masks from patch centres: targets are local neighbourhoods, the context a large region.

    Each of ``n_targets`` targets is the ``int(N * r)`` patches nearest a random seed patch, r ~
    U(target_scale). The context is the ``int(N * c)`` patches nearest another seed, c ~
    U(context_scale), minus every target patch, cut to the smallest count in the batch by keeping
    those nearest its seed (the 3-D analogue of I-JEPA's blocks; Hu et al., 3D-JEPA, 2024; the
    scales here are I-JEPA's, as 3D-JEPA's own values are not confirmed).

    Called as ``masker(batch_size, generator, centres=(B, N, 3))`` (``uses_centres``).
    """

    uses_centres = True

    def __init__(self, *, grid: tuple[int], n_targets: int = 4, target_scale: tuple[float, float] = (0.15, 0.2),
                 context_scale: tuple[float, float] = (0.85, 1.0)):
        (self.n_tokens,) = tuple(grid)
        _check_scales(self.n_tokens, n_targets, target_scale, context_scale)
        self.n_targets = n_targets
        self.target_scale, self.context_scale = tuple(target_scale), tuple(context_scale)

    def __call__(self, batch_size: int, generator: torch.Generator, *,
                 centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, N, M = batch_size, self.n_tokens, self.n_targets
        if centres.shape[:2] != (B, N):
            raise ValueError(f"centres have shape {tuple(centres.shape)}, expected ({B}, {N}, 3)")
        c = centres.detach().float().cpu()
        rows = torch.arange(B)
        nt = max(1, int(N * float(_uniform(generator, *self.target_scale, 1))))
        seeds = torch.randint(0, N, (B, M + 1), generator=generator)
        seed_xyz = c[rows[:, None], seeds]                                   # (B, M + 1, 3)
        d = (seed_xyz.unsqueeze(2) - c.unsqueeze(1)).pow(2).sum(-1)          # (B, M + 1, N)
        target_idx = d[:, :M].topk(nt, dim=-1, largest=False).indices.sort(-1).values
        ctx_d = d[:, M]
        n_region = max(1, int(N * float(_uniform(generator, *self.context_scale, 1))))
        in_region = torch.zeros(B, N, dtype=torch.bool)
        in_region.scatter_(1, ctx_d.topk(n_region, dim=-1, largest=False).indices, True)
        outside = ~_target_mask(target_idx, N)
        allowed = in_region & outside
        if int(allowed.sum(1).min()) == 0:  # targets cover a whole small region: take the context from the rest
            allowed = outside
        nc = max(1, int(allowed.sum(1).min()))
        context_idx = ctx_d.masked_fill(~allowed, float("inf")).topk(nc, dim=-1, largest=False).indices
        return context_idx.sort(-1).values, target_idx
