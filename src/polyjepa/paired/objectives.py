"""Symmetric InfoNCE with a learned temperature (CLIP) and ConGraT's graph-softened targets."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..objectives.distributed import gather_batch, is_distributed

RANK_WEIGHTS = ("identity", "exp", "exp_thick_tail")


def symmetric_infonce(z_a: torch.Tensor, z_b: torch.Tensor, log_scale: torch.Tensor, *,
                      targets_ab: torch.Tensor | None = None,
                      targets_ba: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each a must pick its b among the batch's b's, and each b its a: the mean of both cross entropies.

    Args:
        z_a, z_b: (B, D) projections of the two sides; row i of each is a pair. They are l2-normalised here.
        log_scale: scalar; the logits are ``exp(log_scale) * cos(a_i, b_j)`` (CLIP's learned temperature).
        targets_ab, targets_ba: optional (B, B) rows of probabilities replacing the one-hot targets of
            the a->b and b->a directions (ConGraT's graph-softened targets); None: the identity.
    Returns:
        {"loss": (CE(logits, t_ab) + CE(logits^T, t_ba)) / 2, "accuracy": share of both directions'
         rows whose largest logit is the pair, "scale": exp(log_scale)}.
    Under DDP the batch is gathered from every process, so negatives come from all of them; soft
    targets then refer to the gathered batch (rank order). (Radford et al., CLIP, ICML 2021.)
    """
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(f"symmetric_infonce needs two (B, D) tensors of one shape, got {tuple(z_a.shape)}, "
                         f"{tuple(z_b.shape)}")
    u_a = F.normalize(gather_batch(z_a).float(), dim=1)
    u_b = F.normalize(gather_batch(z_b).float(), dim=1)
    scale = log_scale.float().exp()
    logits = scale * u_a @ u_b.T                                   # (B, B), fp32
    n = logits.shape[0]
    eye = torch.arange(n, device=logits.device)
    loss_ab = F.cross_entropy(logits, eye if targets_ab is None else targets_ab.to(logits))
    loss_ba = F.cross_entropy(logits.T, eye if targets_ba is None else targets_ba.to(logits))
    with torch.no_grad():
        accuracy = ((logits.argmax(1) == eye).float().mean() + (logits.argmax(0) == eye).float().mean()) / 2
    return {"loss": (loss_ab + loss_ba) / 2, "accuracy": accuracy, "scale": scale.detach()}


def _rank_weighted(sim: torch.Tensor, weights: str) -> torch.Tensor:
    """Multiply each row's r-th largest entry (r = 0, 1, ...) by w_r, in place of its original order."""
    if weights == "identity":
        return sim
    n = sim.shape[1]
    r = torch.arange(n, dtype=sim.dtype, device=sim.device)
    w = torch.exp(-r) if weights == "exp" else torch.exp(-r / math.sqrt(n))
    order = sim.argsort(dim=1, descending=True, stable=True)
    return torch.zeros_like(sim).scatter(1, order, sim.gather(1, order) * w)


def _row_distribution(sim: torch.Tensor, weights: str) -> torch.Tensor:
    """Off-diagonal rows of ``sim`` as distributions over the other items (zero rows where all are equal)."""
    n = sim.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=sim.device)
    s = _rank_weighted(sim.masked_fill(~off, float("-inf")), weights).masked_fill(~off, 0.0) \
        if weights != "identity" else sim.masked_fill(~off, 0.0)
    low = s.masked_fill(~off, float("inf")).amin(1, keepdim=True)
    s = (s - low).masked_fill(~off, 0.0).clamp_min(0.0)
    total = s.sum(1, keepdim=True)
    return torch.where(total > 0, s / total.clamp_min(1e-12), torch.zeros_like(s))


def graph_soft_targets(sim: torch.Tensor, *, alpha: float = 0.1,
                       weights: str = "identity") -> tuple[torch.Tensor, torch.Tensor]:
    """ConGraT's targets: ``alpha * S~ + (1 - alpha) * I`` for the rows (a->b) and from ``sim^T`` for the columns.

    Args:
        sim: (B, B) graph similarity of the batch's items (e.g. :func:`mutual_similarity` rows).
        alpha: weight of the graph term; 0 gives the one-hot targets of plain InfoNCE.
        weights: rank weighting of each row before normalising: 'identity', 'exp' (e^-r) or
            'exp_thick_tail' (e^(-r / sqrt(B))).
    S~ is each row without its diagonal, shifted to a minimum of 0 and normalised to sum 1. A row
    with no graph signal (an isolated node, or a constant row) keeps its one-hot target, so every
    target row sums to 1. (Brannon et al., ConGraT, 2023.)
    """
    if weights not in RANK_WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(RANK_WEIGHTS)}, got {weights!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be a square (B, B) matrix, got {tuple(sim.shape)}")
    sim = sim.float()
    eye = torch.eye(sim.shape[0], device=sim.device)
    out = []
    for s in (sim, sim.T):
        dist = _row_distribution(s, weights)
        has = (dist.sum(1, keepdim=True) > 0).float()
        out.append(has * (alpha * dist + (1 - alpha) * eye) + (1 - has) * eye)
    return out[0], out[1]


def mutual_similarity(edge_index: np.ndarray, n: int) -> np.ndarray:
    """(n, n) float32 rows of ``M^ = normalise_rows(A A^T)`` for an undirected graph with ``edge_index`` (2, E).

    ``M^[i] @ M^[j]`` is the cosine similarity of i's and j's neighbourhood-overlap profiles (ConGraT's
    mutual-neighbour similarity); isolated nodes get zero rows.
    """
    from scipy import sparse

    a = sparse.coo_matrix((np.ones(edge_index.shape[1], np.float32), (edge_index[0], edge_index[1])), shape=(n, n))
    a = ((a + a.T) > 0).astype(np.float32).tocsr()
    m = (a @ a.T).toarray()
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norm, out=np.zeros_like(m), where=norm > 0).astype(np.float32)


class PairedContrastive(nn.Module):
    """The objective of a two-tower method: symmetric InfoNCE with a learned log-scale, optionally
    with ConGraT's graph-softened targets.

    Args:
        init_log_scale: initial log of the logit scale (CLIP: ln(1/0.07) = 2.659; ConGraT: 3.5).
        max_log_scale: the scale is clamped to at most exp of this (CLIP: ln 100).
        learn_scale: whether the scale is trained (else fixed at its initial value).
        alpha, weights: the graph term (see :func:`graph_soft_targets`); alpha = 0 is plain CLIP.
    ``forward(z_a, z_b, sim=None)``: ``sim`` (B_global, B_global) is the graph similarity of the
    gathered batch, needed when alpha > 0.
    """

    def __init__(self, *, init_log_scale: float = math.log(1 / 0.07), max_log_scale: float = math.log(100.0),
                 learn_scale: bool = True, alpha: float = 0.0, weights: str = "identity"):
        super().__init__()
        if weights not in RANK_WEIGHTS:
            raise ValueError(f"objective.weights must be one of {', '.join(RANK_WEIGHTS)}, got {weights!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"objective.alpha must be in [0, 1], got {alpha}")
        self.log_scale = nn.Parameter(torch.tensor(float(init_log_scale)), requires_grad=learn_scale)
        self.max_log_scale, self.alpha, self.weights = float(max_log_scale), float(alpha), weights

    @property
    def uses_graph(self) -> bool:
        return self.alpha > 0

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, sim: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        targets = {}
        if self.uses_graph:
            if sim is None:
                raise ValueError("the graph term (alpha > 0) needs the batch's graph similarity")
            t_ab, t_ba = graph_soft_targets(sim, alpha=self.alpha, weights=self.weights)
            targets = {"targets_ab": t_ab, "targets_ba": t_ba}
        return symmetric_infonce(z_a, z_b, self.log_scale.clamp(max=self.max_log_scale), **targets)


def gather_ids(ids: torch.Tensor) -> torch.Tensor:
    """Concatenate (B,) integer ids from every process in rank order (no gradient)."""
    if not is_distributed():
        return ids
    import torch.distributed as dist

    parts = [torch.empty_like(ids) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, ids.contiguous())
    return torch.cat(parts)
