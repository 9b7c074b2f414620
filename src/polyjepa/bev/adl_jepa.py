"""AD-L-JEPA's masking of bird's-eye-view cells and its loss, as pure functions on BEV maps.

Non-empty cells are split at random into context and target (half each), and so are the empty cells; the
predictor's map is compared with the target encoder's map cell by cell with ``1 - cos``, the non-empty target
cells weighted 0.75 and the empty ones 0.25, plus a variance hinge that keeps each channel's spread above 1/16
over the non-empty context cells of a sample's context map and over its non-empty target cells of the predicted map. (Zhu et al., AD-L-JEPA, AAAI 2026.)
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


def variance_hinge(emb: torch.Tensor, mask: torch.Tensor | None = None, *, gamma: float = 1 / 16,
                   eps: float = 1e-4) -> torch.Tensor:
    """mean over samples and channels of relu(gamma - sqrt(Var over the sample's cells + eps)).

    Args:
        emb: (B, D, H, W) maps.
        mask: optional (B, H, W) bool: the variance of a sample is taken over its cells in the mask only (the
            paper takes the context map over its non-empty context cells, the prediction over its non-empty
            target cells); samples with fewer than two such cells are left out.
    """
    emb = emb.float()
    if mask is None:
        std = torch.sqrt(emb.flatten(2).var(dim=2) + eps)
        return F.relu(gamma - std).mean()
    m = mask.unsqueeze(1).to(emb.dtype)                                     # (B, 1, H, W)
    n = m.sum((2, 3))                                                       # (B, 1)
    mean = (emb * m).sum((2, 3)) / n.clamp_min(1)
    var = ((emb - mean[..., None, None]).pow(2) * m).sum((2, 3)) / (n - 1).clamp_min(1)
    hinge = F.relu(gamma - torch.sqrt(var + eps)).mean(1)                   # (B,)
    ok = n[:, 0] >= 2
    return (hinge * ok).sum() / ok.sum().clamp_min(1)


def adl_jepa_loss(pred: torch.Tensor, target: torch.Tensor, context: torch.Tensor, split: CellSplit, *,
                  nonempty_weight: float = 0.75, empty_weight: float = 0.25, alpha: float = 1.0,
                  beta: float = 1.0, gamma: float = 1 / 16) -> dict[str, torch.Tensor]:
    """``w_ne * mean(1 - cos) over non-empty target cells + w_e * mean(1 - cos) over empty target cells
    + alpha * hinge(context over its non-empty context cells) + beta * hinge(pred over its non-empty target
    cells)``, the hinge at ``gamma``.

    Args:
        pred, target, context: (B, D, H, W) maps (predictor output, target encoder, context encoder).
    Returns: {"loss", "nonempty", "empty", "var_context", "var_pred"}.
    """
    cos = 1 - F.cosine_similarity(pred.float(), target.float(), dim=1)      # (B, H, W)

    def masked_mean(mask: torch.Tensor) -> torch.Tensor:
        return (cos * mask).sum() / mask.sum().clamp_min(1)

    ne, e = masked_mean(split.target), masked_mean(split.target_empty)
    vc = variance_hinge(context, split.context, gamma=gamma)
    vp = variance_hinge(pred, split.target, gamma=gamma)
    return {"loss": nonempty_weight * ne + empty_weight * e + alpha * vc + beta * vp, "nonempty": ne, "empty": e,
            "var_context": vc, "var_pred": vp}
