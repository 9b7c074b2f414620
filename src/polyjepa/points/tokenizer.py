"""Point-group tokenizer: FPS centres, kNN patches, a mini-PointNet per patch, an MLP on centres."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .geometry import check_clouds, farthest_point_sample, gather_points, knn
from .sequencer import nearest_neighbour_order


class PointGroups(NamedTuple):
    """Patches of a batch of clouds, in sequencer order.

    centres: (B, G, 3) patch centres; patches: (B, G, K, 3) neighbour coordinates relative to their centre.
    """

    centres: torch.Tensor
    patches: torch.Tensor


def group_points(x: torch.Tensor, n_groups: int, group_size: int, *, sequence: bool = True) -> PointGroups:
    """FPS ``n_groups`` centres, their ``group_size`` nearest points, ordered by the sequencer.

    Args:
        x: (B, P, 3) clouds, P >= max(n_groups, group_size); checked (shape, count, finite).
        sequence: order the groups with :func:`nearest_neighbour_order` (else FPS order).
    """
    check_clouds(x, min_points=max(n_groups, group_size))
    centres = gather_points(x, farthest_point_sample(x, n_groups))        # (B, G, 3)
    if sequence:
        centres = gather_points(centres, nearest_neighbour_order(centres))
    patches = gather_points(x, knn(centres, x, group_size)) - centres.unsqueeze(2)  # (B, G, K, 3)
    return PointGroups(centres, patches)


class MiniPointNet(nn.Module):
    """Per-patch PointNet (Point-MAE's patch encoder, with LayerNorm instead of BatchNorm).

    point MLP 3 -> h1 -> h2, max over the patch, concatenated back to every point, MLP 2*h2 -> h3 -> D,
    max over the patch. Max pooling makes it invariant to the order of points within a patch.
    Shapes: (B, G, K, 3) -> (B, G, D).
    """

    def __init__(self, dim: int, widths: tuple[int, int, int] = (128, 256, 512)):
        super().__init__()
        h1, h2, h3 = widths
        self.first = nn.Sequential(nn.Linear(3, h1), nn.LayerNorm(h1), nn.GELU(), nn.Linear(h1, h2))
        self.second = nn.Sequential(nn.Linear(2 * h2, h3), nn.LayerNorm(h3), nn.GELU(), nn.Linear(h3, dim))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        f = self.first(patches)                                              # (B, G, K, h2)
        g = f.amax(2, keepdim=True).expand_as(f)
        return self.second(torch.cat([g, f], dim=-1)).amax(2)                # (B, G, D)


def centre_mlp(dim: int, hidden: int = 128) -> nn.Module:
    """Positional embedding of patch centres: Linear(3, hidden) - GELU - Linear(hidden, dim)."""
    return nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, dim))


class PointGroupTokenizer(nn.Module):
    """Point cloud -> sequenced patch tokens with centre positions added.

    Args:
        dim: token width D (injected: the encoder's width).
        n_groups: patches G per cloud (Point-JEPA: 64); group_size: points K per patch (32).
        widths: the mini-PointNet's hidden widths; pos_hidden: the centre MLP's hidden width.
        sequence: order tokens with Point-JEPA's sequencer (index proximity = spatial proximity).
    Shapes:
        forward(x (B, P, 3) | PointGroups) -> (B, G, D); ``group(x)`` -> PointGroups (no parameters,
        so the data loader can do it once per batch for both the online and the target encoder).
    The result does not depend on the order of the points in a cloud (tested).
    """

    def __init__(self, *, dim: int, n_groups: int = 64, group_size: int = 32,
                 widths: tuple[int, int, int] = (128, 256, 512), pos_hidden: int = 128, sequence: bool = True):
        super().__init__()
        if n_groups < 2 or group_size < 1:
            raise ValueError(f"need n_groups >= 2 and group_size >= 1, got {n_groups} and {group_size}")
        self.n_groups, self.group_size, self.sequence = n_groups, group_size, sequence
        self.grid = (n_groups,)
        self.patch_embed = MiniPointNet(dim, tuple(widths))
        self.pos_embed = centre_mlp(dim, pos_hidden)

    def group(self, x: torch.Tensor) -> PointGroups:
        return group_points(x, self.n_groups, self.group_size, sequence=self.sequence)

    def forward(self, x: torch.Tensor | PointGroups) -> torch.Tensor:
        groups = x if isinstance(x, PointGroups) else self.group(x)
        return self.patch_embed(groups.patches) + self.pos_embed(groups.centres)
