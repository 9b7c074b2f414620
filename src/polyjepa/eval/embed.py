"""Embed arrays with a trained encoder, in batches, without gradients."""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def embed_array(encoder, x: np.ndarray | torch.Tensor, *, pool: str = "mean", layers: int = 1,
                batch_size: int = 256) -> np.ndarray:
    """(n, ...) inputs -> (n, F) float32 embeddings from ``encoder.embed``."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    x = torch.as_tensor(x)
    out = [encoder.embed(x[i:i + batch_size].to(device), pool=pool, layers=layers).float().cpu()
           for i in range(0, len(x), batch_size)]
    encoder.train(was_training)
    return torch.cat(out).numpy()
