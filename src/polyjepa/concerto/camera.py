"""Cameras in torch: world-to-camera pose plus pinhole or orthographic intrinsics, and the projection of points."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..errors import UserError

KINDS = ("pinhole", "orthographic")


class Cameras(NamedTuple):
    """V cameras. A world point p has camera coordinates q = R p + t (x right, y down, z forward, the
    OpenCV convention); the camera sees q_z > near.

    rotation (V, 3, 3) R; translation (V, 3) t; intrinsics (V, 4) = (fx, fy, cx, cy) in pixels;
    size (H, W) of the images; kind 'pinhole' (u = fx q_x / q_z + cx) or 'orthographic' (u = fx q_x + cx);
    v likewise with fy, cy. Pixel (row, col) covers u in [col, col + 1) and v in [row, row + 1).
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    intrinsics: torch.Tensor
    size: tuple[int, int]
    kind: str = "pinhole"
    near: float = 1e-3

    @property
    def count(self) -> int:
        """V, the number of cameras."""
        return self.rotation.shape[0]

    def to(self, ref: torch.Tensor) -> "Cameras":
        """The same cameras with tensors on ``ref``'s device and dtype."""
        return self._replace(rotation=self.rotation.to(ref), translation=self.translation.to(ref),
                             intrinsics=self.intrinsics.to(ref))


def check_cameras(cams: Cameras) -> None:
    """Raise a one-line UserError unless ``cams`` is a well-formed set of cameras."""
    V = cams.rotation.shape[0] if cams.rotation.ndim == 3 else -1
    if V < 1 or cams.rotation.shape[1:] != (3, 3) or cams.translation.shape != (V, 3) or cams.intrinsics.shape != (V, 4):
        raise UserError(f"cameras need rotation (V, 3, 3), translation (V, 3) and intrinsics (V, 4) for V >= 1, got "
                        f"{tuple(cams.rotation.shape)}, {tuple(cams.translation.shape)}, {tuple(cams.intrinsics.shape)}")
    if cams.kind not in KINDS:
        raise UserError(f"camera kind {cams.kind!r} is unknown: use 'pinhole' or 'orthographic'")
    if len(cams.size) != 2 or min(cams.size) < 1:
        raise UserError(f"camera image size must be (height, width) >= 1, got {tuple(cams.size)}")
    if not all(torch.isfinite(t).all() for t in (cams.rotation, cams.translation, cams.intrinsics)):
        raise UserError("camera pose or intrinsics contain NaN or inf: give finite cameras")


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R (V, 3, 3), t (V, 3)) of cameras at ``eye`` (V, 3) looking at ``target`` (V, 3), ``up`` (3,) upwards
    in the image (the camera's y axis points down, so -y is as close to ``up`` as the view allows)."""
    z = torch.nn.functional.normalize(target - eye, dim=-1)                      # forward
    x = torch.nn.functional.normalize(torch.cross(z, up.expand_as(z), dim=-1), dim=-1)  # right
    y = torch.cross(z, x, dim=-1)                                                 # down
    R = torch.stack([x, y, z], dim=1)                                             # rows: camera axes in world
    return R, -(R @ eye.unsqueeze(-1)).squeeze(-1)


def orbit_cameras(*, azimuths: list[float], elevation: float = 30.0, distance: float = 3.0, size: int = 32,
                  fov: float = 50.0, kind: str = "pinhole", up_axis: int = 2) -> Cameras:
    """Cameras on a circle around the origin, looking at it, one per azimuth (degrees) at one elevation.

    ``fov`` is the full field of view in degrees (pinhole); an orthographic camera sees the square of
    side ``2 distance tan(fov / 2)`` at the origin, so both frame the same region at the target.
    """
    if kind not in KINDS:
        raise UserError(f"camera kind {kind!r} is unknown: use 'pinhole' or 'orthographic'")
    if not 0 < fov < 180 or distance <= 0 or size < 1:
        raise UserError(f"cameras need 0 < fov < 180, distance > 0 and size >= 1, got {fov}, {distance}, {size}")
    az = torch.tensor([math.radians(a) for a in azimuths], dtype=torch.float64)
    el = math.radians(elevation)
    a, b = [i for i in range(3) if i != up_axis]
    eye = torch.zeros(len(azimuths), 3, dtype=torch.float64)
    eye[:, a], eye[:, b] = distance * math.cos(el) * az.cos(), distance * math.cos(el) * az.sin()
    eye[:, up_axis] = distance * math.sin(el)
    up = torch.zeros(3, dtype=torch.float64)
    up[up_axis] = 1
    R, t = look_at(eye, torch.zeros_like(eye), up)
    half = math.tan(math.radians(fov) / 2)
    f = size / 2 / half if kind == "pinhole" else size / 2 / (distance * half)
    K = torch.tensor([[f, f, size / 2, size / 2]], dtype=torch.float64).expand(len(azimuths), 4)
    return Cameras(R.float(), t.float(), K.float().contiguous(), (size, size), kind)


def project(points: torch.Tensor, cams: Cameras) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points -> image coordinates, depth and whether each lands in front of the camera and inside the image.

    Shapes: points (B, P, 3) -> uv (B, V, P, 2) in pixels (u along columns, v along rows), depth (B, V, P)
    (camera z), inside (B, V, P) bool.
    """
    q = torch.einsum("vij,bpj->bvpi", cams.rotation, points) + cams.translation[None, :, None]  # (B, V, P, 3)
    depth = q[..., 2]
    fx, fy, cx, cy = (cams.intrinsics[:, i, None] for i in range(4))         # (V, 1) each
    front = depth > cams.near
    if cams.kind == "pinhole":
        z = torch.where(front, depth, torch.ones_like(depth))                 # no division by ~0 behind the camera
        u, v = fx * q[..., 0] / z + cx, fy * q[..., 1] / z + cy
    else:
        u, v = fx * q[..., 0] + cx, fy * q[..., 1] + cy
    H, W = cams.size
    inside = front & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    return torch.stack([u, v], -1), depth, inside
