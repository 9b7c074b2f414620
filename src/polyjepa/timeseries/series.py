"""Validate series arrays at the boundary: (n, C, L) float32, NaN allowed only as trailing padding."""
from __future__ import annotations

import numpy as np

from ..errors import UserError


class NotNumbers(UserError, TypeError):
    """Series that hold non-numbers: a UserError (one line at the CLI) that is also a TypeError, as numpy's is."""


def pad_series(series, length: int | None = None) -> np.ndarray:
    """A list of (C, L_i) or (L_i,) arrays -> (n, C, max L_i or ``length``) float32, NaN-padded at the end."""
    arrays = [np.asarray(s, dtype=np.float32) for s in series]
    arrays = [a[None] if a.ndim == 1 else a for a in arrays]
    if not arrays or any(a.ndim != 2 for a in arrays):
        raise UserError("pad_series needs a non-empty list of (channels, length) or (length,) arrays")
    channels = {a.shape[0] for a in arrays}
    if len(channels) > 1:
        raise UserError(f"the series have different channel counts {sorted(channels)}: give every series the same channels")
    L = max(a.shape[1] for a in arrays) if length is None else int(length)
    out = np.full((len(arrays), arrays[0].shape[0], L), np.nan, dtype=np.float32)
    for i, a in enumerate(arrays):
        if a.shape[1] > L:
            raise UserError(f"series {i} has {a.shape[1]} steps, more than length={L}")
        out[i, :, :a.shape[1]] = a
    return out


def padding_defects(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) rows of (n, C, L) ``a`` whose NaN is not end padding in every channel, and (n,) real steps per row.

    Padding: after a row's last real step nothing is real, before it every channel is real."""
    finite = np.isfinite(a)                       # (n, C, L)
    n_real = finite.any(1).sum(1)                 # (n,)
    prefix = np.arange(a.shape[2])[None] < n_real[:, None]
    return ~(finite == prefix[:, None, :]).all((1, 2)), n_real


def check_series(x, what: str = "X", *, min_length: int = 2) -> np.ndarray:
    """Return ``x`` as float32 (n, C, L) or raise one ``UserError`` naming the problem and the fix.

    Accepts (n, L) (univariate) or (n, C, L) numeric arrays. NaN may only pad a series at its end
    (in every channel at once, e.g. from ``pad_series``); each series needs ``min_length`` real steps.
    """
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "__len__"):
        lengths = {np.shape(s) for s in x}
        if len(lengths) > 1:
            raise UserError(f"{what} is a ragged list of series with shapes {sorted(lengths)[:3]}...: pad them with NaN "
                            f"at the end into one (n, channels, length) array, e.g. polyjepa.timeseries.pad_series(X)")
    if hasattr(x, "toarray") or type(x).__module__.startswith("scipy.sparse"):
        raise UserError(f"{what} is a sparse matrix: sparse input is not supported; pass a dense array (X.toarray())")
    try:
        a = np.asarray(x)
    except ValueError as e:
        raise UserError(f"{what} cannot be read as one array ({e}): pass an (n, channels, length) array, "
                        f"padding shorter series with NaN (polyjepa.timeseries.pad_series)") from None
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise NotNumbers(f"{what} holds values that are not numbers ({e}): series must be numbers (pad ragged "
                             f"series with polyjepa.timeseries.pad_series)") from None
    if np.iscomplexobj(a):
        raise UserError(f"{what} is complex: Complex data not supported; pass real-valued series (np.abs or .real)")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise UserError(f"{what} has dtype {a.dtype}: series must be numbers")
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3:
        hint = "; Reshape your data with X.reshape(1, -1) for one series" if a.ndim == 1 else ""
        raise UserError(f"{what} has shape {a.shape}: series must be (n, length) or (n, channels, length){hint}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise UserError(f"{what} has shape {a.shape}: it needs at least one series and one channel")
    if a.shape[2] < min_length:
        raise UserError(f"{what} has {a.shape[2]} feature(s) (shape={np.asarray(x).shape}) while a minimum of "
                        f"{min_length} is required: series need at least {min_length} steps (n_features = {a.shape[2]})")
    a = a.astype(np.float32)
    if np.isinf(a).any():
        raise UserError(f"{what} contains inf in {int(np.isinf(a).any((1, 2)).sum())} series: remove or clip them")
    bad, n_real = padding_defects(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{what} has NaN inside {int(bad.sum())} series (first: series {i}): NaN may only pad a "
                        f"series at its end in every channel; impute missing values first")
    short = n_real < min_length
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise UserError(f"{what} has {int(short.sum())} series shorter than {min_length} steps (series {i} has "
                        f"{int(n_real[i])}): drop them or use a smaller patch_size")
    return np.ascontiguousarray(a)
