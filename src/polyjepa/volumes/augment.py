"""Random 3-D views of volumes for contrastive learning, vectorised over the batch."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import UserError


def warp(x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
         mirror: torch.Tensor) -> torch.Tensor:
    """Resample each volume under a rotation by ``angle`` (B,) radians about the up axis (the last one, W),
    per-axis scaling ``scale`` (B, 3) in (W, H, D) order, a shift (B, 3) in half-widths, and a mirror of the D
    axis where ``mirror`` (B,) is True; one trilinear ``grid_sample`` for the batch. x: (B, C, D, H, W)."""
    c, si = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    # grid coordinates are (x: W, y: H, z: D); the rotation acts in the (y, z) plane
    rot = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, c, -si], -1),
                       torch.stack([zero, si, c], -1)], -2)                                       # (B, 3, 3)
    lin = rot / scale[:, None, :]
    lin = lin * torch.stack([one, one, torch.where(mirror, -one, one)], -1)[:, None, :]
    theta = torch.cat([lin, shift[:, :, None]], dim=2)                                            # (B, 3, 4)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass
class VolumeAugment:
    """One random similarity-like warp per volume, then noise and a cut-out cube.

    A rotation by ``U(-rotate, rotate)`` degrees about the up axis (the last one: W), per-axis scaling in
    ``scale``, a shift of up to ``translate`` of the half-width, a mirror across the first axis with
    probability ``flip``, additive Gaussian noise of std ``noise``, and a zeroed cube of side ``cutout`` of the
    volume with probability 0.5. The warp is one trilinear ``grid_sample`` for the whole batch.
    """

    rotate: float = 180.0
    scale: tuple[float, float] = (0.8, 1.2)
    translate: float = 0.1
    flip: float = 0.5
    noise: float = 0.05
    cutout: float = 0.25

    def __post_init__(self):
        if not (0 < self.scale[0] <= self.scale[1]):
            raise UserError(f"augment.scale={list(self.scale)} must be a range 0 < low <= high")
        if not (0 <= self.flip <= 1 and 0 <= self.cutout < 1 and self.noise >= 0 and self.translate >= 0):
            raise UserError("augment.flip must be in [0, 1], augment.cutout in [0, 1), noise and translate >= 0")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """x: (B, C, D, H, W) -> (B, C, D, H, W)."""
        b = x.shape[0]

        def u(*shape):
            return torch.rand(*shape, generator=generator).to(x.device, x.dtype)

        angle = (2 * u(b) - 1) * math.radians(self.rotate)
        scale = self.scale[0] + (self.scale[1] - self.scale[0]) * u(b, 3)
        mirror = u(b) < self.flip
        out = warp(x, angle, scale, (2 * u(b, 3) - 1) * self.translate, mirror)
        if self.noise > 0:
            out = out + self.noise * torch.randn(out.shape, generator=generator).to(x.device, x.dtype)
        if self.cutout > 0:
            d = x.shape[2:]
            side = [max(1, int(round(self.cutout * n))) for n in d]
            start = [(u(b) * (n - k + 1)).long().clamp(max=n - k) for n, k in zip(d, side)]
            keep = u(b) >= 0.5
            masks = []
            for axis, (n, k, st) in enumerate(zip(d, side, start)):
                idx = torch.arange(n, device=x.device)
                masks.append((idx >= st[:, None]) & (idx < st[:, None] + k))                       # (B, n)
            cube = masks[0][:, :, None, None] & masks[1][:, None, :, None] & masks[2][:, None, None, :]
            cube = cube & ~keep[:, None, None, None]
            out = out.masked_fill(cube[:, None], 0.0)
        return out
