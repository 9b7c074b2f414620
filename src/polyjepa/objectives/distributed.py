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

    return torch.cat(all_gather(z.contiguous()), dim=0)
