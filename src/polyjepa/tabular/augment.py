"""A view of table rows for an invariance term: SCARF's feature corruption, batched and seeded."""
from __future__ import annotations

import torch


class FeatureCorruption:
    """Replace a random share of each row's entries by the same column's entry in another row of the batch.

    Each entry (row i, column j) is corrupted with probability ``rate``; a corrupted entry takes column
    j's value from a row drawn uniformly from the batch (per entry), so every column keeps its marginal
    distribution (numbers, category codes and NaN alike) while the row's joint structure is broken.
    Works on the encoded rows of :func:`polyjepa.tabular.schema.encode` (any (B, F) float tensor).

    Args:
        rate: probability that an entry is replaced, in [0, 1] (SCARF: 0.6).
    Shapes: __call__(x (B, F), generator) -> (B, F).
    (Bahri et al., SCARF, ICLR 2022.)
    """

    def __init__(self, *, rate: float = 0.6):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"corruption rate must be in [0, 1], got {rate}")
        self.rate = float(rate)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"expected (batch, features) rows, got shape {tuple(x.shape)}")
        B, F = x.shape
        corrupt = (torch.rand(B, F, generator=generator) < self.rate).to(x.device)
        donor = torch.randint(0, B, (B, F), generator=generator).to(x.device)   # a row per entry
        return torch.where(corrupt, x.gather(0, donor), x)
