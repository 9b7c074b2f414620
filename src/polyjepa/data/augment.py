"""Image augmentations in torch, batched and seeded."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample each image of ``x`` (B, C, H, W) through its affine map ``theta`` (B, 2, 3), output -> input
    coordinates in [-1, 1]; bilinear, edges extended."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class RandomResizedCrop:
    """Crop a random region of each image and resize it back to the full size (bilinear).

    Args:
        scale: range of the crop's area as a fraction of the image (I-JEPA: 0.3-1.0).
        ratio: range of the crop's aspect w/h, sampled log-uniformly.
        flip: also flip horizontally with probability 0.5.
    Shapes:
        __call__(x (B, C, H, W), generator) -> (B, C, H, W); one affine grid for the whole batch.
    """

    def __init__(self, *, scale: tuple[float, float] = (0.3, 1.0), ratio: tuple[float, float] = (0.75, 4 / 3),
                 flip: bool = False):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"crop scale must satisfy 0 < lo <= hi <= 1, got {scale}")
        self.scale, self.ratio, self.flip = tuple(scale), tuple(ratio), flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        B = x.shape[0]
        u = torch.rand(B, 4, generator=generator)
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0]
        log_r = math.log(self.ratio[0]) + (math.log(self.ratio[1]) - math.log(self.ratio[0])) * u[:, 1]
        r = log_r.exp()
        # Crop width/height as fractions of the image side, clamped inside the image.
        w = (area * r).sqrt().clamp(max=1.0)
        h = (area / r).sqrt().clamp(max=1.0)
        cx = (1 - w) * (2 * u[:, 2] - 1)  # centre in [-1, 1] coordinates, crop stays inside
        cy = (1 - h) * (2 * u[:, 3] - 1)
        sx = w
        if self.flip:
            sx = torch.where(torch.rand(B, generator=generator) < 0.5, -w, w)
        theta = torch.zeros(B, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
        return warp(x, theta)


class RandomAffine:
    """Rotate, scale and shift each image by its own random amount (bilinear, edges extended).

    Args:
        rotate: largest rotation in degrees (drawn uniformly in [-rotate, rotate]).
        scale: largest relative zoom (the image is magnified by a factor in [1 - scale, 1 + scale]).
        translate: largest shift along each axis, as a fraction of the image's half-side
            (0.25 on a 28-pixel image: up to 3.5 pixels).
    Shapes:
        __call__(x (B, C, H, W), generator) -> (B, C, H, W); all ranges 0 give ``x`` back unchanged.
    """

    def __init__(self, *, rotate: float = 15.0, scale: float = 0.15, translate: float = 0.2):
        if rotate < 0 or not 0 <= scale < 1 or translate < 0:
            raise ValueError(f"affine ranges must satisfy rotate >= 0, 0 <= scale < 1, translate >= 0; got "
                             f"rotate={rotate}, scale={scale}, translate={translate}")
        self.rotate, self.scale, self.translate = float(rotate), float(scale), float(translate)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-sample parameters (each (B,)): ``angle`` (radians), ``zoom``, ``tx``, ``ty`` (see ``affine_theta``)."""
        return self.params(torch.rand(batch, 4, generator=generator) * 2 - 1)

    def params(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameters that the uniform draws ``u`` (B, 4) in [-1, 1] stand for, scaled by the ranges."""
        return {"angle": u[:, 0] * math.radians(self.rotate), "zoom": 1 + u[:, 1] * self.scale,
                "tx": u[:, 2] * self.translate, "ty": u[:, 3] * self.translate}

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return warp(x, affine_theta(**self.sample(x.shape[0], generator)))


def affine_theta(angle: torch.Tensor, zoom: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) sampling map of a rotation by ``angle`` (radians), a zoom and a shift, for :func:`warp`.

    In [-1, 1] image coordinates (x to the right, y down), the output at p shows the input at
    ``R(angle) p / zoom + (tx, ty)``, R = [[cos, -sin], [sin, cos]]: a point q of the input moves to
    ``zoom * R(angle)^T (q - (tx, ty))``. So ``zoom`` > 1 magnifies, a positive ``tx`` moves the content
    left, and a positive angle turns it counter-clockwise as seen on screen (y down).
    """
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
