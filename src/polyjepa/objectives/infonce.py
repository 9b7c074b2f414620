"""SimCLR's NT-Xent (normalised-temperature cross entropy, InfoNCE over 2N anchors)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather_batch


def nt_xent_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, temperature: float = 0.5) -> dict[str, torch.Tensor]:
    """Each of the 2N rows must pick its other view among the 2N - 1 other rows.

    Args:
        z_a, z_b: (N, D) projections of two views of the same N samples (row i of each is a pair).
        temperature: tau > 0 (SimCLR on ImageNet: 0.1 with batch 4096; 0.5 suits small batches).
    Returns:
        {"loss": mean over 2N anchors of -log softmax_{k != i}(s_ik / tau)[positive],
         "accuracy": share of anchors whose most similar row is the positive}.
    Under DDP the batch is gathered from every process (negatives come from all of them).
    (Chen et al., SimCLR, ICML 2020.)
    """
    if abs(temperature) < 1e-8:
        raise ValueError(f"temperature must be non-zero, got {temperature}")
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"nt_xent_loss needs two (N, D) tensors of one shape, got {tuple(z_a.shape)}, {tuple(z_b.shape)}")
    u = F.normalize(torch.cat([gather_batch(z_a), gather_batch(z_b)]).float(), dim=1)  # (2N, D), fp32 logits
    n = u.shape[0] // 2
    logits = u @ u.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    loss = F.cross_entropy(logits, positive)
    with torch.no_grad():
        accuracy = (logits.argmax(1) == positive).float().mean()
    return {"loss": loss, "accuracy": accuracy}
