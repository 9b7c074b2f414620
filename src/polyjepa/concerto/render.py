"""A z-buffer point renderer in torch (depth and silhouette images) and the point-to-patch correspondence.

Everything is vectorised over clouds, cameras and points: a render is one ``scatter_reduce`` (minimum
depth per pixel), the correspondence one ``scatter_add`` (visible points per image patch and point group).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import UserError
from .camera import Cameras, check_cameras, project


class Render(NamedTuple):
    """A render of B clouds by V cameras.

    depth (B, V, H, W): the nearest camera depth per pixel, inf where nothing is drawn (the z-buffer);
    uv (B, V, P, 2), point_depth (B, V, P), inside (B, V, P): each point's projection (see ``project``);
    pixel (B, V, P): the flat index row * W + col of the pixel each point lands on, -1 outside the image.
    """

    depth: torch.Tensor
    uv: torch.Tensor
    point_depth: torch.Tensor
    inside: torch.Tensor
    pixel: torch.Tensor

    @property
    def silhouette(self) -> torch.Tensor:
        """(B, V, H, W) bool: pixels where some point is drawn."""
        return torch.isfinite(self.depth)


def check_points(points: torch.Tensor, what: str = "point clouds") -> None:
    """Raise a one-line UserError unless ``points`` is (B, P, 3) finite floats with P >= 1."""
    if points.ndim != 3 or points.shape[-1] != 3:
        raise UserError(f"{what} have shape {tuple(points.shape)}: a render needs (clouds, points, 3) xyz coordinates")
    if points.shape[0] == 0 or points.shape[1] == 0:
        raise UserError(f"{what} are empty (shape {tuple(points.shape)}): a render needs at least one point per cloud")
    if not torch.isfinite(points).all():
        bad = int((~torch.isfinite(points)).flatten(1).any(1).sum())
        raise UserError(f"{what} contain NaN or inf coordinates in {bad} clouds: remove or repair them before rendering")


def pixel_of(uv: torch.Tensor, inside: torch.Tensor, width: int) -> torch.Tensor:
    """(..., 2) pixel coordinates and (...) inside flags -> (...) flat pixel index row * width + col, -1 outside."""
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    return torch.where(inside, row * width + col, torch.full_like(col, -1))


def render_points(points: torch.Tensor, cams: Cameras, *, splat: int = 0) -> Render:
    """Z-buffer render of point clouds: each pixel keeps the depth of the nearest point drawn on it.

    Args:
        points: (B, P, 3) world coordinates; checked (shape, at least one point, finite).
        cams: V cameras (see :class:`Cameras`).
        splat: each point is drawn on the (2 splat + 1)^2 pixels around the one it projects to (0: that
            pixel only), so that a sparse cloud draws a closed surface.
    Raises a UserError when some cloud projects into none of the images (every camera looks away from it).
    """
    check_points(points)
    check_cameras(cams)
    if splat < 0:
        raise UserError(f"splat must be >= 0 pixels, got {splat}")
    cams = cams.to(points)
    B, P, _ = points.shape
    V, (H, W) = cams.count, cams.size
    uv, depth, inside = project(points, cams)
    seen = inside.flatten(1).any(1)
    if not seen.all():
        raise UserError(f"{int((~seen).sum())} of {B} clouds project into none of the {V} images (behind or beside "
                        f"every camera): point the cameras at the clouds (centre them, or move the cameras)")
    pixel = pixel_of(uv, inside, W)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    base = torch.arange(B * V, device=points.device).view(B, V, 1) * (H * W)
    idx, vals = [], []
    for dr in range(-splat, splat + 1):
        for dc in range(-splat, splat + 1):
            r, c = row + dr, col + dc
            ok = inside & (r >= 0) & (r < H) & (c >= 0) & (c < W)
            idx.append(torch.where(ok, base + r * W + c, torch.full_like(r, B * V * H * W)))  # dump slot for misses
            vals.append(depth)
    buf = torch.full((B * V * H * W + 1,), float("inf"), dtype=points.dtype, device=points.device)
    buf.scatter_reduce_(0, torch.stack(idx).flatten(), torch.stack(vals).flatten(), reduce="amin")
    return Render(buf[:-1].view(B, V, H, W), uv, depth, inside, pixel)


def voxel_points(grids: torch.Tensor, *, samples: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Occupied voxels of (B, D, H, W) grids -> (points (B, P, 3), mask (B, P)) of ``samples``^3 points per voxel
    spread evenly inside it, in the cube [-1, 1]^3 (axis i of the grid is coordinate i); clouds with fewer
    voxels are padded with copies of their first point (mask False). An empty grid is a UserError."""
    if grids.ndim != 4:
        raise UserError(f"voxel grids have shape {tuple(grids.shape)}: they must be (B, D, H, W)")
    occ = grids > 0
    counts = occ.flatten(1).sum(1)
    if (counts == 0).any():
        raise UserError(f"{int((counts == 0).sum())} voxel grids are empty: there is nothing to render; drop them")
    n = int(counts.max())
    size = torch.tensor(grids.shape[1:], dtype=torch.float32, device=grids.device)
    offs = (torch.arange(samples, dtype=torch.float32, device=grids.device) + 0.5) / samples
    sub = torch.stack(torch.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3)  # (s^3, 3)
    pts, mask = [], []
    for g, c in zip(occ, counts):
        vox = torch.nonzero(g).float()                                          # (n_i, 3)
        pad = vox[:1].expand(n - len(vox), 3)
        p = torch.cat([vox, pad])[:, None] + sub                                # (n, s^3, 3) in voxel units
        pts.append((p / size * 2 - 1).reshape(-1, 3))
        mask.append((torch.arange(n, device=grids.device) < c).repeat_interleave(len(sub)))
    return torch.stack(pts), torch.stack(mask)


def render_voxels(grids: torch.Tensor, cams: Cameras, *, samples: int = 2, splat: int = 0) -> Render:
    """Z-buffer render of voxel grids: the points of :func:`voxel_points` drawn by :func:`render_points`
    (padding copies the first point, which changes no pixel's minimum)."""
    points, _ = voxel_points(grids, samples=samples)
    return render_points(points, cams, splat=splat)


def depth_image(depth: torch.Tensor, *, near: float, far: float, silhouette: bool = False) -> torch.Tensor:
    """(B, V, H, W) z-buffer -> (B, V, C, H, W) network input: (far - z) / (far - near) clipped to [0, 1] where
    drawn, 0 where empty (near things bright); with ``silhouette`` a second channel of 1 where drawn."""
    drawn = torch.isfinite(depth)
    img = torch.where(drawn, ((far - depth) / (far - near)).clamp(0, 1), torch.zeros_like(depth)).unsqueeze(2)
    return torch.cat([img, drawn.unsqueeze(2).to(img)], 2) if silhouette else img


def visible(render: Render, *, tolerance: float) -> torch.Tensor:
    """(B, V, P) bool: the point is inside the image and within ``tolerance`` (world units) of the nearest
    depth drawn on its pixel, i.e. not hidden behind another surface."""
    B, V, H, W = render.depth.shape
    zbuf = render.depth.flatten(2)                                              # (B, V, H*W)
    at = zbuf.gather(2, render.pixel.clamp(min=0))
    return render.inside & (render.point_depth <= at + tolerance)


def visible_patches(points: torch.Tensor, render: Render, cams: Cameras, *, patch: int,
                    tolerance: float) -> torch.Tensor:
    """Which image patch each of some points falls in, if it is visible in ``render`` (drawn from the
    same cameras), else -1.

    Shapes: points (B, Q, 3) (any points: e.g. those of the point groups) -> (B, V, Q) patch index
    row * (W / patch) + col within each image.
    """
    check_points(points, "points to match to patches")
    B, V, H, W = render.depth.shape
    if H % patch or W % patch:
        raise UserError(f"images of {H}x{W} pixels do not split into patches of {patch}: use a patch size that "
                        f"divides both")
    uv, depth, inside = project(points, cams.to(points))
    pixel = pixel_of(uv, inside, W)
    at = render.depth.flatten(2).gather(2, pixel.clamp(min=0))
    seen = inside & (depth <= at + tolerance)
    prow, pcol = uv[..., 1].floor().long() // patch, uv[..., 0].floor().long() // patch
    return torch.where(seen, prow * (W // patch) + pcol, torch.full_like(prow, -1))


def patch_group_weights(patch_idx: torch.Tensor, group_idx: torch.Tensor, *, n_patches: int,
                        n_groups: int) -> torch.Tensor:
    """How many visible points of each point group fall in each image patch.

    Args:
        patch_idx: (B, V, Q) patch of each point in each view, -1 where not visible (see :func:`visible_patches`).
        group_idx: (B, Q) or (Q,) the point group (token) each point belongs to, in [0, n_groups).
    Returns: (B, V * n_patches, n_groups) counts, view-major (row v * n_patches + p).
    """
    B, V, Q = patch_idx.shape
    g = group_idx.expand(B, Q).unsqueeze(1).expand(B, V, Q)
    b = torch.arange(B, device=patch_idx.device).view(B, 1, 1)
    v = torch.arange(V, device=patch_idx.device).view(1, V, 1)
    ok = patch_idx >= 0
    flat = ((b * V + v) * n_patches + patch_idx.clamp(min=0)) * n_groups + g
    out = torch.zeros(B * V * n_patches * n_groups, device=patch_idx.device)
    out.scatter_add_(0, flat[ok], torch.ones(int(ok.sum()), device=patch_idx.device))
    return out.view(B, V * n_patches, n_groups)


def pool_patches(features: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean feature of the visible points in each image patch, every point carrying its group's feature.

    Shapes: features (B, G, D) per group, weights (B, R, G) counts (see :func:`patch_group_weights`) ->
    pooled (B, R, D) (zeros where no point is seen), hit (B, R) bool (some point is seen in the patch).
    """
    total = weights.sum(-1)                                                     # (B, R)
    pooled = (weights.to(features) @ features) / total.clamp(min=1).unsqueeze(-1).to(features)
    return pooled, total > 0
