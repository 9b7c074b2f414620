"""Batch statistics across processes: gather embeddings with gradients under DDP."""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_batch(z: torch.Tensor) -> torch.Tensor:
    """Concatenate (B, ...) tensors from every process along the batch, keeping gradients.

    The backward sums the incoming gradients of every rank and hands each rank its own slice; with DDP's
    gradient averaging over ranks, a loss computed on the gathered batch by every rank gets exactly the
    single-process gradient of that loss on the concatenated batch. Every rank must hold the same B.
    Without an initialised process group it returns ``z`` unchanged.
    """
    if not is_distributed():
        return z
    return _GatherBatch.apply(z)


def gather_along(z: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`gather_batch` along axis ``dim`` (e.g. the batch axis of (V, B, D) views)."""
    return gather_batch(z.movedim(dim, 0)).movedim(0, dim)


class _GatherBatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        z = z.contiguous()
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z)
        ctx.rows = z.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad):
        # (a gradient arriving through a transpose is not contiguous: the sum must see it laid out in order)
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]
