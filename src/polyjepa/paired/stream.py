"""Side a of an .npz of pairs read lazily (``data.stream=true``): the images or feature vectors memory-mapped with
:func:`polyjepa.data.lazy.npz_array`, the rows a batch asks for converted as :func:`polyjepa.paired.data.load_pairs`
converts the whole array."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.array_stream import _NpzOpener, image_layout, read_nchw
from ..data.lazy import IndexedSource, chunked_mean_std, npz_array, stats_sample
from ..errors import UserError
from .data import STATS_CHUNK

STATS_ROWS = 2_000   # side-a images drawn at random for the channel statistics (all of them when there are fewer)


class PairedSideA(IndexedSource):
    """The side-a items of a memory-mapped array, ``source[idx] -> (k, ...)`` float32 as the in-memory loader gives
    them: images (n, H, W), (n, C, H, W) or (n, H, W, C) as (k, C, H, W), integers divided by 255, standardised
    per channel once :meth:`set_normalisation` is given statistics (:meth:`image_stats`); vectors (n, ...) as
    float32. NaN or inf in a batch is an error naming its items. It pickles without its map (a DataLoader worker
    or another process maps the file itself)."""

    def __init__(self, array: np.ndarray, what: str, opener, *, side: str):
        self.what, self._opener, self.side = what, opener, side
        if side == "image":
            self.layout, self.sample_shape = image_layout(array, what)
        else:
            if array.ndim < 2 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) \
                    or np.iscomplexobj(array):
                raise UserError(f"side a ({what}) must be a real numeric array of (n, F) vectors, got dtype "
                                f"{array.dtype} and shape {array.shape}")
            self.layout, self.sample_shape = "flat", tuple(array.shape[1:])
        self.scale = 255.0 if side == "image" and np.issubdtype(array.dtype, np.integer) else 1.0
        self._array = array
        self._rows = np.arange(len(array), dtype=np.int64)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, (np.ndarray, torch.Tensor)) and str(idx.dtype) in ("bool", "torch.bool"):
            idx = np.flatnonzero(np.asarray(idx))   # a mask selects items, as it does an array's rows
        return super().__getitem__(idx)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self._array is None:
            self._array = self._opener()
        raw, order = read_nchw(self._array, rows, self.layout)
        with np.errstate(over="ignore"):
            x = raw.astype(np.float32) / np.float32(self.scale) if self.scale != 1 else raw.astype(np.float32)
        bad = ~np.isfinite(x).reshape(len(x), -1).all(1)
        if bad.any():
            which = sorted(set(rows[order][bad].tolist()))[:5]
            raise UserError(f"side a ({self.what}) has NaN or inf values (or values beyond float32's range) in "
                            f"its rows {which}: fill or drop those items")
        out = np.empty_like(x)
        out[order] = x
        return out

    def image_stats(self, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (mean, std + 1e-6), each (C,), of the images before normalisation, the in-memory loader's
        formula: over all items when there are at most ``n`` (default ``STATS_ROWS``; the in-memory values to float
        precision), else over ``n``
        drawn at random with ``seed``; read ``STATS_CHUNK`` at a time and combined in float64."""
        pick = self._rows[stats_sample(len(self), STATS_ROWS if n is None else n, seed)]
        mean, std = chunked_mean_std(self._read(pick[i:i + STATS_CHUNK]) for i in range(0, len(pick), STATS_CHUNK))
        return mean, std + 1e-6

    def __repr__(self) -> str:
        return f"PairedSideA({self.what!r}, {len(self)} {self.side} items of {self.sample_shape})"


def open_side_a(path: str | Path, key: str, side: str, *, stats_seed: int = 0) -> PairedSideA:
    """Side a (``key``: images, features or x) of the pairs .npz ``path``, memory-mapped; images get their
    per-channel standardisation from all the items of the file (a sample of ``STATS_ROWS`` when there are
    more), as the in-memory loader standardises them before it drops the rows its split leaves out."""
    path = Path(path)
    opener = _NpzOpener(path, key)
    source = PairedSideA(opener(), f"{path.name}[{key}]", opener, side=side)
    if side == "image":
        mean, std = source.image_stats(seed=stats_seed)
        source.set_normalisation(mean, std)
    return source
