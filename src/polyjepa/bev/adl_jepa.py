"""AD-L-JEPA's masking of bird's-eye-view cells and its loss, as pure functions on BEV maps.

Non-empty cells are split at random into context and target (half each), and so are the empty cells; the
predictor's map is compared with the target encoder's map cell by cell with ``1 - cos``, the non-empty target
cells weighted 0.75 and the empty ones 0.25, plus a variance hinge on the context and predicted maps that keeps
each channel's spread over the cells of a sample above 1/16. (Zhu et al., AD-L-JEPA, AAAI 2026.)
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class CellSplit(NamedTuple):
    """(B, H, W) boolean masks: context / target among non-empty cells, and among empty cells."""

    context: torch.Tensor
    target: torch.Tensor
    context_empty: torch.Tensor
    target_empty: torch.Tensor


def split_cells(occupied: torch.Tensor, generator: torch.Generator, *, context_ratio: float = 0.5) -> CellSplit:
    """Per sample, ``round(context_ratio * n)`` of its ``n`` non-empty cells become context and the rest targets;
    the empty cells are split the same way. occupied: (B, H, W) bool."""
    b = occupied.shape[0]
    flat = occupied.reshape(b, -1)
    score = torch.rand(flat.shape, generator=generator).to(occupied.device)

    def split(member: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.where(member, score, torch.full_like(score, 2.0))          # non-members sort last
        rank = s.argsort(1).argsort(1)
        keep = torch.round(context_ratio * member.sum(1, keepdim=True).float()).long()
        context = member & (rank < keep)
        return context, member & ~context

    c, t = split(flat)
    ce, te = split(~flat)
    shape = occupied.shape
    return CellSplit(c.reshape(shape), t.reshape(shape), ce.reshape(shape), te.reshape(shape))


def variance_hinge(emb: torch.Tensor, *, gamma: float = 1 / 16, eps: float = 1e-4) -> torch.Tensor:
    """mean over samples and channels of relu(gamma - sqrt(Var over the sample's cells + eps)); emb (B, D, H, W)."""
    std = torch.sqrt(emb.flatten(2).float().var(dim=2) + eps)
    return F.relu(gamma - std).mean()


def adl_jepa_loss(pred: torch.Tensor, target: torch.Tensor, context: torch.Tensor, split: CellSplit, *,
                  nonempty_weight: float = 0.75, empty_weight: float = 0.25, alpha: float = 1.0,
                  beta: float = 1.0) -> dict[str, torch.Tensor]:
    """``w_ne * mean(1 - cos) over non-empty target cells + w_e * mean(1 - cos) over empty target cells
    + alpha * hinge(context) + beta * hinge(pred)``.

    Args:
        pred, target, context: (B, D, H, W) maps (predictor output, target encoder, context encoder).
    Returns: {"loss", "nonempty", "empty", "var_context", "var_pred"}.
    """
    cos = 1 - F.cosine_similarity(pred.float(), target.float(), dim=1)      # (B, H, W)

    def masked_mean(mask: torch.Tensor) -> torch.Tensor:
        return (cos * mask).sum() / mask.sum().clamp_min(1)

    ne, e = masked_mean(split.target), masked_mean(split.target_empty)
    vc, vp = variance_hinge(context), variance_hinge(pred)
    return {"loss": nonempty_weight * ne + empty_weight * e + alpha * vc + beta * vp, "nonempty": ne, "empty": e,
            "var_context": vc, "var_pred": vp}
