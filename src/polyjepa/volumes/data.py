"""Readers for 3-D volume sets stored as .npz: ModelNet-style voxel grids and MedMNIST-3D style scans."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data.sources import read_npz
from ..errors import UserError

# (train images, train labels, test images, test labels) key names of the layouts we read
LAYOUTS = (("X_train", "y_train", "X_test", "y_test"),                       # ModelNet voxel grids
           ("train_images", "train_labels", "test_images", "test_labels"))   # MedMNIST 3-D


class Volumes(NamedTuple):
    """(N, 1, D, H, W) float32 volumes scaled to [0, 1] and int64 labels of the official split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def volume_view(a: np.ndarray, what: str) -> np.ndarray:
    """(N, D, H, W) or (N, 1, D, H, W) real numbers as an (N, 1, D, H, W) view: one clear error for another shape
    or dtype (the values are not read)."""
    if a.ndim == 4:
        a = a[:, None]
    if a.ndim != 5 or a.shape[1] != 1 or min(a.shape) < 1:
        raise UserError(f"{what} must be an (N, D, H, W) array of single-channel volumes, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise UserError(f"{what} must hold real numbers, got dtype {a.dtype}")
    return a


def check_volumes(x: np.ndarray, what: str) -> np.ndarray:
    """(N, D, H, W) or (N, 1, D, H, W) finite numbers -> (N, 1, D, H, W) float32 in [0, 1] (divided by the max)."""
    x = volume_view(np.asarray(x), what).astype(np.float32)
    if not np.isfinite(x).all():
        raise UserError(f"{what} hold NaN or inf: clean or drop those volumes")
    top = float(np.abs(x).max()) if x.size else 0.0
    return x / top if top > 0 else x


def downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """(N, C, D, H, W) averaged over factor^3 cubes (each side must be a multiple of ``factor``)."""
    if factor == 1:
        return x
    n, c, *sides = x.shape
    if any(s % factor for s in sides):
        raise UserError(f"volume sides {tuple(sides)} are not multiples of the downsampling factor {factor}")
    d, h, w = (s // factor for s in sides)
    return x.reshape(n, c, d, factor, h, factor, w, factor).mean(axis=(3, 5, 7))


def load_volumes(path: str | Path, *, max_train: int | None = None, factor: int = 1) -> Volumes:
    """The official train and test splits of a volume .npz (ModelNet ``X_train``/``y_train``/... or MedMNIST
    ``train_images``/``train_labels``/...); ``max_train`` keeps the first that many train volumes; ``factor``
    averages factor^3 cubes into one voxel."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"volume file {path} not found: pass an .npz such as modelnet10_vox32.npz or "
                        f"adrenalmnist3d_28.npz")
    z = read_npz(path)
    keys = set(z.files)
    layout = next((lay for lay in LAYOUTS if set(lay) <= keys), None)
    if layout is None:
        raise UserError(f"{path} holds {sorted(keys)}: expected X_train, y_train, X_test, y_test (voxel grids) or "
                        f"train_images, train_labels, test_images, test_labels (MedMNIST 3-D)")
    xtr, ytr, xte, yte = (z[k] for k in layout)
    xtr, xte = check_volumes(xtr, f"{path.name}:{layout[0]}"), check_volumes(xte, f"{path.name}:{layout[2]}")
    ytr, yte = np.asarray(ytr).reshape(-1).astype(np.int64), np.asarray(yte).reshape(-1).astype(np.int64)
    if len(ytr) != len(xtr) or len(yte) != len(xte):
        raise UserError(f"{path}: {len(xtr)} train volumes but {len(ytr)} labels, {len(xte)} test volumes but "
                        f"{len(yte)} labels")
    if xtr.shape[1:] != xte.shape[1:]:
        raise UserError(f"{path}: train volumes {xtr.shape[1:]} and test volumes {xte.shape[1:]} differ in shape")
    if max_train is not None:
        xtr, ytr = xtr[:max_train], ytr[:max_train]
    return Volumes(downsample(xtr, factor), ytr, downsample(xte, factor), yte)
