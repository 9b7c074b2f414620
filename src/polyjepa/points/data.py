"""Load point clouds: arrays (n, points, 3), voxel grids (n, D, H, W), .npy/.npz/.ply/.off files and folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded, part_labels, read_numpy, sample_labels
from ..errors import UserError

CLOUD_KEYS = ("points", "clouds", "x", "X", "data", "inputs", "voxels")
LABEL_KEYS = ("labels", "y", "targets", "target")
FILE_SUFFIXES = (".ply", ".off", ".npy")


def surface_voxels(grids: np.ndarray) -> np.ndarray:
    """(n, D, H, W) occupancy -> bool mask of occupied voxels with at least one empty 6-neighbour."""
    occ = grids > 0
    p = np.pad(occ, ((0, 0), (1, 1), (1, 1), (1, 1)))
    inner = p[:, 2:, 1:-1, 1:-1] & p[:, :-2, 1:-1, 1:-1] & p[:, 1:-1, 2:, 1:-1] & p[:, 1:-1, :-2, 1:-1]
    inner &= p[:, 1:-1, 1:-1, 2:] & p[:, 1:-1, 1:-1, :-2]
    return occ & ~inner


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: its own stream of ``seed``, so that a sample's points are the
    same whether the whole array is converted at once or the sample is read alone (``data.stream=true``)."""
    return np.random.default_rng((int(seed) & 0xFFFFFFFF, int(index)))


def voxel_cloud(mask: np.ndarray, points: int, rng: np.random.Generator) -> np.ndarray:
    """(D, H, W) bool mask with at least one voxel -> (points, 3) float64 cloud: the voxels' centres, each jittered
    uniformly inside its voxel, sampled without replacement when there are enough (in voxel units)."""
    vox = np.argwhere(mask)
    pick = rng.choice(len(vox), points, replace=len(vox) < points)
    return vox[pick] + rng.uniform(-0.5, 0.5, (points, 3)) + 0.5


def voxels_to_points(grids: np.ndarray, points: int, *, surface: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Voxel grids -> (clouds (n', points, 3), kept indices (n',)); empty grids are left out.

    Each cloud is the centres of the occupied voxels (of the surface ones with ``surface``), each
    jittered uniformly inside its voxel, sampled to ``points`` (without replacement when there are
    enough voxels; the jitter keeps repeated voxels distinct), in voxel units. Grid ``i`` draws from
    :func:`sample_rng` ``(seed, i)``.
    """
    clouds, kept = [], []
    for start in range(0, len(grids), 256):  # chunks bound the memory of the neighbour test
        chunk = np.asarray(grids[start:start + 256])
        mask = surface_voxels(chunk) if surface else chunk > 0
        for i, m in enumerate(mask):
            if not m.any():
                continue
            clouds.append(voxel_cloud(m, points, sample_rng(seed, start + i)))
            kept.append(start + i)
    out = np.stack(clouds).astype(np.float32) if clouds else np.zeros((0, points, 3), np.float32)
    return out, np.asarray(kept, dtype=np.int64)


def normalize_clouds(x: np.ndarray) -> np.ndarray:
    """Centre every cloud on its mean and scale it into the unit ball (Point-MAE's pc_norm)."""
    x = x - x.mean(1, keepdims=True)
    r = np.sqrt((x ** 2).sum(-1)).max(1)
    return (x / np.maximum(r, 1e-12)[:, None, None]).astype(np.float32)


def resample(cloud: np.ndarray, points: int, rng: np.random.Generator) -> np.ndarray:
    return cloud[rng.choice(len(cloud), points, replace=len(cloud) < points)]


def check_cloud_shape(a: np.ndarray, what: str, min_points: int) -> None:
    """(n, P, 3) clouds, at least one, of at least ``min_points`` points: one clear error per problem."""
    if a.ndim != 3 or a.shape[-1] != 3:
        raise UserError(f"{what} has shape {a.shape}: point clouds must be (n, points, 3) xyz coordinates "
                        f"(or voxel grids (n, D, H, W))")
    if len(a) == 0:
        raise UserError(f"{what} is empty: it needs at least one cloud")
    if a.shape[1] < min_points:
        raise UserError(f"{what} has {a.shape[1]} points per cloud, fewer than data.min_points={min_points}: "
                        f"use denser clouds or lower data.min_points (and the tokenizer's n_groups/group_size)")


def check_cloud_array(a: np.ndarray, what: str, min_points: int) -> np.ndarray:
    """Validate (n, P, 3) numeric finite clouds, with one clear error per problem."""
    a = np.asarray(a)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise UserError(f"{what} has dtype {a.dtype}: point clouds must be a numeric array")
    if a.ndim == 2:
        a = a[None]
    check_cloud_shape(a, what, min_points)
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).reshape(len(a), -1).any(1).sum())
        raise UserError(f"{what} contains NaN or inf coordinates in {bad} clouds: remove or repair them first")
    return a.astype(np.float32)


def _to_clouds(a: np.ndarray, what: str, points: int, surface: bool, seed: int, min_points: int):
    """(clouds (n', points, 3) normalised, kept indices) from voxel grids or clouds."""
    a = np.asarray(a)
    if a.ndim == 4 and a.shape[-1] != 3:
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise UserError(f"{what} has dtype {a.dtype}: voxel grids must be numeric or boolean")
        clouds, kept = voxels_to_points(a, points, surface=surface, seed=seed)
        if len(clouds) == 0:
            raise UserError(f"{what}: every voxel grid is empty: there are no shapes to learn from")
        return normalize_clouds(clouds), kept
    a = check_cloud_array(a, what, min_points)
    if a.shape[1] != points:
        a = np.stack([resample(c, points, sample_rng(seed, i)) for i, c in enumerate(a)])
    return normalize_clouds(a), np.arange(len(a))


def read_cloud_file(path: Path, points: int, rng: np.random.Generator) -> np.ndarray:
    """One cloud from .ply / .off (surface sampled by triangle area when faces exist) or .npy (P, 3)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        a = read_numpy(path)
        if a.ndim != 2 or a.shape[-1] != 3:
            raise UserError(f"{path} has shape {a.shape}: a cloud file in a folder must be (points, 3)")
        return a
    from .meshio import read_off, read_ply

    verts, faces = (read_off if suffix == ".off" else read_ply)(path)
    if faces is None or len(faces) == 0:
        return verts
    return sample_surface(verts, faces, points, rng)


def sample_surface(verts: np.ndarray, faces: np.ndarray, points: int, rng: np.random.Generator) -> np.ndarray:
    """``points`` points uniformly on a triangle mesh (triangles chosen by area, barycentric samples)."""
    tri = verts[faces]                                                        # (F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if not area.sum() > 0:
        return verts
    f = rng.choice(len(tri), points, p=area / area.sum())
    u, v = rng.random((2, points))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[f]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def cloud_files(path: Path) -> list[Path]:
    """The point-cloud files under a folder, sorted (their order gives each its index and random stream)."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FILE_SUFFIXES)
    if not files:
        raise UserError(f"no point-cloud files ({', '.join(FILE_SUFFIXES)}) under {path}")
    return files


def folder_labels(path: Path, files: list[Path]) -> tuple[np.ndarray | None, np.ndarray, list[str]]:
    """(labels or None, test mask, classes) of a folder's files: the first sub-folder is the class (labels only
    when every file has one), a 'test' folder in the path marks the official test split."""
    rels = [p.relative_to(path).parts for p in files]
    classes = sorted({r[0] for r in rels if len(r) > 1})
    is_test = np.array(["test" in r[:-1] for r in rels])
    y = np.array([classes.index(r[0]) for r in rels]) if classes and all(len(r) > 1 for r in rels) else None
    return y, is_test, classes


def folder_cloud(f: Path, points: int, seed: int, index: int, min_points: int) -> np.ndarray:
    """File ``index`` of a folder as a (points, 3) float64 cloud (not yet normalised), drawn from
    :func:`sample_rng` ``(seed, index)``; a cloud too small, of another shape or not finite is an error naming it."""
    rng = sample_rng(seed, index)
    c = np.asarray(read_cloud_file(f, points, rng), dtype=np.float64)
    if len(c) < min_points or c.ndim != 2 or c.shape[-1] != 3 or not np.isfinite(c).all():
        check_cloud_array(c[None] if c.ndim == 2 else c, str(f), min_points)
    return resample(c, points, rng)


def _load_folder(path: Path, points: int, seed: int, min_points: int) -> Loaded:
    files = cloud_files(path)
    y, is_test, classes = folder_labels(path, files)
    x = normalize_clouds(np.stack([folder_cloud(f, points, seed, i, min_points) for i, f in enumerate(files)]))
    if is_test.any() and not is_test.all():
        return Loaded(x[~is_test], y[~is_test] if y is not None else None, path.name, x_test=x[is_test],
                      y_test=y[is_test] if y is not None else None, meta={"classes": classes})
    return Loaded(x, y, path.name, meta={"classes": classes})


def load_points(source: str, *, points: int = 1024, surface: bool = True, min_points: int = 32,
                seed: int = 0) -> Loaded:
    """Point clouds from ``source``, each resampled to ``points`` and normalised into the unit ball.

    source: a .npz with an official split (X_train, X_test, y_train, y_test: voxel grids (n, D, H, W)
    or clouds (n, P, 3)) or clouds under points/x/X/data (labels under labels/y); a .npy array; a
    .ply/.off/.npy file (one cloud); or a folder of such files (one sub-folder per class gives labels,
    a 'test' folder in the path marks the official test split, as in ModelNet's class/train|test layout).
    Voxel grids become clouds of (surface, with ``surface``) voxel centres plus uniform jitter; empty
    grids are left out and counted in ``meta['dropped_empty']``.
    """
    if points < 2:
        raise UserError(f"data.points must be >= 2, got {points}")
    path = Path(source)
    if not path.exists():
        raise UserError(f"data path {source!r} does not exist: pass an existing .npz/.npy/.ply/.off file or folder")
    if path.is_dir():
        return _load_folder(path, points, seed, min_points)
    suffix = path.suffix.lower()
    if suffix in (".ply", ".off"):
        return Loaded(normalize_clouds(folder_cloud(path, points, seed, 0, min_points)[None]), None, path.name)
    if suffix not in (".npz", ".npy"):
        raise UserError(f"cannot read {source!r}: use a .npz/.npy/.ply/.off file or a folder of them")
    z = read_numpy(path)
    if suffix == ".npy":
        x, kept = _to_clouds(z, str(path), points, surface, seed, min_points)
        return Loaded(x, None, path.name, meta={"dropped_empty": int((len(z) if z.ndim > 2 else 1) - len(kept))})
    with z:
        keys = list(z.keys())
        if {"X_train", "X_test"} <= set(keys):
            x, kept = _to_clouds(z["X_train"], f"{path}[X_train]", points, surface, seed, min_points)
            xt, kept_t = _to_clouds(z["X_test"], f"{path}[X_test]", points, surface, seed + 1, min_points)
            if {"y_train", "y_test"} <= set(keys):   # coded together: one code per class in both parts
                y, yt = part_labels([z["y_train"], z["y_test"]], [len(z["X_train"]), len(z["X_test"])], str(path),
                                    "cloud")
                y, yt = y[kept], yt[kept_t]
            else:
                y = sample_labels(z["y_train"], len(z["X_train"]), str(path), "cloud")[kept] if "y_train" in keys \
                    else None
                yt = sample_labels(z["y_test"], len(z["X_test"]), str(path), "cloud")[kept_t] if "y_test" in keys \
                    else None
            meta = {"dropped_empty": {"train": int(len(z["X_train"]) - len(kept)),
                                      "test": int(len(z["X_test"]) - len(kept_t))}}
            return Loaded(x, y, path.name, x_test=xt, y_test=yt, meta=meta)
        xk = next((k for k in CLOUD_KEYS if k in keys), None)
        if xk is None:
            raise UserError(f"{path} has arrays {keys} but no point clouds: store them under one of "
                            f"{', '.join(CLOUD_KEYS)} (or X_train/X_test with y_train/y_test)")
        raw = z[xk]
        x, kept = _to_clouds(raw, f"{path}[{xk}]", points, surface, seed, min_points)
        yk = next((k for k in LABEL_KEYS if k in keys), None)
        y = sample_labels(z[yk], len(raw), str(path), "cloud")[kept] if yk else None
    return Loaded(x, y, path.name, meta={"dropped_empty": int(len(raw) - len(kept))})
