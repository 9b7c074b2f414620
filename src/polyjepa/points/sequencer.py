"""Point-JEPA's sequencer: order patch centres so that neighbours in the sequence are neighbours in space."""
from __future__ import annotations

import torch


def nearest_neighbour_order(centres: torch.Tensor) -> torch.Tensor:
    """A permutation (B, G) of the centres: greedy iterative nearest neighbour.

    Starts at the centre with the smallest coordinate sum, then repeatedly moves to the closest
    centre not yet visited (Saito et al., Point-JEPA, 2024: ``iterative_nearest_min_start``).
    Args:
        centres: (B, G, 3).
    """
    B, G, _ = centres.shape
    rows = torch.arange(B, device=centres.device)
    order = torch.empty(B, G, dtype=torch.long, device=centres.device)
    visited = torch.zeros(B, G, dtype=torch.bool, device=centres.device)
    cur = centres.sum(-1).argmin(1)
    for i in range(G):
        order[:, i] = cur
        visited[rows, cur] = True
        if i + 1 < G:
            d = (centres - centres[rows, cur].unsqueeze(1)).pow(2).sum(-1)
            cur = d.masked_fill(visited, float("inf")).argmin(1)
    return order
