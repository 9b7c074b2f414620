"""The semi-supervised paired objective: CLIP's InfoNCE on every pair through the self-supervised heads, plus a
cross-modal supervised-contrastive term on the labelled pairs through a second, label-supervised head per
side; at query time the two heads are mixed, ``z = (1 - alpha) z_ssl + alpha z_sup``, to move retrieval from
exact pairing (alpha = 0) towards the label (alpha = 1). (Stewart et al., Control-MVR, 2024, shown here on
image-caption and paper-graph pairs.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..objectives.distributed import gather_batch
from .objectives import PairedContrastive, gather_ids
from .towers import Head


def cross_supcon(z_a: torch.Tensor, z_b: torch.Tensor, labels: torch.Tensor, *,
                 temperature: float = 0.1) -> torch.Tensor:
    """Cross-modal supervised contrastive loss: every labelled a takes every b with its label as a positive.

    Args:
        z_a, z_b: (B, D) the two sides' projections (row i of each is a pair); l2-normalised here.
        labels: (B,) int64 labels, -1 where the pair is unlabelled (it is then only a negative).
        temperature: logits are cos / temperature.
    Returns the mean over labelled rows and both directions of ``-mean_{p in P(i)} log softmax_j(logits_i)_p``,
    with P(i) the other side's items sharing i's label (its own pair among them); 0 without labelled rows.
    With every label distinct it is symmetric InfoNCE over the labelled rows. Under DDP the batch and the
    labels are gathered from every process. (Khosla et al., SupCon, 2020, taken across modalities.)
    """
    u_a = F.normalize(gather_batch(z_a).float(), dim=1)
    u_b = F.normalize(gather_batch(z_b).float(), dim=1)
    y = gather_ids(labels.long())
    has = y >= 0
    if not has.any():
        return (u_a.sum() + u_b.sum()) * 0.0
    pos = (y[:, None] == y[None, :]) & has[:, None] & has[None, :]              # (B, B)
    logits = u_a @ u_b.T / temperature
    total = 0.0
    for lg in (logits, logits.T):
        log_p = lg.log_softmax(dim=1)
        per_row = -(log_p * pos).sum(1) / pos.sum(1).clamp_min(1)
        total = total + per_row[has].mean()
    return total / 2


class SemiSupervisedContrastive(PairedContrastive):
    """``InfoNCE(head_a, head_b) + weight * cross_supcon(sup_a(h_a), sup_b(h_b), labels)``.

    Args:
        weight: of the supervised term; sup_temperature: its temperature; label_fraction: the share of training
            pairs whose label is used (the rest count as unlabelled; drawn once with ``label_seed``).
    The method binds the label-supervised heads to the towers' widths and passes the tower features and the
    batch's labels (-1 for unlabelled pairs).
    """

    uses_towers = True
    uses_labels = True

    def __init__(self, *, weight: float = 1.0, sup_temperature: float = 0.1, label_fraction: float = 1.0,
                 label_seed: int = 0, proj_hidden: int = 0, **contrastive):
        super().__init__(**contrastive)
        if not 0.0 < label_fraction <= 1.0:
            raise ValueError(f"objective.label_fraction must be in (0, 1], got {label_fraction}")
        self.weight, self.sup_temperature = float(weight), float(sup_temperature)
        self.label_fraction, self.label_seed, self.proj_hidden = float(label_fraction), int(label_seed), proj_hidden
        self.sup_a = self.sup_b = None

    def bind(self, dim_a: int, dim_b: int, proj_dim: int) -> None:
        """Create the label-supervised heads (tower widths -> the shared width)."""
        self.sup_a = Head(dim_a, proj_dim, self.proj_hidden)
        self.sup_b = Head(dim_b, proj_dim, self.proj_hidden)

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, sim: torch.Tensor | None = None, *,
                h_a: torch.Tensor | None = None, h_b: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = super().forward(z_a, z_b, sim)
        if h_a is None or h_b is None or labels is None or self.sup_a is None:
            raise ValueError("the supervised term needs the tower features, the batch's labels and bound heads")
        sup = cross_supcon(self.sup_a(h_a), self.sup_b(h_b), labels, temperature=self.sup_temperature)
        out["infonce"], out["supcon"] = out["loss"].detach(), sup.detach()
        out["loss"] = out["loss"] + self.weight * sup
        return out

    def mixed(self, z_ssl: torch.Tensor, h: torch.Tensor, side: str, alpha: float) -> torch.Tensor:
        """(B, P) l2-normalised ``(1 - alpha) * normalise(z_ssl) + alpha * normalise(sup head(h))``."""
        head = self.sup_a if side == "a" else self.sup_b
        z = (1 - alpha) * F.normalize(z_ssl, dim=-1) + alpha * F.normalize(head(h), dim=-1)
        return F.normalize(z, dim=-1)


def labelled_subset(n: int, fraction: float, seed: int) -> torch.Tensor:
    """(n,) bool: a fixed random share ``fraction`` of n training pairs (at least one) keeps its label."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.randperm(n, generator=g)[:max(1, math.ceil(fraction * n))]] = True
    return keep

