"""Images of an .npy or .npz file read lazily (``data.stream=true``): the array memory-mapped, the rows a batch
asks for converted to (k, C, H, W) float32 as :func:`polyjepa.data.sources.load_images` converts the whole array."""
from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from ..errors import UserError
from .lazy import IndexedSource, npz_array, npz_members
from .sources import X_KEYS, Y_KEYS, official_test_rows, resize_center, sample_labels

SCAN_BYTES = 1 << 24  # bytes read per chunk by the pass that looks for an integer pixel above 1


def image_layout(a: np.ndarray, what: str) -> tuple[str, tuple[int, int, int]]:
    """(layout, (C, H, W)) of an image array by :func:`polyjepa.data.sources.to_nchw`'s rules, from its dtype and
    shape alone: 'nhw' (one channel), 'nchw', or 'nhwc' (channels last, when the second axis cannot be C but the
    last can)."""
    if a.dtype.hasobject or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise UserError(f"{what} has dtype {a.dtype}: images must be a numeric array")
    if np.iscomplexobj(a):
        raise UserError(f"{what} is complex ({a.dtype}): images must be real numbers; store np.abs(x) or x.real, "
                        f"or the two parts as channels")
    if a.ndim == 3:
        layout, chw = "nhw", (1, *a.shape[1:])
    elif a.ndim == 4 and a.shape[1] not in (1, 3, 4) and a.shape[-1] in (1, 3, 4):
        layout, chw = "nhwc", (a.shape[3], a.shape[1], a.shape[2])
    elif a.ndim == 4:
        layout, chw = "nchw", tuple(a.shape[1:])
    else:
        raise UserError(f"{what} has shape {a.shape}: images must be (n, H, W), (n, C, H, W) or (n, H, W, C)")
    if len(a) == 0:
        raise UserError(f"{what} is empty: it needs at least one image")
    return layout, chw


def row_chunks(a: np.ndarray, nbytes: int = SCAN_BYTES):
    """The rows of (n, ...) ``a`` as arrays of about ``nbytes`` each, in order. A memory-mapped file is read with
    ordinary file reads, so a pass over it leaves no mapped pages resident (memory holds one chunk)."""
    per = max(1, nbytes // max(1, a[0].nbytes if len(a) else 1))
    m = a.base if isinstance(a.base, np.memmap) and a.base.size == a.size else a  # a reshaped view of a map
    filed = (isinstance(m, np.memmap) and isinstance(m.base, mmap.mmap) and m.flags.c_contiguous
             and a.flags.c_contiguous and m.filename)
    if not filed:
        for s in range(0, len(a), per):
            yield np.asarray(a[s:s + per])
        return
    row = a[0].nbytes
    with open(m.filename, "rb") as f:
        for s in range(0, len(a), per):
            k = min(per, len(a) - s)
            f.seek(m.offset + s * row)
            buf = f.read(k * row)
            if len(buf) != k * row:
                raise UserError(f"{m.filename} is cut short: re-create it with numpy.save / numpy.savez")
            yield np.frombuffer(buf, dtype=a.dtype).reshape(k, *a.shape[1:])


def read_nchw(array: np.ndarray, rows: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of a mapped array, read in file order (row j of the result is ``rows[order[j]]``), and that
    ``order``; images in layout 'nhw' or 'nhwc' made (k, C, H, W), any other layout left as read."""
    order = np.argsort(rows, kind="stable")  # read the file forwards, then restore the batch's order
    raw = np.asarray(array[rows[order]])
    if layout == "nhw":
        raw = raw[:, None]
    elif layout == "nhwc":
        raw = raw.transpose(0, 3, 1, 2)
    return raw, order


def integer_scale(a: np.ndarray) -> float:
    """The divisor of integer pixels: 255 when any value exceeds 1, else 1 (the in-memory rule), found by a chunked
    pass that stops at the first chunk holding such a value."""
    for chunk in row_chunks(a):
        if chunk.max() > 1:
            return 255.0
    return 1.0


class ImageArray(IndexedSource):
    """The images of a memory-mapped array, ``source[idx] -> (k, C, H, W)`` float32: (n, H, W), (n, C, H, W) or
    (n, H, W, C) rows, integers divided by 255 (when any pixel exceeds 1), ``size`` scaling each image to cover
    (H, W) and cropping the centre, the values of the in-memory ``images`` loader. NaN or inf in a batch is an
    error naming its rows."""

    def __init__(self, array: np.ndarray, what: str, opener, *, size: tuple[int, int] | None = None):
        self.what, self._opener, self.size = what, opener, size
        self.layout, chw = image_layout(array, what)
        self.scale = integer_scale(array) if np.issubdtype(array.dtype, np.integer) else 1.0
        self._array = array
        self._rows = np.arange(len(array), dtype=np.int64)
        self.sample_shape = (chw[0], *(size or chw[1:]))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = None  # each DataLoader worker maps the file itself
        return state

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self._array is None:
            self._array = self._opener()
        raw, order = read_nchw(self._array, rows, self.layout)
        if np.issubdtype(raw.dtype, np.integer):
            x = raw.astype(np.float32) / self.scale
        else:
            with np.errstate(over="ignore"):
                x = raw.astype(np.float32)
        bad = ~np.isfinite(x).reshape(len(x), -1).all(1)
        if bad.any():
            which = sorted(set(rows[order][bad].tolist()))[:5]
            if np.isfinite(raw[bad]).all():
                raise UserError(f"{self.what} has values beyond float32's range (|x| > 3.4e38) in images {which}: "
                                f"rescale them, e.g. divide by their maximum")
            raise UserError(f"{self.what} contains NaN or inf in images {which}: remove or impute them first")
        x = resize_center(np.ascontiguousarray(x), self.size)
        out = np.empty_like(x)
        out[order] = x
        return out

    def __repr__(self) -> str:
        return f"ImageArray({self.what!r}, {len(self)} images of {self.sample_shape})"


class _NpyOpener:
    def __init__(self, path: Path):
        self.path = path

    def __call__(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except Exception as e:
            hint = " (no object arrays: polyjepa does not unpickle)" if "pickle" in str(e) else ""
            raise UserError(f"cannot memory-map {self.path} ({type(e).__name__}: {e}): data.stream=true reads an "
                            f".npy written by numpy.save{hint}") from None


class _NpzOpener:
    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key

    def __call__(self) -> np.ndarray:
        return npz_array(self.path, self.key)


def open_image_array(path: str | Path, *, size: tuple[int, int] | None = None) -> ImageArray:
    """The ``images`` loader's data.stream=true form for an .npy or .npz file: an .npz's images under one of
    X_KEYS, labels under one of Y_KEYS, and a ``split`` array whose 'test' rows become ``test_rows``."""
    path = Path(path)
    if path.suffix == ".npy":
        opener = _NpyOpener(path)
        return ImageArray(opener(), str(path), opener, size=size)
    keys = npz_members(path)
    xk = next((k for k in X_KEYS if k in keys), None)
    if xk is None:
        raise UserError(f"{path} has arrays {keys} but no images: store them under one of {', '.join(X_KEYS)}")
    opener = _NpzOpener(path, xk)
    stream = ImageArray(opener(), f"{path}[{xk}]", opener, size=size)
    yk = next((k for k in Y_KEYS if k in keys), None)
    if yk is not None:
        stream.labels = sample_labels(npz_array(path, yk), len(stream), str(path), "image")
    if "split" in keys:
        stream.test_rows = np.flatnonzero(official_test_rows(npz_array(path, "split"), len(stream), str(path)))
    return stream
