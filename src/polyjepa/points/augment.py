"""Point-cloud augmentations in torch, batched and seeded: scale, rotation about the up axis, translation."""
from __future__ import annotations

import math

import torch


class PointAugment:
    """Random per-cloud scale (per axis), rotation about the up axis and translation.

    Args:
        scale: range of the per-axis scale factor (Point-JEPA: 0.8-1.2); None: no scaling.
        rotate: rotate by a uniform angle about ``up_axis``; max_angle: its range in degrees (+-).
        translate: per-axis shift drawn from U(-translate, translate) (Point-JEPA: 0.2); 0: none.
        up_axis: 0, 1 or 2 (2: z is up, as in the bundled ModelNet10 voxels).
    Shapes: __call__(x (B, P, 3), generator) -> (B, P, 3).
    """

    def __init__(self, *, scale: tuple[float, float] | None = (0.8, 1.2), rotate: bool = True, max_angle: float = 180.0,
                 translate: float = 0.2, up_axis: int = 2):
        if scale is not None and not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < lo <= hi, got {tuple(scale)}")
        if up_axis not in (0, 1, 2):
            raise ValueError(f"up_axis must be 0, 1 or 2, got {up_axis}")
        self.scale = tuple(scale) if scale is not None else None
        self.rotate, self.max_angle, self.translate, self.up_axis = rotate, float(max_angle), float(translate), up_axis

    def _draw(self, x: torch.Tensor, generator: torch.Generator):
        """(rotation (B, 3, 3) | None, scale (B, 3) | None, shift (B, 3) | None) for a batch like ``x``."""
        B = x.shape[0]
        u = torch.rand(B, 7, generator=generator).to(x)
        rot = scale = shift = None
        if self.rotate:
            angle = (2 * u[:, 0] - 1) * math.radians(self.max_angle)
            c, s = angle.cos(), angle.sin()
            a, b = [i for i in range(3) if i != self.up_axis]
            rot = torch.zeros(B, 3, 3, dtype=x.dtype, device=x.device)
            rot[:, self.up_axis, self.up_axis] = 1
            rot[:, a, a], rot[:, a, b], rot[:, b, a], rot[:, b, b] = c, -s, s, c
        if self.scale is not None:
            scale = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 1:4]
        if self.translate:
            shift = self.translate * (2 * u[:, 4:7] - 1)
        return rot, scale, shift

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rot, scale, shift = self._draw(x, generator)
        if rot is not None:
            x = x @ rot.transpose(1, 2)                                      # rotate each point: R p
        if scale is not None:
            x = x * scale.unsqueeze(1)
        if shift is not None:
            x = x + shift.unsqueeze(1)
        return x

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine map ``__call__`` would apply, drawn the same way: (A (B, 3, 3), t (B, 3)) with
        ``__call__(x) = x @ A^T + t``; for moving patch centres (A p + t) and re-centred patch points (A p)
        with one draw."""
        rot, scale, shift = self._draw(x, generator)
        B = x.shape[0]
        A = rot if rot is not None else torch.eye(3, dtype=x.dtype, device=x.device).expand(B, 3, 3)
        if scale is not None:
            A = scale.unsqueeze(2) * A                                       # diag(s) R
        return A, (shift if shift is not None else torch.zeros(B, 3, dtype=x.dtype, device=x.device))
