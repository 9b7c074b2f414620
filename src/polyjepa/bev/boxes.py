"""KITTI 3-D boxes (camera frame) against velodyne points, and per-BEV-cell object labels."""
from __future__ import annotations

import numpy as np

from .grid import BEVGrid


def velo_to_rect(points: np.ndarray, r0_rect: np.ndarray, tr_velo_to_cam: np.ndarray) -> np.ndarray:
    """(N, 3+) velodyne x, y, z -> (N, 3) rectified camera coordinates: R0_rect @ (Tr_velo_to_cam @ [x y z 1])."""
    xyz1 = np.concatenate([points[:, :3].astype(np.float64), np.ones((len(points), 1))], 1)
    return (xyz1 @ tr_velo_to_cam.astype(np.float64).T) @ r0_rect.astype(np.float64).T


def points_in_boxes(rect: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) bool: which rectified-camera points lie in any of the KITTI boxes.

    boxes: (K, 7) rows of h, w, l, x, y, z, rotation_y (KITTI label fields 8-14): (x, y, z) is the bottom centre,
    the box spans length l along its heading, width w across it and height h upwards (camera y points down).
    """
    inside = np.zeros(len(rect), bool)
    for h, w, l, x, y, z, ry in boxes:
        d = rect - np.array([x, y, z])
        c, s = np.cos(ry), np.sin(ry)
        # coordinates in the box frame: rotate by -ry about the camera's y axis
        u = c * d[:, 0] - s * d[:, 2]
        v = s * d[:, 0] + c * d[:, 2]
        inside |= (np.abs(u) <= l / 2) & (np.abs(v) <= w / 2) & (d[:, 1] <= 0) & (d[:, 1] >= -h)
    return inside


def cell_labels(points: np.ndarray, inside: np.ndarray, grid: BEVGrid, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(occupied, positive): (rows / stride, cols / stride) bool maps of the cells that hold any point of the grid
    and of those that hold a point inside a box."""
    from .grid import bev_counts

    rows, cols = grid.shape
    occ = bev_counts(points, grid).numpy() > 0
    pos = bev_counts(points[inside], grid).numpy() > 0 if inside.any() else np.zeros((rows, cols), bool)

    def coarse(m: np.ndarray) -> np.ndarray:
        return m.reshape(rows // stride, stride, cols // stride, stride).any((1, 3))

    return coarse(occ), coarse(pos)
