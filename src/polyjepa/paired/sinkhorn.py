"""Multi-assignment Sinkhorn-Knopp and the modality-structure term: each side's items are softly assigned to
learned anchors both in the tower's own (unimodal) space and in the shared space, and each assignment is
trained to predict the other's balanced multi-assignment target, so that items that share anchors in a
tower's space share them in the shared space too. (Swetha et al., "Preserving Modality Structure Improves
Multi-Modal Learning", ICCV 2023.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..objectives.distributed import gather_batch
from .objectives import PairedContrastive


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, *, eps: float = 0.05, iters: int = 3) -> torch.Tensor:
    """(B, K) balanced soft assignment of B items to K anchors: rows sum to 1, columns to B / K (at convergence).

    Args:
        scores: (B, K) similarities; the kernel is ``exp(scores / eps)``, handled in the log domain (fp32).
        iters: alternating normalisations (columns, then rows; the rows are exact on return).
    (Cuturi 2013; SwAV's assignment, Caron et al. 2020.)
    """
    log_q = scores.float() / eps
    b, k = log_q.shape
    for _ in range(iters):
        log_q = log_q - log_q.logsumexp(0, keepdim=True) + math.log(b / k)
        log_q = log_q - log_q.logsumexp(1, keepdim=True)
    return log_q.exp()


@torch.no_grad()
def multi_sinkhorn(scores: torch.Tensor, *, copies: int | None = None, full: int | None = None,
                   low_weight: float = 0.25, eps: float = 0.07, iters: int = 20,
                   return_plan: bool = False) -> torch.Tensor:
    """Multi-assignment Sinkhorn-Knopp: a soft multi-hot target (B, K) in [0, 1] per item.

    ``copies`` (M, default K) stacked copies of the scores, the last ``full`` (default K // 2) at full weight and
    the others scaled by ``low_weight``, form a plan A (M, B, K) = exp(f_m S / eps); each iteration makes every
    (copy, anchor) column sum to B / K, every (item, anchor) sum to 1 over the copies, and every (copy, item)
    row sum to 1 over the anchors (three marginals that agree when M = K). The target sums the full-weight
    copies and is min-max normalised per item. With M = 1 and full = 1 it is :func:`sinkhorn_knopp`.

    Args:
        scores: (B, K) similarities of items to anchors.
        return_plan: return the plan (M, B, K) instead of the target (for checks).
    The reference sorts the column marginals by the anchors' current popularity; here they are uniform.
    """
    b, k = scores.shape
    m = k if copies is None else copies
    r = max(1, k // 2) if full is None else full
    if not 1 <= r <= m:
        raise ValueError(f"full must be in [1, copies={m}], got {r}")
    f = torch.full((m, 1, 1), low_weight, dtype=torch.float32, device=scores.device)
    f[m - r:] = 1.0
    log_a = f * scores.float()[None] / eps                                     # (M, B, K)
    log_a = log_a - log_a.flatten().logsumexp(0)
    for _ in range(iters):
        log_a = log_a - log_a.logsumexp(1, keepdim=True) + math.log(b / k)
        if m > 1:
            log_a = log_a - log_a.logsumexp(0, keepdim=True)
        log_a = log_a - log_a.logsumexp(2, keepdim=True)
    plan = log_a.exp()
    if return_plan:
        return plan
    target = plan[m - r:].sum(0)
    low, high = target.amin(1, keepdim=True), target.amax(1, keepdim=True)
    return (target - low) / (high - low).clamp_min(1e-12)


def anchor_scores(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(B, K) cosine similarities of rows of ``x`` (B, D) to the anchors (K, D)."""
    return F.normalize(x.float(), dim=1) @ F.normalize(anchors.float(), dim=1).T


def structure_loss(h: torch.Tensor, z: torch.Tensor, anchors_h: torch.Tensor, anchors_z: torch.Tensor, *,
                   temperature: float = 0.1, **sk) -> torch.Tensor:
    """Crosswise assignment loss of one side: BCE(s_h / t, target(s_z)) + BCE(s_z / t, target(s_h)), averaged.

    Args:
        h: (B, Dh) the tower's features (its unimodal space); z: (B, P) the shared-space projections.
        anchors_h: (K, Dh), anchors_z: (K, P) learned anchors; targets come from :func:`multi_sinkhorn`
            (no gradient). The reference code feeds exp(s / t) to the BCE as logits, which keeps every
            probability above 1/2; s / t is used here.
    """
    s_h, s_z = anchor_scores(h, anchors_h), anchor_scores(z, anchors_z)
    t_h, t_z = multi_sinkhorn(s_h.detach(), **sk), multi_sinkhorn(s_z.detach(), **sk)
    return (F.binary_cross_entropy_with_logits(s_h / temperature, t_z)
            + F.binary_cross_entropy_with_logits(s_z / temperature, t_h)) / 2


class MultiSinkhornContrastive(PairedContrastive):
    """Symmetric InfoNCE (learned temperature) plus ``weight`` x the structure term of both sides.

    Args:
        anchors: K learned anchors per side and space; weight: of the structure term; temperature: of its
            logits; eps, iters, low_weight: of :func:`multi_sinkhorn`; detach_towers: the tower-space side of
            the term is a fixed reference (no gradient reaches the towers through it; the shared-space side
            still trains heads and towers).
    The method calls :meth:`bind` with the widths of the towers and of the shared space, and passes the
    tower features ``h_a``, ``h_b`` to ``forward``. Under DDP both terms see the batch gathered from every
    process (with gradients): the InfoNCE negatives and the Sinkhorn assignment, which balances the anchors
    over the whole global batch, so N processes give the single-process loss and gradient of the
    concatenated batch.
    """

    uses_towers = True

    def __init__(self, *, anchors: int = 64, weight: float = 1.0, temperature: float = 0.1, eps: float = 0.07,
                 iters: int = 20, low_weight: float = 0.25, detach_towers: bool = True, **contrastive):
        super().__init__(**contrastive)
        if anchors < 2:
            raise ValueError(f"objective.anchors must be at least 2, got {anchors}")
        self.n_anchors, self.weight, self.temperature = int(anchors), float(weight), float(temperature)
        self.sk = {"eps": float(eps), "iters": int(iters), "low_weight": float(low_weight)}
        self.detach_towers = detach_towers
        self.anchors = nn.ParameterDict()

    def bind(self, dim_a: int, dim_b: int, proj_dim: int) -> None:
        """Create the anchors: tower a, tower b and the shared space of each side."""
        for name, d in (("h_a", dim_a), ("h_b", dim_b), ("z_a", proj_dim), ("z_b", proj_dim)):
            self.anchors[name] = nn.Parameter(torch.randn(self.n_anchors, d) / math.sqrt(d))

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, sim: torch.Tensor | None = None, *,
                h_a: torch.Tensor | None = None, h_b: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = super().forward(z_a, z_b, sim)
        if h_a is None or h_b is None or not len(self.anchors):
            raise ValueError("the structure term needs the tower features h_a, h_b and bound anchors")
        if self.detach_towers:
            h_a, h_b = h_a.detach(), h_b.detach()
        # one assignment over the global batch: every process computes the same term on the gathered rows
        h_a, h_b, z_a, z_b = gather_batch(h_a), gather_batch(h_b), gather_batch(z_a), gather_batch(z_b)
        a = structure_loss(h_a, z_a, self.anchors["h_a"], self.anchors["z_a"], temperature=self.temperature, **self.sk)
        b = structure_loss(h_b, z_b, self.anchors["h_b"], self.anchors["z_b"], temperature=self.temperature, **self.sk)
        structure = (a + b) / 2
        out["infonce"] = out["loss"].detach()
        out["structure"] = structure.detach()
        out["loss"] = out["loss"] + self.weight * structure
        return out
