"""LiDAR sweeps as bird's-eye-view feature maps for training: each sweep drawn ``copies`` times through the
random world augmentations, then binned into a (5, rows, cols) grid (see :func:`~polyjepa.bev.grid.bev_features`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded
from ..data.sources import read_npz
from ..errors import UserError
from .augment import augment_cloud
from .grid import BEVGrid, bev_features
from .io import check_cloud, load_kitti_frames, read_lidar_bin

SPLITS = ("all", "training", "testing")


def read_sweeps(source: str | Path, *, split: str = "all", layout: str | None = None) -> tuple[list[np.ndarray], list[str]]:
    """(clouds (N_i, 4+) float32, names) from a KITTI-layout .npz (``frame_ptr``; ``split`` picks its frames by
    ``frame_split``), an .npz with ``points`` (one sweep, e.g. nuScenes), a .bin sweep, or a folder of .bin
    sweeps. ``layout`` (kitti: 4 floats a point, nuscenes: 5) defaults to nuscenes for ``.pcd.bin`` names."""
    if split not in SPLITS:
        raise UserError(f"data.split={split!r}: choose one of {', '.join(SPLITS)}")
    path = Path(source)
    if not path.exists():
        raise UserError(f"LiDAR data {source!r} does not exist: pass a KITTI-frames .npz, a .bin sweep or a folder "
                        f"of .bin sweeps")

    def bin_layout(p: Path) -> str:
        return layout or ("nuscenes" if p.name.endswith(".pcd.bin") else "kitti")

    if path.is_dir():
        files = sorted(path.rglob("*.bin"))
        if not files:
            raise UserError(f"no .bin LiDAR sweeps under {path}")
        return [read_lidar_bin(f, layout=bin_layout(f)) for f in files], [f.name for f in files]
    if path.suffix == ".bin":
        return [read_lidar_bin(path, layout=bin_layout(path))], [path.name]
    if path.suffix != ".npz":
        raise UserError(f"cannot read LiDAR data {source!r}: use a .npz, a .bin sweep or a folder of .bin sweeps")
    with read_npz(path) as z:
        keys = set(z.files)
        if "points" in keys and "frame_ptr" not in keys:
            return [check_cloud(z["points"], str(path))], [path.stem]
    frames, splits = load_kitti_frames(path)
    names = [f"{s} {i}" for i, s in enumerate(splits)]
    keep = [i for i, s in enumerate(splits) if split == "all" or s == split]
    if not keep:
        raise UserError(f"{path} has no frames of split {split!r} (it has {sorted(set(splits.tolist()))})")
    return [frames[i] for i in keep], [names[i] for i in keep]


def load_lidar_bev(source: str, *, copies: int = 16, split: str = "all", layout: str | None = None,
                   x_range: tuple[float, float] = (0.0, 70.4), y_range: tuple[float, float] = (-40.0, 40.0),
                   z_range: tuple[float, float] = (-3.0, 1.0), cell: float = 0.4, flip: bool = True,
                   max_angle: float = 45.0, scale: tuple[float, float] = (0.95, 1.05), dropout: float = 0.0,
                   seed: int = 0) -> Loaded:
    """Sweeps from ``source`` (see :func:`read_sweeps`) as (n_sweeps * copies, 5, rows, cols) BEV maps, each an
    independent draw of the augmentations (``copies=1`` with ``flip=false, max_angle=0, scale=[1, 1]``: the
    sweeps as they are). No labels; meta records the grid and the sweeps."""
    if copies < 1:
        raise UserError(f"data.copies must be >= 1, got {copies}")
    grid = BEVGrid(tuple(x_range), tuple(y_range), tuple(z_range), cell)
    clouds, names = read_sweeps(source, split=split, layout=layout)
    rng = np.random.default_rng(seed)
    maps = []
    for cloud, name in zip(clouds, names):
        for _ in range(copies):
            f = bev_features(augment_cloud(cloud, rng, flip=flip, max_angle=max_angle, scale=scale, dropout=dropout),
                             grid)
            if not f[1].any():
                raise UserError(f"sweep {name} has no point inside the BEV grid x {tuple(x_range)}, y {tuple(y_range)}, "
                                f"z {tuple(z_range)}: set data.x_range / y_range / z_range to the sensor's frame "
                                f"(nuScenes sweeps face y: e.g. x_range [-40, 40], y_range [0, 70.4])")
            maps.append(f.numpy())
    meta = {"sweeps": len(clouds), "copies": copies, "grid": {"x_range": list(x_range), "y_range": list(y_range),
                                                              "z_range": list(z_range), "cell": cell}}
    return Loaded(np.stack(maps).astype(np.float32), None, Path(source).name, meta=meta)
