"""Bird's-eye-view grids of LiDAR points, and patch tokens of them for the core JEPA parts."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .io import check_cloud


@dataclass(frozen=True)
class BEVGrid:
    """A (rows, cols) grid over x in ``x_range`` (rows) and y in ``y_range`` (columns), cells of ``cell`` metres;
    points outside the ranges or outside ``z_range`` are left out (KITTI's front view: x 0-70.4, y -40-40)."""

    x_range: tuple[float, float] = (0.0, 70.4)
    y_range: tuple[float, float] = (-40.0, 40.0)
    z_range: tuple[float, float] = (-3.0, 1.0)
    cell: float = 0.8

    def __post_init__(self):
        if not self.cell > 0 or self.x_range[1] <= self.x_range[0] or self.y_range[1] <= self.y_range[0] \
                or self.z_range[1] <= self.z_range[0]:
            raise UserError("BEV grid: cell must be > 0 and every range (low, high) with high > low")

    @property
    def shape(self) -> tuple[int, int]:
        return (int(round((self.x_range[1] - self.x_range[0]) / self.cell)),
                int(round((self.y_range[1] - self.y_range[0]) / self.cell)))


CHANNELS = ("log1p count", "occupied", "max height", "mean height", "mean intensity")


def bev_features(points: np.ndarray | torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    """(5, rows, cols) float32 BEV features of one cloud (N, 3+): log(1 + count), occupancy, the maximum and
    mean height above ``z_range[0]`` over its span, and the mean intensity (0 without a fourth column); empty
    cells are 0 in every channel."""
    pts = torch.as_tensor(check_cloud(np.asarray(points), "BEV input"))
    counts, zmax, zsum, isum = _accumulate(pts, grid)
    occupied = counts > 0
    safe = counts.clamp_min(1)
    return torch.stack([torch.log1p(counts), occupied.float(), zmax, zsum / safe, isum / safe])


def bev_counts(points: np.ndarray | torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    """(rows, cols) number of points in each cell."""
    return _accumulate(torch.as_tensor(check_cloud(np.asarray(points), "BEV input")), grid)[0]


def _accumulate(pts: torch.Tensor, grid: BEVGrid):
    rows, cols = grid.shape
    x, y, z = pts[:, 0].double(), pts[:, 1].double(), pts[:, 2].double()
    keep = (x >= grid.x_range[0]) & (x < grid.x_range[1]) & (y >= grid.y_range[0]) & (y < grid.y_range[1]) \
        & (z >= grid.z_range[0]) & (z < grid.z_range[1])
    i = ((x[keep] - grid.x_range[0]) / grid.cell).floor().long().clamp(0, rows - 1)
    j = ((y[keep] - grid.y_range[0]) / grid.cell).floor().long().clamp(0, cols - 1)
    flat = i * cols + j
    h = ((z[keep] - grid.z_range[0]) / (grid.z_range[1] - grid.z_range[0])).float()
    inten = pts[keep, 3].float() if pts.shape[1] > 3 else torch.zeros_like(h)
    n = rows * cols
    counts = torch.zeros(n).index_add_(0, flat, torch.ones_like(h))
    zmax = torch.zeros(n).scatter_reduce_(0, flat, h, reduce="amax", include_self=True)
    zsum = torch.zeros(n).index_add_(0, flat, h)
    isum = torch.zeros(n).index_add_(0, flat, inten)
    return tuple(t.reshape(rows, cols) for t in (counts, zmax, zsum, isum))


class BEVTokenizer(nn.Module):
    """Clouds -> BEV feature grids -> (patch x patch)-cell tokens with 2-D positions, for the core maskers,
    encoders and predictors. forward(list of (N_i, 3+) clouds) -> (B, rows/p * cols/p, dim); ``grid`` is the
    token grid."""

    def __init__(self, *, grid: BEVGrid = BEVGrid(), patch_size: int = 4, dim: int = 128):
        super().__init__()
        from ..tokenizers.patch2d import PatchEmbed2D

        rows, cols = grid.shape
        if rows % patch_size or cols % patch_size:
            raise UserError(f"BEV grid {rows}x{cols} is not a multiple of patch size {patch_size}: change the ranges, "
                            f"the cell or the patch")
        self.bev = grid
        self.patches = PatchEmbed2D(image_size=(rows, cols), patch_size=patch_size, in_channels=len(CHANNELS), dim=dim)
        self.grid = (rows // patch_size, cols // patch_size)

    def forward(self, clouds) -> torch.Tensor:
        if len(clouds) == 0:
            raise UserError("BEVTokenizer got no clouds: pass a non-empty list of (N, 3+) point arrays")
        x = torch.stack([bev_features(c, self.bev) for c in clouds]).to(self.patches.proj.weight.dtype)
        return self.patches(x)
