"""Point clouds read lazily (``data.stream=true``): rows of a memory-mapped .npy or .npz (voxel grids or clouds)
and the files of a folder, each converted to a normalised cloud when a batch asks for it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.array_stream import row_chunks
from ..data.lazy import IndexedSource, npz_array, npz_members
from ..data.sources import part_labels
from ..errors import UserError
from .data import (CLOUD_KEYS, LABEL_KEYS, check_cloud_shape, cloud_files, folder_cloud, folder_labels,
                   normalize_clouds, resample, sample_rng, surface_voxels, voxel_cloud)

SCAN_BYTES = 1 << 24  # voxel grids read per chunk while the empty ones are counted at opening: about 16 MB


def _is_grids(a: np.ndarray) -> bool:
    return a.ndim == 4 and a.shape[-1] != 3


def check_array(a: np.ndarray, what: str, min_points: int) -> None:
    """The checks of the in-memory loader that need no pass over the values: dtype and shape."""
    if a.dtype.hasobject or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise UserError(f"{what} has dtype {a.dtype}: point clouds and voxel grids must be a real numeric array")
    if _is_grids(a):
        return
    check_cloud_shape(a, what, min_points)


def occupied_grids(a: np.ndarray) -> np.ndarray:
    """The indices of the grids of (n, D, H, W) ``a`` with at least one occupied voxel, read a chunk at a time."""
    keep, start = [], 0
    for chunk in row_chunks(a, SCAN_BYTES):
        keep.append(np.flatnonzero((chunk > 0).reshape(len(chunk), -1).any(1)) + start)
        start += len(chunk)
    return np.concatenate(keep).astype(np.int64) if keep else np.zeros(0, np.int64)


class PointArrays(IndexedSource):
    """Point clouds from memory-mapped arrays (one per part: train, test), ``source[idx] -> (k, points, 3)``.

    Each part is voxel grids (n, D, H, W), whose occupied (surface, with ``surface``) voxel centres are jittered
    and sampled to ``points``, or clouds (n, P, 3) resampled to ``points``; every cloud is then centred and scaled
    into the unit ball. Row ``i`` of part ``p`` draws from ``sample_rng(seed + p, i)``, as the in-memory loader
    draws it, so the clouds are those of :func:`polyjepa.points.data.load_points`. Empty grids are found at opening
    (a chunked pass over the occupancy) and left out; their count is ``meta['dropped_empty']``.
    """

    def __init__(self, parts: list[tuple[str, np.ndarray]], *, points: int, surface: bool, seed: int,
                 min_points: int, opener=None):
        self.points, self.surface, self.seed = int(points), bool(surface), int(seed)
        self._opener, self.names = opener, [name for name, _ in parts]
        self._arrays = [a for _, a in parts]
        rows, self.dropped = [], []
        for p, (name, a) in enumerate(parts):
            check_array(a, name, min_points)
            kept = occupied_grids(a) if _is_grids(a) else np.arange(len(a), dtype=np.int64)
            if _is_grids(a) and len(kept) == 0:
                raise UserError(f"{name}: every voxel grid is empty: there are no shapes to learn from")
            self.dropped.append(int(len(a) - len(kept)))
            rows.append(np.stack([np.full(len(kept), p), kept], 1))
        self._rows = np.concatenate(rows).astype(np.int64)
        self.kept = [r[:, 1] for r in rows]
        self.sample_shape = (self.points, 3)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._opener is not None:  # each DataLoader worker maps the files itself
            state["_arrays"] = None
        return state

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self._arrays is None:
            self._arrays = self._opener()
        out = np.empty((len(rows), self.points, 3), np.float32)
        for p in np.unique(rows[:, 0]):
            at = np.flatnonzero(rows[:, 0] == p)
            idx = rows[at, 1]
            order = np.argsort(idx, kind="stable")  # read the file forwards
            a = self._arrays[p]
            raw = np.asarray(a[idx[order]])
            if _is_grids(a):
                mask = surface_voxels(raw) if self.surface else raw > 0
                clouds = [voxel_cloud(m, self.points, sample_rng(self.seed + p, i)) for m, i in zip(mask, idx[order])]
                out[at[order]] = np.stack(clouds).astype(np.float32)
                continue
            raw = raw.astype(np.float32)
            bad = ~np.isfinite(raw).reshape(len(raw), -1).all(1)
            if bad.any():
                raise UserError(f"{self.names[p]} contains NaN or inf coordinates in clouds "
                                f"{sorted(set(idx[order][bad].tolist()))[:5]}: remove or repair them first")
            if raw.shape[1] != self.points:
                raw = np.stack([resample(c, self.points, sample_rng(self.seed + p, i))
                                for c, i in zip(raw, idx[order])])
            out[at[order]] = raw
        return normalize_clouds(out)

    def __repr__(self) -> str:
        return f"PointArrays({', '.join(self.names)}: {len(self)} clouds of {self.sample_shape})"


class PointFolder(IndexedSource):
    """The .ply/.off/.npy clouds of a folder, read on access: ``source[idx] -> (k, points, 3)``, each file's
    cloud as :func:`polyjepa.points.data.load_points` reads it (file ``i`` of the sorted list draws from
    ``sample_rng(seed, i)``). Class sub-folders are the labels; files under a 'test' folder are ``test_rows``."""

    def __init__(self, root: Path, *, points: int, seed: int, min_points: int):
        self.root, self.points, self.seed, self.min_points = root, int(points), int(seed), int(min_points)
        self.files = cloud_files(root)
        self.labels, is_test, self.classes = folder_labels(root, self.files)
        if is_test.any() and not is_test.all():
            self.test_rows = np.flatnonzero(is_test)
        self._rows = np.arange(len(self.files), dtype=np.int64)
        self.sample_shape = (self.points, 3)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        clouds = [folder_cloud(self.files[i], self.points, self.seed, int(i), self.min_points) for i in rows]
        return normalize_clouds(np.stack(clouds))

    def __repr__(self) -> str:
        return f"PointFolder({str(self.root)!r}, {len(self)} clouds of {self.sample_shape})"


def _npz_parts(path: Path) -> tuple[list[tuple[str, str]], list[str | None]]:
    """([(key, name)] of the cloud arrays, [label key or None per part]) of a points .npz, by the in-memory
    loader's rules: X_train/X_test with y_train/y_test, else the first of CLOUD_KEYS with LABEL_KEYS."""
    keys = npz_members(path)
    if {"X_train", "X_test"} <= set(keys):
        labels = [k if k in keys else None for k in ("y_train", "y_test")]
        return [("X_train", f"{path}[X_train]"), ("X_test", f"{path}[X_test]")], labels
    xk = next((k for k in CLOUD_KEYS if k in keys), None)
    if xk is None:
        raise UserError(f"{path} has arrays {keys} but no point clouds: store them under one of "
                        f"{', '.join(CLOUD_KEYS)} (or X_train/X_test with y_train/y_test)")
    return [(xk, f"{path}[{xk}]")], [next((k for k in LABEL_KEYS if k in keys), None)]


class _NpzOpener:
    """Maps the cloud arrays of an .npz (picklable: a DataLoader worker maps them again)."""

    def __init__(self, path: Path, keys: list[str]):
        self.path, self.keys = path, keys

    def __call__(self) -> list[np.ndarray]:
        return [npz_array(self.path, k) for k in self.keys]


class _NpyOpener:
    def __init__(self, path: Path):
        self.path = path

    def __call__(self) -> list[np.ndarray]:
        a = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return [a[None] if a.ndim == 2 else a]


def open_points(source, *, points: int = 1024, surface: bool = True, min_points: int = 32,
                fitted: dict | None = None, seed: int = 0):
    """The ``points`` loader's data.stream=true form: an .npz (an official X_train/X_test split, or clouds under
    one of CLOUD_KEYS) or .npy of voxel grids or clouds, memory-mapped, or a folder of .ply/.off/.npy clouds.
    ``seed`` draws the points (the loader's ``data.seed``, 0 by default, as in memory)."""
    if points < 2:
        raise UserError(f"data.points must be >= 2, got {points}")
    path = Path(str(source))
    if not path.exists():
        raise UserError(f"data path {source!r} does not exist: pass an existing .npz/.npy file or a folder of "
                        f".ply/.off/.npy clouds")
    if path.is_dir():
        stream = PointFolder(path, points=points, seed=seed, min_points=min_points)
        stream.meta = {"classes": stream.classes}
        return stream
    suffix = path.suffix.lower()
    if suffix == ".npy":
        opener = _NpyOpener(path)
        try:
            arrays = opener()
        except Exception as e:
            raise UserError(f"cannot memory-map {path} ({type(e).__name__}: {e}): data.stream=true reads an "
                            f"uncompressed .npy written by numpy.save") from None
        stream = PointArrays([(str(path), arrays[0])], points=points, surface=surface, seed=seed,
                             min_points=min_points, opener=opener)
        stream.meta = {"dropped_empty": stream.dropped[0]}
        return stream
    if suffix != ".npz":
        raise UserError(f"data.stream=true for points reads an .npz/.npy file or a folder of clouds, not "
                        f"{str(source)!r}: drop data.stream to read a single mesh")
    parts, label_keys = _npz_parts(path)
    opener = _NpzOpener(path, [k for k, _ in parts])
    arrays = opener()
    stream = PointArrays([(name, a) for (_, name), a in zip(parts, arrays)], points=points, surface=surface,
                         seed=seed, min_points=min_points, opener=opener)
    labels = None
    if all(k is not None for k in label_keys):   # the parts' labels coded together, as in memory
        coded = part_labels([npz_array(path, k) for k in label_keys], [len(a) for a in arrays], str(path), "cloud")
        labels = np.concatenate([y[kept] for y, kept in zip(coded, stream.kept)])
    stream.labels = labels
    if len(parts) == 2:
        stream.test_rows = np.flatnonzero(stream._rows[:, 0] == 1)
        stream.meta = {"dropped_empty": {"train": stream.dropped[0], "test": stream.dropped[1]}}
    else:
        stream.meta = {"dropped_empty": stream.dropped[0]}
    return stream
