"""Images read lazily, from a folder or from tar shards: each batch decodes its own images (in DataLoader
workers), so memory stays bounded by a few batches whatever the data's size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError, warn
from .skiplog import append_skip, read_skip_log
from .sources import IMAGE_SUFFIXES, resize_center


def list_images(root: str | Path) -> tuple[list[Path], np.ndarray | None]:
    """(files in sorted order, labels or None) of an image folder: images directly under ``root``, or one
    sub-folder per class (the class is the label), as :func:`polyjepa.data.sources.load_images` reads it."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder of images: pass a folder (images directly in it, or one sub-folder "
                        f"per class)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    parents = [p.parent.relative_to(root).as_posix() for p in files]
    classes = sorted(set(parents))
    if len(classes) == 1 and classes[0] == ".":
        return files, None
    index = {c: i for i, c in enumerate(classes)}
    return files, np.array([index[c] for c in parents], dtype=np.int64)


def index_rows(idx, n: int) -> np.ndarray:
    """A lazy source's index (an array, tensor, list or slice over its ``n`` samples) as a flat int64 array."""
    if isinstance(idx, slice):
        idx = np.arange(*idx.indices(n))
    elif isinstance(idx, torch.Tensor):
        idx = idx.numpy()
    return np.asarray(idx, dtype=np.int64).reshape(-1)


class LazySource:
    """What a lazy source shares with an (n, ...) array besides indexing: ``len``, ``shape`` and ``ndim``, from
    the subclass's ``__len__`` and per-sample ``sample_shape``."""

    sample_shape: tuple[int, ...]
    skip_log: Path | None = None  # the run's skip log (see polyjepa.data.skiplog), shared by all its processes

    def record_skip(self, name: str, why: str) -> int:
        """Note that file ``name`` was skipped because it ``why`` (appended to ``skip_log`` when set); returns how
        many distinct files were skipped so far: by every process of the run when there is a log, else by this one."""
        self.__dict__.setdefault("skip_reasons", {})[name] = why
        if self.skip_log is None:
            return len(self.skip_reasons)
        append_skip(self.skip_log, name, why)
        return len(read_skip_log(self.skip_log))

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)


class ImageFolderStream(LazySource):
    """The images of a folder as an indexable source: ``stream[idx] -> (k, C, H, W)`` float32, decoded on access.

    It stands in for an in-memory (n, C, H, W) array wherever the trainer takes one (``MaskedBatches``
    indexes it with each batch's sample indices), and it pickles as a list of paths, so DataLoader
    workers decode the batches in parallel. Pixels are scaled to [0, 1], then normalised with ``mean`` /
    ``std`` per channel when given; ``size`` scales each image to cover (H, W) and crops the centre, as
    the in-memory loader does, so the two give the same arrays.

    An image that cannot be decoded is skipped: its slot in the batch is filled by the next readable file
    (batches keep their size, which distributed training needs), a warning names the file, and it is
    counted in ``skipped`` and appended to ``skip_log`` when given (the run's log, shared by its DataLoader
    workers and ranks). More than ``max_bad`` skipped files (a count, or a fraction of the whole folder when
    < 1, in a subset too),
    counted over every process writing to ``skip_log`` (else over this one), is an error.

    Args:
        root: the folder (images directly in it, or one sub-folder per class).
        size: (H, W) to scale and crop to; None: every image must have the first image's size.
        mode: "L" (grey) or "RGB"; None: RGB if any of the first 32 images has colour, else L.
        mean, std: per-channel normalisation (lists of C numbers), applied after scaling to [0, 1].
    """

    def __init__(self, root: str | Path, *, size: tuple[int, int] | None = None, mode: str | None = None,
                 mean=None, std=None, max_bad: float = 0.01, skip_log: str | Path | None = None):
        self.root = Path(root)
        self.files, self.labels = list_images(self.root)
        self._setup(size, mode, mean, std, max_bad, skip_log)

    def _setup(self, size, mode, mean, std, max_bad, skip_log) -> None:
        """What every lazy image source sets once its list of images (``files``, ``labels``) is known."""
        self.size = None if size is None else (int(size[0]), int(size[1]))
        if mode is None:
            mode = "RGB" if any(self._open_mode(self._source(i)) not in ("L", "1", "LA", "I", "I;16")
                                for i in range(min(32, len(self.files)))) else "L"
        if mode not in ("L", "RGB"):
            raise UserError(f"image mode {mode!r}: use 'L' (grey) or 'RGB'")
        self.mode = mode
        self.mean = self.std = None
        if mean is not None:
            self.set_normalisation(mean, std)
        self.max_bad = max_bad
        self.n_all = len(self.files)  # what a fractional max_bad is a fraction of: the whole folder, in every part
        self.skip_log = None if skip_log is None else Path(skip_log)
        self.skipped: set[str] = set()
        self.skip_reasons: dict[str, str] = {}
        first = self._decode_first_readable()
        self.sample_shape = tuple(first.shape)

    def _source(self, i: int):
        """What ``PIL.Image.open`` reads image ``i`` from (its path)."""
        return self.files[i]

    @staticmethod
    def _open_mode(path) -> str:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return im.mode
        except Exception:
            return "L"

    def __len__(self) -> int:
        return len(self.files)


    def _decode_first_readable(self) -> np.ndarray:
        for i in range(len(self.files)):
            a = self._try_decode(i)
            if a is not None:
                return a
            self._skip(i, "cannot be read")
        raise UserError(f"no image under {self.root} can be read")

    def _try_decode(self, i: int) -> np.ndarray | None:
        """Image ``i`` as (C, H, W) float32 in [0, 1] (scaled and cropped to ``size``), or None if unreadable."""
        from PIL import Image

        try:
            with Image.open(self._source(i)) as im:
                a = np.asarray(im.convert(self.mode), dtype=np.float32) / 255.0
        except Exception:
            return None
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        if self.size is not None:
            a = resize_center(np.ascontiguousarray(a[None]), self.size)[0]
        return a

    def _skip(self, i: int, why: str) -> None:
        name = str(self.files[i])
        if name in self.skipped:
            return
        self.skipped.add(name)
        warn(f"skipping image {name}: it {why}")
        n_bad = self.record_skip(name, f"it {why}")
        limit = self.max_bad * self.n_all if self.max_bad < 1 else self.max_bad
        if n_bad > limit:
            raise UserError(f"{n_bad} of {self.n_all} images under {self.root} cannot be read (more than "
                            f"{limit:.0f}), the last {name}: repair or remove them")

    def sample(self, i: int) -> np.ndarray:
        """Image ``i`` as (C, H, W) float32, normalised; an unreadable one is replaced by the next readable."""
        for k in range(len(self.files)):
            j = (i + k) % len(self.files)
            a = self._try_decode(j)
            if a is None:
                self._skip(j, "cannot be read")
                continue
            if a.shape != self.sample_shape:
                self._skip(j, f"has shape {a.shape}, not {self.sample_shape} (set data.size to scale every image "
                              f"to one size)")
                continue
            if self.mean is not None:
                a = (a - self.mean) / self.std
            return a
        raise UserError(f"no image under {self.root} can be read")

    def __getitem__(self, idx) -> torch.Tensor:
        """(k, C, H, W) for an index array, tensor, list or slice; (C, H, W) for one integer index."""
        if isinstance(idx, (int, np.integer)):
            return torch.from_numpy(self.sample(int(idx)))
        idx = index_rows(idx, len(self.files)).tolist()
        if not idx:
            return torch.empty((0, *self.sample_shape))
        return torch.from_numpy(np.stack([self.sample(int(i)) for i in idx]))

    def subset(self, indices) -> "ImageFolderStream":
        """The images at ``indices`` (in that order) as a stream of their own, with this one's size, mode and
        normalisation; the files skipped so far stay counted (they are the run's, whichever part they fall in)."""
        import copy

        out = copy.copy(self)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out.files = [self.files[int(i)] for i in idx]
        out.labels = None if self.labels is None else self.labels[idx]
        out.skipped, out.skip_reasons = set(self.skipped), dict(self.skip_reasons)
        if not out.files:
            raise UserError(f"an empty subset of the images under {self.root}: keep at least one image")
        return out

    def set_normalisation(self, mean, std) -> None:
        """Normalise every sample with per-channel ``mean`` and ``std`` (lists of C numbers) from now on."""
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)

    def channel_stats(self, n: int = 1000, seed: int = 0, chunk: int = 64) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the pixels of ``n`` images drawn at random (before normalisation), decoded
        ``chunk`` at a time and combined in float64, so memory holds one chunk (1,000 ImageNet-size images
        at once would be 1.2 GB in float64)."""
        from .lazy import chunked_channel_stats

        pick = np.sort(np.random.default_rng(seed).permutation(len(self.files))[:n])
        mean, std = self.mean, self.std
        self.mean = self.std = None
        try:
            return chunked_channel_stats(self[pick[i:i + chunk]].numpy() for i in range(0, len(pick), chunk))
        finally:
            self.mean, self.std = mean, std

    def __repr__(self) -> str:
        return f"ImageFolderStream({str(self.root)!r}, {len(self)} images of {self.sample_shape}, mode {self.mode})"


class TarShardStream(ImageFolderStream):
    """Images stored in tar shards (the WebDataset layout), read lazily: ``stream[idx] -> (k, C, H, W)``.

    ``root`` is a folder of ``*.tar`` files or one ``.tar`` file. A sample is the group of members that share a
    key (the member's path up to the first dot of its file name): its image (``KEY.png``, ``KEY.jpg``, ...)
    and, optionally, its class as an integer in ``KEY.cls``. Without ``.cls`` members, images in sub-folders
    inside the shards take the sub-folder as their class, as an image folder does; otherwise there are no
    labels. Opening the shards reads their headers once (an index of offsets); each access then reads the bytes
    of one image. A shard cut short (a truncated copy) keeps the images before the cut: the rest is skipped
    with a warning naming the shard and counted in ``skipped`` as one entry for the shard (a tar has no
    index, so how many images followed the cut is unknown); an image whose bytes the cut splits is skipped
    like an image that cannot be decoded. Size,
    mode, normalisation and bad-image handling are :class:`ImageFolderStream`'s.
    """

    def __init__(self, root: str | Path, *, size: tuple[int, int] | None = None, mode: str | None = None,
                 mean=None, std=None, max_bad: float = 0.01, skip_log: str | Path | None = None):
        self.root = Path(root)
        if self.root.is_dir():
            self.shards = sorted(self.root.glob("*.tar"))
        elif self.root.suffix == ".tar" and self.root.is_file():
            self.shards = [self.root]
        else:
            raise UserError(f"{root} is neither a .tar shard nor a folder of them: pass a folder of .tar files")
        if not self.shards:
            raise UserError(f"no .tar shards found in {root}: pass a folder of .tar files (the WebDataset layout)")
        names, where, keys, classes, cut = [], [], [], {}, []
        for s, shard in enumerate(self.shards):
            n_before = len(names)
            ok = _index_shard(shard, s, names, where, keys, classes)
            if not ok:
                cut.append((shard, len(names) - n_before))
        if not names:
            raise UserError(f"the shards in {root} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.files, self._where = names, np.asarray(where, dtype=np.int64)
        self.labels = _shard_labels(names, keys, classes, root)
        self._setup(size, mode, mean, std, max_bad, skip_log)
        if cut:
            warn(f"skipping the rest of truncated shard(s) "
                 f"{', '.join(f'{s.name} (after {k} images)' for s, k in cut)}: re-create or re-copy them")
            for shard, kept in cut:
                self.skipped.add(str(shard))
                self.record_skip(str(shard), f"shard cut short after {kept} images; how many images followed the cut "
                                             f"is unknown")

    def _source(self, i: int):
        import io

        s, offset, length = (int(v) for v in self._where[i])
        with open(self.shards[s], "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            return io.BytesIO(b"")  # cut short: not an image, skipped by the caller
        return io.BytesIO(data)

    def subset(self, indices) -> "TarShardStream":
        out = super().subset(indices)
        out._where = self._where[np.asarray(indices, dtype=np.int64).reshape(-1)]
        return out


def _key(name: str) -> tuple[str, str]:
    """(key, extension) of a shard member in the WebDataset convention: the key ends at the file name's first dot."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ("." + ext.lower() if dot else "")


def _index_shard(shard: Path, s: int, names: list, where: list, keys: list, classes: dict) -> bool:
    """Append the shard's images (display name, (shard, offset, size), (shard, key)) and its ``.cls`` labels;
    False if the shard ends before its end-of-archive marker (cut short)."""
    import tarfile

    try:
        with tarfile.open(shard, "r:") as tf:
            while True:
                m = tf.next()
                if m is None:  # tarfile also stops quietly where a shard is cut: look for the end-of-archive blocks
                    with open(shard, "rb") as f:
                        f.seek(tf.offset)
                        return f.read(1024) == bytes(1024)
                if not m.isfile():
                    continue
                key, ext = _key(m.name)
                if ext in IMAGE_SUFFIXES:
                    names.append(f"{shard.name}:{m.name}")
                    where.append((s, m.offset_data, m.size))
                    keys.append((s, key))
                elif ext == ".cls":
                    text = tf.extractfile(m).read().decode("utf-8", "replace").strip()
                    try:
                        classes[(s, key)] = int(text)
                    except ValueError:
                        raise UserError(f"{shard.name}:{m.name} holds {text[:20]!r}, not an integer class: write the "
                                        f"class index as text in each .cls member") from None
    except (tarfile.ReadError, EOFError, OSError):
        return False


def _shard_labels(names: list[str], keys: list, classes: dict, root) -> np.ndarray | None:
    """Labels from the ``.cls`` members, else from sub-folders inside the shards, else None."""
    if classes:
        labels = [classes.get(k) for k in keys]
        missing = sum(v is None for v in labels)
        if missing:
            raise UserError(f"{missing} of {len(names)} images in {root} have no .cls member beside them: give every "
                            f"sample its class, or none")
        return np.asarray(labels, dtype=np.int64)
    folders = [n.partition(":")[2].rpartition("/")[0] for n in names]
    if len(set(folders)) <= 1:
        return None
    index = {c: i for i, c in enumerate(sorted(set(folders)))}
    return np.asarray([index[f] for f in folders], dtype=np.int64)


def open_stream(source, *, size=None, **kwargs) -> ImageFolderStream:
    """The lazy image source for ``source``: tar shards (a .tar file, or a folder holding .tar files and no
    images) or a folder of images."""
    path = Path(source)
    if path.suffix == ".tar" or (path.is_dir() and any(path.glob("*.tar")) and
                                 not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())):
        return TarShardStream(path, size=size, **kwargs)
    return ImageFolderStream(path, size=size, **kwargs)


def as_source(x):
    """What ``MaskedBatches`` indexes: a tensor for an in-memory array, a lazy source as it is."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    return x

