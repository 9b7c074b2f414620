"""The two losses of self-supervised two-tower recommendation: in-batch softmax over (query, item) pairs and
InfoNCE between two masked views of each item."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def in_batch_softmax(q: torch.Tensor, i: torch.Tensor, item_ids: torch.Tensor | None = None, *,
                     temperature: float = 0.05) -> torch.Tensor:
    """Each query must pick its own item among the batch's items.

    Args:
        q, i: (B, D) query and item embeddings; row k of each is an observed pair. They are l2-normalised here.
        item_ids: optional (B,) item ids; another row holding the same item is not a negative (masked out).
        temperature: logits are ``cos(q_k, i_j) / temperature``.
    Returns the mean cross entropy of ``softmax_j(logits[k])`` at ``j = k``. (Yi et al., RecSys 2019;
    Yao et al., CIKM 2021.)
    """
    logits = F.normalize(q.float(), dim=1) @ F.normalize(i.float(), dim=1).T / temperature   # (B, B)
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    if item_ids is not None:
        logits = logits.masked_fill((item_ids[:, None] == item_ids[None, :]) & ~eye, float("-inf"))
    return F.cross_entropy(logits, torch.arange(n, device=logits.device))


def ssl_infonce(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """``-(1/N) sum_k log( e^{s(z1_k, z2_k)/t} / sum_j e^{s(z1_k, z2_j)/t} )`` with s the cosine similarity.

    Args:
        z1, z2: (N, D) projections of two views of the same N items.
    (Yao et al., CIKM 2021, the self-supervised term L_self.)
    """
    logits = F.normalize(z1.float(), dim=1) @ F.normalize(z2.float(), dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))
