"""An invariance term for a JEPA: VICReg between two views' pooled embeddings (C-JEPA / MC-JEPA style)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..data.augment import RandomAffine
from ..multiview.heads import Projector
from ..objectives.vicreg import vicreg_loss


class Invariance(nn.Module):
    """``weight`` x VICReg between the projections of two pooled embeddings of one batch.

    The data loader draws two views of each image with ``view`` (a random rotation, zoom and shift);
    the JEPA masks and predicts on the first, and its context embedding (the mean context token) is
    one side; the same encoder on the whole second view is the other. Masked prediction alone learns
    what a token's neighbours give; the invariance term adds what stays the same when the image moves,
    which a linear probe of digit identity needs (on MNIST it lifts the probe from 0.927 to 0.9625; docs/images.md).

    Args:
        in_dim: encoder width (injected).
        weight: factor on the VICReg loss (its own terms weigh 25 / 25 / 1 inside).
        rotate, scale, translate: the views' :class:`~polyjepa.data.augment.RandomAffine` ranges (images).
        view: another ``view(x, generator) -> x`` (e.g. point clouds' ``PointAugment``); it replaces
            the affine view, whose ranges are then ignored.
        views: how many whole views are encoded beside the masked first one (multi-view, as multi-crop
            methods do); the loss is the mean VICReg over every pair of the ``1 + views`` embeddings.
        first: what stands for the first view: ``context`` (its mean context token, which the JEPA has
            computed anyway: a masked view) or ``whole`` (the online encoder on the whole first view, one
            more pass: the pairs then compare two unmasked images).
        hidden, out_dim, layers: the projector (Linear-BN-ReLU x (layers - 1), Linear), as VICReg's.
        sim_weight, var_weight, cov_weight: VICReg's weights.
    Shapes: ``forward(z_a (B, D), z_b (B, D), ...) -> {"loss", "invariance", "variance", "covariance"}``
    (one (B, D) embedding per view; the terms are means over the pairs).
    (Bardes et al., VICReg, ICLR 2022; Mo & Tong, C-JEPA, 2024.)
    """

    def __init__(self, *, in_dim: int, weight: float = 1.0, rotate: float = 15.0, scale: float = 0.15,
                 translate: float = 0.2, hidden: int = 512, out_dim: int = 256, layers: int = 3,
                 sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0,
                 view: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None, views: int = 1,
                 first: str = "context"):
        super().__init__()
        if first not in ("context", "whole"):
            raise ValueError(f"invariance first must be 'context' or 'whole', got {first!r}")
        if weight < 0:
            raise ValueError(f"invariance weight must be >= 0, got {weight}")
        if int(views) != views or views < 1:
            raise ValueError(f"invariance views must be a whole number >= 1, got {views}")
        self.weight, self.views, self.first = float(weight), int(views), first
        self.view = view if view is not None else RandomAffine(rotate=rotate, scale=scale, translate=translate)
        self.projector = Projector(in_dim=in_dim, hidden=hidden, out_dim=out_dim, layers=layers)
        self.terms = {"sim_weight": sim_weight, "var_weight": var_weight, "cov_weight": cov_weight}

    def forward(self, *z: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(z) < 2:
            raise ValueError(f"the invariance term needs the embeddings of at least 2 views, got {len(z)}")
        p = [self.projector(e) for e in z]
        pairs = [vicreg_loss(p[i], p[j], **self.terms) for i in range(len(p)) for j in range(i + 1, len(p))]
        out = {k: torch.stack([o[k] for o in pairs]).mean() for k in pairs[0]}
        return {**out, "loss": self.weight * out["loss"]}
