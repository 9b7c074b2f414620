"""Latent regression: distance between predicted and target token features."""
from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("smooth_l1", "l2", "l1", "cosine")


def latent_regression(pred: torch.Tensor, target: torch.Tensor, *, kind: str = "smooth_l1",
                      beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Mean distance between predictions and (detached) targets over every token and channel.

    Args:
        pred, target: (..., D) of the same shape; target is treated as a constant.
        kind: 'smooth_l1' (Huber with ``beta``; I-JEPA's released code), 'l2' (mean squared error,
            the I-JEPA paper), 'l1' (V-JEPA), 'cosine' (1 - cos per token).
    Returns:
        {"loss": scalar, "pred_std": mean per-channel std of predictions (collapse monitor),
         "target_std": the same for targets}.
    """
    target = target.detach()
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    p, t = pred.float(), target.float()  # statistics in fp32 whatever the autocast
    if kind == "smooth_l1":
        loss = F.smooth_l1_loss(p, t, beta=beta)
    elif kind == "l2":
        loss = F.mse_loss(p, t)
    elif kind == "l1":
        loss = F.l1_loss(p, t)
    elif kind == "cosine":
        loss = (1 - F.cosine_similarity(p, t, dim=-1)).mean()
    else:
        raise ValueError(f"unknown latent loss {kind!r}: use one of {', '.join(KINDS)}")
    with torch.no_grad():
        pred_std = p.reshape(-1, p.shape[-1]).std(0).mean()
        target_std = t.reshape(-1, t.shape[-1]).std(0).mean()
    return {"loss": loss, "pred_std": pred_std, "target_std": target_std}
