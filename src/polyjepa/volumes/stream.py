"""Volume sets read lazily (``data.stream=true``): the official train and test arrays of a volume .npz,
memory-mapped, each batch scaled and average-pooled when it is read."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.array_stream import row_chunks
from ..data.lazy import IndexedSource, npz_array, npz_members
from ..errors import UserError
from .data import LAYOUTS, downsample, volume_view

SCAN_BYTES = 1 << 24  # volume bytes read per chunk by the pass that checks the values and finds their maximum


def scan_volumes(a: np.ndarray, what: str) -> float:
    """The largest |value| of (N, 1, D, H, W) ``a``, read a chunk at a time; NaN or inf is an error."""
    top = 0.0
    for raw in row_chunks(a, SCAN_BYTES):
        chunk = raw.astype(np.float32)
        if not np.isfinite(chunk).all():
            raise UserError(f"{what} hold NaN or inf: clean or drop those volumes")
        top = max(top, float(np.abs(chunk).max()))
    return top


class _Opener:
    """Maps the train and test arrays of a volume .npz (picklable: a DataLoader worker maps them again)."""

    def __init__(self, path: Path, keys: tuple[str, str]):
        self.path, self.keys = path, keys

    def __call__(self) -> list[np.ndarray]:
        return [volume_view(npz_array(self.path, k), f"{self.path.name}:{k}") for k in self.keys]


class VolumeArrays(IndexedSource):
    """The volumes of a .npz's official split, ``source[idx] -> (k, 1, D/f, H/f, W/f)`` float32: each part divided
    by its largest |value| (found at opening by a chunked pass, which also refuses NaN and inf) and averaged over
    ``factor``^3 cubes, the values of :func:`polyjepa.volumes.data.load_volumes`. Rows are the first ``max_train``
    train volumes, then the test volumes (``test_rows``)."""

    def __init__(self, path: Path, layout: tuple[str, str, str, str], *, factor: int = 1,
                 max_train: int | None = None):
        self.path, self.factor = path, int(factor)
        self._opener = _Opener(path, (layout[0], layout[2]))
        self._arrays = self._opener()
        xtr, xte = self._arrays
        ys = [np.asarray(npz_array(path, k)).reshape(-1).astype(np.int64) for k in (layout[1], layout[3])]
        if len(ys[0]) != len(xtr) or len(ys[1]) != len(xte):
            raise UserError(f"{path}: {len(xtr)} train volumes but {len(ys[0])} labels, {len(xte)} test volumes but "
                            f"{len(ys[1])} labels")
        if xtr.shape[1:] != xte.shape[1:]:
            raise UserError(f"{path}: train volumes {xtr.shape[1:]} and test volumes {xte.shape[1:]} differ in shape")
        sides = xtr.shape[2:]
        if any(s % self.factor for s in sides):
            raise UserError(f"volume sides {tuple(sides)} are not multiples of the downsampling factor {factor}")
        self.tops = [scan_volumes(a, f"{path.name}:{k}") for a, k in zip(self._arrays, (layout[0], layout[2]))]
        n_train = len(np.arange(len(xtr))[:max_train])  # the in-memory slice x[:max_train]
        self._rows = np.concatenate([np.stack([np.zeros(n_train, np.int64), np.arange(n_train)], 1),
                                     np.stack([np.ones(len(xte), np.int64), np.arange(len(xte))], 1)])
        self.labels = np.concatenate([ys[0][:n_train], ys[1]])
        self.test_rows = np.arange(n_train, len(self._rows))
        self.sample_shape = (1, *(s // self.factor for s in sides))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = None  # each DataLoader worker maps the file itself
        return state

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self._arrays is None:
            self._arrays = self._opener()
        out = np.empty((len(rows), *self.sample_shape), np.float32)
        for p in np.unique(rows[:, 0]):
            at = np.flatnonzero(rows[:, 0] == p)
            idx = rows[at, 1]
            order = np.argsort(idx, kind="stable")  # read the file forwards
            x = np.asarray(self._arrays[p][idx[order]]).astype(np.float32)
            top = self.tops[p]
            out[at[order]] = downsample(x / top if top > 0 else x, self.factor)
        return out

    def __repr__(self) -> str:
        return f"VolumeArrays({str(self.path)!r}, {len(self)} volumes of {self.sample_shape})"


def open_volume_set(source, *, factor: int = 1, max_train: int | None = None, fitted: dict | None = None,
                    seed: int = 0) -> VolumeArrays:
    """The ``volumes`` loader's data.stream=true form: a volume .npz with an official split (ModelNet
    ``X_train``/... or MedMNIST ``train_images``/...), memory-mapped."""
    if factor < 1:
        raise UserError(f"data.factor must be >= 1, got {factor}")
    path = Path(str(source))
    if not path.is_file() or path.suffix.lower() != ".npz":
        raise UserError(f"data.stream=true for volumes reads a volume .npz such as modelnet10_vox32.npz, not "
                        f"{str(source)!r}")
    keys = set(npz_members(path))
    layout = next((lay for lay in LAYOUTS if set(lay) <= keys), None)
    if layout is None:
        raise UserError(f"{path} holds {sorted(keys)}: expected X_train, y_train, X_test, y_test (voxel grids) or "
                        f"train_images, train_labels, test_images, test_labels (MedMNIST 3-D)")
    stream = VolumeArrays(path, layout, factor=factor, max_train=max_train)
    stream.meta = {}
    return stream
