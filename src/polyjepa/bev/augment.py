"""Random world augmentations of a LiDAR sweep before it is binned: a flip across the x axis, a rotation about
z, a global scaling (the KITTI pretraining defaults of OpenPCDet that AD-L-JEPA trains with: flip along x,
rotation in [-45, 45] degrees, scale in [0.95, 1.05]) and optional point dropout."""
from __future__ import annotations

import numpy as np

from ..errors import UserError


def augment_cloud(points: np.ndarray, rng: np.random.Generator, *, flip: bool = True, max_angle: float = 45.0,
                  scale: tuple[float, float] = (0.95, 1.05), dropout: float = 0.0) -> np.ndarray:
    """One random draw of the augmentations applied to (N, 3+) points (extra columns are kept as they are).

    Args:
        flip: with probability 1/2, y -> -y (a mirror across the x axis, the driving direction).
        max_angle: rotation about z by an angle uniform in [-max_angle, max_angle] degrees.
        scale: x, y, z multiplied by one factor uniform in [low, high].
        dropout: each point is dropped with this probability (at least one point is always kept).
    """
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"point dropout must be in [0, 1), got {dropout}")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise UserError(f"scale must be (low, high) with 0 < low <= high, got {tuple(scale)}")
    p = np.array(points, dtype=np.float32, copy=True)
    if flip and rng.random() < 0.5:
        p[:, 1] = -p[:, 1]
    a = np.deg2rad(rng.uniform(-max_angle, max_angle))
    c, s = np.cos(a), np.sin(a)
    x, y = p[:, 0].copy(), p[:, 1].copy()
    p[:, 0], p[:, 1] = c * x - s * y, s * x + c * y
    p[:, :3] *= rng.uniform(scale[0], scale[1])
    if dropout > 0:
        keep = rng.random(len(p)) >= dropout
        keep[rng.integers(len(p))] = True
        p = p[keep]
    return p
