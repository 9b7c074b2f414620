"""Batch statistics across processes: gather embeddings with gradients under DDP."""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_batch(z: torch.Tensor) -> torch.Tensor:
    """Concatenate (B, ...) tensors from every process along the batch, keeping gradients.

    Uses the autograd-aware all_gather, whose backward sums the incoming gradients of every rank's
    slice; with DDP's gradient averaging over ranks, a loss computed on the gathered batch by every
    rank gets exactly the single-process gradient of that loss on the concatenated batch.
    Without an initialised process group it returns ``z`` unchanged.
    """
    if not is_distributed():
        return z
    from torch.distributed.nn.functional import all_gather

    return _ContiguousGrad.apply(torch.cat(all_gather(z.contiguous()), dim=0))


def gather_along(z: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`gather_batch` along axis ``dim`` (e.g. the batch axis of (V, B, D) views)."""
    return gather_batch(z.movedim(dim, 0)).movedim(0, dim)


class _ContiguousGrad(torch.autograd.Function):
    # The all_gather backward reduce-scatters the slices of the incoming gradient as they lie in
    # memory; a gradient arriving through a transpose is not contiguous and gave wrong values.
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()
