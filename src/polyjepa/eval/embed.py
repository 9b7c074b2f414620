"""Embed arrays with a trained encoder, in batches, without gradients."""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def embed_array(encoder, x: np.ndarray | torch.Tensor, *, pool: str = "mean", layers: int = 1,
                batch_size: int = 256) -> np.ndarray:
    """(n, ...) inputs -> (n, F) float32 embeddings from ``encoder.embed``; n = 0 gives an empty (0, F) array."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    x = torch.as_tensor(x)
    out = [encoder.embed(x[i:i + batch_size].to(device), pool=pool, layers=layers).float().cpu()
           for i in range(0, len(x), batch_size)]
    if not out:  # no samples: one zero input gives the width
        out = [encoder.embed(torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=device), pool=pool,
                             layers=layers).float().cpu()[:0]]
    encoder.train(was_training)
    return torch.cat(out).numpy()
