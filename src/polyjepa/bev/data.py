"""LiDAR sweeps as bird's-eye-view feature maps for training: each sweep drawn ``copies`` times through the
random world augmentations, then binned into a (5, rows, cols) grid (see :func:`~polyjepa.bev.grid.bev_features`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded
from ..data.sources import read_npz
from ..errors import UserError
from .augment import augment_cloud
from .grid import CHANNELS, BEVGrid, bev_features
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


def sweep_sample(cloud: np.ndarray, name: str, index: int, grid: BEVGrid, *, augment_seed: int = 0,
                 flip: bool = True, max_angle: float = 45.0, scale: tuple[float, float] = (0.95, 1.05),
                 dropout: float = 0.0) -> np.ndarray:
    """Sample ``index`` of the loader (copy ``index % copies`` of its sweep) as a (5, rows, cols) float32 BEV map:
    the cloud through one draw of the augmentations from ``np.random.default_rng((augment_seed, index))``, so a
    sample is the same whichever order, process or form (in memory, lazy) draws it."""
    rng = np.random.default_rng((int(augment_seed), int(index)))
    f = bev_features(augment_cloud(cloud, rng, flip=flip, max_angle=max_angle, scale=scale, dropout=dropout), grid)
    if not f[1].any():
        raise UserError(f"sweep {name} has no point inside the BEV grid x {grid.x_range}, y {grid.y_range}, "
                        f"z {grid.z_range}: set data.x_range / y_range / z_range to the sensor's frame "
                        f"(nuScenes sweeps face y: e.g. x_range [-40, 40], y_range [0, 70.4])")
    return f.numpy()


def bev_grid(x_range, y_range, z_range, cell: float, copies: int) -> BEVGrid:
    """The loader's grid, after checking ``copies``."""
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
        raise UserError(f"data.copies must be an integer >= 1, got {copies!r}")
    return BEVGrid(tuple(float(v) for v in x_range), tuple(float(v) for v in y_range),
                   tuple(float(v) for v in z_range), float(cell))


def bev_meta(sweeps: int, copies: int, grid: BEVGrid) -> dict:
    return {"sweeps": sweeps, "copies": copies, "grid": {"x_range": list(grid.x_range), "y_range": list(grid.y_range),
                                                         "z_range": list(grid.z_range), "cell": grid.cell}}


def load_lidar_bev(source: str, *, copies: int = 16, split: str = "all", layout: str | None = None,
                   x_range: tuple[float, float] = (0.0, 70.4), y_range: tuple[float, float] = (-40.0, 40.0),
                   z_range: tuple[float, float] = (-3.0, 1.0), cell: float = 0.4, flip: bool = True,
                   max_angle: float = 45.0, scale: tuple[float, float] = (0.95, 1.05), dropout: float = 0.0,
                   augment_seed: int = 0) -> Loaded:
    """Sweeps from ``source`` (see :func:`read_sweeps`) as (n_sweeps * copies, 5, rows, cols) BEV maps, each an
    independent draw of the augmentations (``copies=1`` with ``flip=false, max_angle=0, scale=[1, 1]``: the
    sweeps as they are). Sample ``i`` is copy ``i % copies`` of sweep ``i // copies``, its augmentations drawn
    from ``(augment_seed, i)`` (:func:`sweep_sample`), as the lazy form
    (:func:`polyjepa.bev.stream.open_lidar_bev`) draws them. No labels; meta records the grid and the sweeps."""
    grid = bev_grid(x_range, y_range, z_range, cell, copies)
    clouds, names = read_sweeps(source, split=split, layout=layout)
    maps = np.empty((len(clouds) * copies, len(CHANNELS), *grid.shape), np.float32)
    for s, (cloud, name) in enumerate(zip(clouds, names)):
        for c in range(copies):
            i = s * copies + c
            maps[i] = sweep_sample(cloud, name, i, grid, augment_seed=augment_seed, flip=flip, max_angle=max_angle,
                                   scale=scale, dropout=dropout)
    return Loaded(maps, None, Path(source).name, meta=bev_meta(len(clouds), copies, grid))
