"""A base for lazy sources indexed by rows (a file and a position): batches read on access, subsets, per-channel
normalisation and channel statistics computed a chunk at a time, so memory holds a batch, not the data."""
from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .stream import LazySource, index_rows


class IndexedSource(LazySource):
    """A lazy source whose samples are the rows of an index (``_rows``: a file and a position, say), with
    ``labels``, per-channel normalisation, ``subset`` and channel statistics read in chunks. A subclass sets
    ``sample_shape`` (C, ...) and ``_rows``, and reads raw float32 samples (k, C, ...) in ``_read(rows)``."""

    labels: np.ndarray | None = None
    mean = std = None

    def __len__(self) -> int:
        return len(self._rows)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, idx) -> torch.Tensor:
        """(k, C, ...) float32 for an index array, tensor, list or slice; (C, ...) for one integer index."""
        if isinstance(idx, (int, np.integer)):
            return self[np.array([int(idx)])][0]
        idx = index_rows(idx, len(self))
        if not len(idx):
            return torch.empty((0, *self.sample_shape))
        x = self._read(self._rows[idx])
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def subset(self, indices):
        """The samples at ``indices`` (in that order) as a source of their own, normalised as this one."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = copy.copy(self)
        out._rows = self._rows[idx]
        out.labels = None if self.labels is None else self.labels[idx]
        return out

    def set_normalisation(self, mean, std) -> None:
        """Standardise every sample with per-channel ``mean`` and ``std`` (lists of C numbers) from now on."""
        shape = (-1,) + (1,) * (len(self.sample_shape) - 1)
        self.mean = np.asarray(mean, np.float32).reshape(shape)
        self.std = np.asarray(std, np.float32).reshape(shape)

    def channel_stats(self, n: int = 2000, seed: int = 0, chunk: int = 64) -> tuple[list[float], list[float]]:
        """Per-channel mean and std (NaN padding ignored) of ``n`` samples drawn at random, before normalisation;
        all of them, in order, when there are at most ``n``. The samples are read ``chunk`` at a time and
        their statistics combined, so memory holds one chunk."""
        pick = stats_sample(len(self), n, seed)
        return chunked_channel_stats(self._read(self._rows[pick[i:i + chunk]]) for i in range(0, len(pick), chunk))


def stats_sample(total: int, n: int, seed: int = 0) -> np.ndarray:
    """The sorted indices of ``n`` of ``total`` samples drawn at random with ``seed``; all of them when ``total <= n``."""
    if total <= n:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


def chunked_channel_stats(chunks) -> tuple[list[float], list[float]]:
    """:func:`polyjepa.data.prepare.channel_stats` of the concatenation of (k, C, ...) ``chunks``, one chunk in
    memory at a time (see :func:`chunked_mean_std`); a std below 1e-6 is raised to 1e-6."""
    mean, std = chunked_mean_std(chunks)
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


def chunked_mean_std(chunks) -> tuple[np.ndarray, np.ndarray]:
    """(C,) float64 per-channel mean and (population) std of the concatenation of (k, C, ...) ``chunks``, one
    chunk in memory at a time: per-chunk counts, means and sums of squared deviations in float64, combined
    pairwise (Chan, Golub and LeVeque 1979), NaN ignored."""
    count = mean = m2 = None
    for a in chunks:
        a = np.asarray(a, np.float64)
        axes = (0,) + tuple(range(2, a.ndim))
        finite = np.isfinite(a)
        k = finite.sum(axis=axes).astype(np.float64)
        z = np.where(finite, a, 0.0)
        mu = z.sum(axis=axes) / np.maximum(k, 1)
        shape = (1, -1) + (1,) * (a.ndim - 2)
        d2 = (np.where(finite, a - mu.reshape(shape), 0.0) ** 2).sum(axis=axes)
        if count is None:
            count, mean, m2 = k, mu, d2
            continue
        total = count + k
        delta = mu - mean
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(total > 0, k / np.maximum(total, 1), 0.0)
        mean = mean + delta * w
        m2 = m2 + d2 + delta ** 2 * count * w
        count = total
    if count is None or not (count > 0).all():
        bad = [] if count is None else [int(c) for c in np.flatnonzero(count == 0)]
        raise UserError(f"the training data have no finite values in channel(s) {bad[:5]}: every value there is "
                        f"NaN or inf; drop those channels or fill them")
    return mean, np.sqrt(m2 / count)


@contextmanager
def filled_npy(out: Path, shape: tuple, dtype=np.float32):
    """A new ``.npy`` memory map of ``shape`` for the block to fill; it becomes ``out`` (by a rename) only when
    the block completes, so an interrupted fill never leaves a cache behind to be read back."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    try:
        yield mm
        mm.flush()
        del mm
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


NPZ_COPY_BYTES = 1 << 24  # the bytes an inflated .npz member is copied by, so memory holds one such block


def npz_members(path: str | os.PathLike) -> list[str]:
    """The array names of an .npz archive (its ``.npy`` members, without the suffix)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except (OSError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read {path} as an .npz archive ({type(e).__name__}: {e}): re-create it with "
                        f"numpy.savez") from None


def npz_array(path: str | os.PathLike, key: str, *, cache: str | os.PathLike | None = None) -> np.ndarray:
    """The array ``key`` of an .npz archive, memory-mapped rather than read into memory.

    A stored member (``numpy.savez``) is mapped where it lies inside the archive. A compressed one
    (``numpy.savez_compressed``) is inflated once, a block at a time, into an ``.npy`` in ``cache`` (default: the
    user cache's ``npz`` folder, :func:`polyjepa.eval.cache.cache_dir`), keyed by the archive's path, size and
    modification time, and that copy is mapped; an interrupted copy leaves nothing behind. Object arrays are
    refused (nothing is unpickled)."""
    import hashlib
    import shutil
    import zipfile

    path = Path(path)
    name = f"{key}.npy"
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(name)
            if info.compress_type == zipfile.ZIP_STORED:
                with open(path, "rb") as f:
                    f.seek(info.header_offset)
                    local = f.read(30)  # the member's local header: its name and extra field lengths at 26..29
                    if local[:4] != b"PK\x03\x04":
                        raise zipfile.BadZipFile(f"no local header for {name}")
                    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
                        int.from_bytes(local[28:30], "little")
                    f.seek(start)
                    shape, fortran, dtype = _npy_header(f, path, key)
                    offset = f.tell()
                if dtype.itemsize == 0 or 0 in shape:
                    return np.zeros(shape, dtype)
                return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C",
                                 offset=offset)
            from ..eval.cache import cache_dir

            folder = Path(cache) if cache is not None else cache_dir() / "npz"
            stat = path.stat()
            ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{key}"
            out = folder / f"{path.stem}-{key}-{hashlib.sha256(ident.encode()).hexdigest()[:24]}.npy"
            if not out.exists():
                folder.mkdir(parents=True, exist_ok=True)
                with z.open(name) as src:
                    _npy_header(src, path, key)  # refuse object arrays before copying anything
                tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
                try:
                    with z.open(name) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, NPZ_COPY_BYTES)  # the member is an .npy file, copied verbatim
                    tmp.replace(out)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
    except KeyError:
        raise UserError(f"{path} has no array {key!r} (it holds {', '.join(npz_members(path)) or 'none'})") from None
    except UserError:
        raise   # a refusal of its own (a pickled member), not a corrupt archive
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        raise UserError(f"cannot read {key!r} from {path} ({type(e).__name__}: {e}): the archive is corrupt or cut "
                        f"short; re-create it with numpy.savez") from None
    return np.load(out, mmap_mode="r", allow_pickle=False)


def _npy_header(f, path: Path, key: str) -> tuple[tuple, bool, np.dtype]:
    """(shape, Fortran order, dtype) of the .npy stream ``f`` positioned at its magic string; object arrays refused."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0) else fmt.read_array_header_2_0(f))
    if dtype.hasobject:
        raise UserError(f"{path}[{key}] holds Python objects, which polyjepa does not unpickle: store one numeric "
                        f"array (samples of different sizes padded or resampled to one size)")
    return shape, fortran, dtype
