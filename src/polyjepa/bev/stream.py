"""LiDAR sweeps read lazily: the sweeps are indexed when the source opens, and each (sweep, copy) sample is read
and rasterised into its BEV map on access, so memory holds a batch of maps and the sweeps it needs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.lazy import IndexedSource, npz_array
from ..data.sources import read_npz
from ..errors import UserError
from .data import SPLITS, bev_grid, bev_meta, sweep_sample
from .grid import CHANNELS
from .io import RECORD_FIELDS, check_cloud, read_lidar_bin


class LidarBEVStream(IndexedSource):
    """The ``lidar_bev`` loader's samples, read on access: ``source[idx] -> (k, 5, rows, cols)`` float32.

    Row ``i`` is copy ``i % copies`` of sweep ``i // copies``, drawn through the augmentations seeded by
    ``(augment_seed, i)``, so it equals row ``i`` of :func:`polyjepa.bev.data.load_lidar_bev` on the same
    source and options. Sweeps are: the ``.bin`` files of a folder (or one ``.bin``), each read when one of its
    samples is; the frames of a KITTI-frames ``.npz`` (``xyz_mm``, ``intensity_x100``, ``frame_ptr``), whose
    point arrays are memory-mapped (:func:`polyjepa.data.lazy.npz_array`) and sliced per frame; or the
    ``points`` of a one-sweep ``.npz``. The source pickles as paths and a small index (DataLoader workers map
    the arrays themselves)."""

    def __init__(self, source: str | Path, *, copies: int = 16, split: str = "all", layout: str | None = None,
                 x_range=(0.0, 70.4), y_range=(-40.0, 40.0), z_range=(-3.0, 1.0), cell: float = 0.4,
                 flip: bool = True, max_angle: float = 45.0, scale=(0.95, 1.05), dropout: float = 0.0,
                 augment_seed: int = 0):
        if split not in SPLITS:
            raise UserError(f"data.split={split!r}: choose one of {', '.join(SPLITS)}")
        if layout is not None and layout not in RECORD_FIELDS:
            raise UserError(f"unknown LiDAR layout {layout!r}: choose kitti (4 floats a point) or nuscenes (5)")
        self.grid = bev_grid(x_range, y_range, z_range, cell, copies)
        self.copies = int(copies)
        self.augment = {"augment_seed": int(augment_seed), "flip": bool(flip), "max_angle": float(max_angle),
                        "scale": tuple(float(v) for v in scale), "dropout": float(dropout)}
        self.path = Path(source)
        self.kind, self.sweeps, self.names = self._index(split, layout)
        self.sample_shape = (len(CHANNELS), *self.grid.shape)
        self._rows = np.arange(len(self.sweeps) * self.copies, dtype=np.int64)
        self.meta = bev_meta(len(self.sweeps), self.copies, self.grid)

    def _index(self, split: str, layout: str | None) -> tuple[str, list, list[str]]:
        """(kind, one entry per sweep, names): files with their layouts, frame bounds, or the one-sweep array."""
        path = self.path
        if not path.exists():
            raise UserError(f"LiDAR data {str(path)!r} does not exist: pass a KITTI-frames .npz, a .bin sweep or a "
                            f"folder of .bin sweeps")

        def bin_entry(p: Path) -> tuple[Path, str]:
            lay = layout or ("nuscenes" if p.name.endswith(".pcd.bin") else "kitti")
            record = 4 * RECORD_FIELDS[lay]
            size = p.stat().st_size
            if size % record:
                other = "nuscenes" if lay == "kitti" else "kitti"
                raise UserError(f"{p} has {size} bytes, not a whole number of {record}-byte {lay} records "
                                f"({RECORD_FIELDS[lay]} float32 each): pass layout={other} if it is the other "
                                f"format, or re-export the file")
            if size == 0:
                raise UserError(f"{p}: the cloud is empty (0 points): check the file or the frame index")
            return p, lay

        if path.is_dir():
            files = sorted(path.rglob("*.bin"))
            if not files:
                raise UserError(f"no .bin LiDAR sweeps under {path}")
            return "bin", [bin_entry(f) for f in files], [f.name for f in files]
        if path.suffix == ".bin":
            return "bin", [bin_entry(path)], [path.name]
        if path.suffix != ".npz":
            raise UserError(f"cannot read LiDAR data {str(path)!r}: use a .npz, a .bin sweep or a folder of .bin "
                            f"sweeps")
        with read_npz(path) as z:
            keys = set(z.files)
            if "points" in keys and "frame_ptr" not in keys:
                return "points", [None], [path.stem]
            missing = {"xyz_mm", "intensity_x100", "frame_ptr"} - keys
            if missing:
                raise UserError(f"{path} lacks {sorted(missing)}: expected the KITTI frames layout (xyz_mm, "
                                f"intensity_x100, frame_ptr)")
            ptr = np.asarray(z["frame_ptr"], dtype=np.int64)
            n = len(ptr) - 1
            splits = np.asarray(z["frame_split"]) if "frame_split" in keys else np.array(["training"] * n)
        keep = [i for i in range(n) if split == "all" or splits[i] == split]
        if not keep:
            raise UserError(f"{path} has no frames of split {split!r} (it has {sorted(set(splits.tolist()))})")
        return "kitti", [(i, int(ptr[i]), int(ptr[i + 1])) for i in keep], [f"{splits[i]} {i}" for i in keep]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_maps", None)  # each DataLoader worker maps the arrays itself
        return state

    def _cloud(self, sweep: int) -> np.ndarray:
        """The (N, 4+) float32 points of sweep ``sweep``, as :func:`polyjepa.bev.data.read_sweeps` gives them."""
        entry = self.sweeps[sweep]
        if self.kind == "bin":
            return read_lidar_bin(entry[0], layout=entry[1])
        maps = self.__dict__.get("_maps")
        if maps is None:
            keys = ("points",) if self.kind == "points" else ("xyz_mm", "intensity_x100")
            maps = self._maps = {k: npz_array(self.path, k) for k in keys}
        if self.kind == "points":
            return check_cloud(np.asarray(maps["points"]), str(self.path))
        i, a, b = entry
        xyz = np.asarray(maps["xyz_mm"][a:b]).astype(np.float32) / 1000.0
        inten = np.asarray(maps["intensity_x100"][a:b]).astype(np.float32) / 100.0
        return check_cloud(np.concatenate([xyz, inten[:, None]], 1), f"{self.path.name} frame {i}")

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.sample_shape), np.float32)
        sweeps = rows // self.copies
        for sweep in np.unique(sweeps):  # each sweep read once for all its copies in the batch
            cloud = self._cloud(int(sweep))
            for k in np.flatnonzero(sweeps == sweep):
                out[k] = sweep_sample(cloud, self.names[sweep], int(rows[k]), self.grid, **self.augment)
        return out

    def __repr__(self) -> str:
        return (f"LidarBEVStream({str(self.path)!r}, {len(self.sweeps)} sweeps x {self.copies} copies of "
                f"{self.sample_shape})")


def open_lidar_bev(source, *, fitted: dict | None = None, seed: int = 0, **options) -> LidarBEVStream:
    """The ``lidar_bev`` loader's data.stream=true form: sweeps indexed now, each sample rasterised on access.
    ``seed`` is the split's seed; the augmentations follow the loader's own ``augment_seed``."""
    return LidarBEVStream(str(source), **options)
