"""Readers for LiDAR sweeps: KITTI velodyne ``.bin`` (x, y, z, reflectance as float32), nuScenes ``.pcd.bin``
(x, y, z, intensity, ring), and the 12-frame KITTI ``.npz`` of the shared data."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import read_npz
from ..errors import UserError

RECORD_FIELDS = {"kitti": 4, "nuscenes": 5}


def check_cloud(points: np.ndarray, what: str) -> np.ndarray:
    """(N, >=3) finite float32 points with at least one point, else a one-line UserError."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise UserError(f"{what}: LiDAR points must be an (N, 3+) array of x, y, z[, intensity], got {points.shape}")
    if len(points) == 0:
        raise UserError(f"{what}: the cloud is empty (0 points): check the file or the frame index")
    points = points.astype(np.float32, copy=False)
    bad = ~np.isfinite(points[:, :3]).all(1)
    if bad.any():
        raise UserError(f"{what}: {int(bad.sum())} of {len(points)} points have NaN or inf coordinates: drop them "
                        f"(points[np.isfinite(points[:, :3]).all(1)]) before building the BEV grid")
    return points


def read_lidar_bin(path: str | Path, *, layout: str = "kitti") -> np.ndarray:
    """A sweep as (N, F) float32: F = 4 for KITTI (x, y, z, reflectance), 5 for nuScenes (x, y, z, intensity,
    ring)."""
    if layout not in RECORD_FIELDS:
        raise UserError(f"unknown LiDAR layout {layout!r}: choose kitti (4 floats a point) or nuscenes (5)")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"LiDAR file {path} not found")
    fields = RECORD_FIELDS[layout]
    size = path.stat().st_size
    record = 4 * fields
    if size % record:
        raise UserError(f"{path} has {size} bytes, not a whole number of {record}-byte {layout} records ({fields} "
                        f"float32 each): pass layout={'nuscenes' if layout == 'kitti' else 'kitti'} if it is the "
                        f"other format, or re-export the file")
    return check_cloud(np.fromfile(path, dtype=np.float32).reshape(-1, fields), str(path))


def load_kitti_frames(path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The 12-frame KITTI ``.npz``: a list of (N_i, 4) float32 clouds in metres (x, y, z, reflectance in [0, 1])
    and the frames' split names."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"KITTI frames file {path} not found: pass kitti_velodyne_12frames.npz")
    z = read_npz(path)
    missing = {"xyz_mm", "intensity_x100", "frame_ptr"} - set(z.files)
    if missing:
        raise UserError(f"{path} lacks {sorted(missing)}: expected the KITTI frames layout (xyz_mm, intensity_x100, "
                        f"frame_ptr)")
    xyz = z["xyz_mm"].astype(np.float32) / 1000.0
    inten = z["intensity_x100"].astype(np.float32) / 100.0
    ptr = z["frame_ptr"]
    frames = [check_cloud(np.concatenate([xyz[a:b], inten[a:b, None]], 1), f"{path.name} frame {i}")
              for i, (a, b) in enumerate(zip(ptr[:-1], ptr[1:]))]
    split = z["frame_split"] if "frame_split" in z.files else np.array(["training"] * len(frames))
    return frames, split
