"""Load, split and normalise a data set the same way for training, probing and embedding."""
from __future__ import annotations

import inspect
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..config import DataConfig
from ..errors import UserError
from .sources import Loaded


@dataclass
class Prepared:
    """Normalised train/test arrays (test empty when the data have no labels) and the statistics used."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    mean: list[float] | None
    std: list[float] | None
    name: str
    meta: dict = field(default_factory=dict)

    @property
    def stats(self) -> dict:
        """What a run stores to prepare new data the same way."""
        return {"mean": self.mean, "std": self.std, "meta": self.meta}


def is_regression(y) -> bool:
    """Float targets are a regression task (a table's continuous column); integer labels are classes."""
    return y is not None and np.issubdtype(np.asarray(y).dtype, np.floating)


def normalise(x: np.ndarray, mean, std) -> np.ndarray:
    """Per-channel standardisation of (n, C, ...) arrays (unchanged when mean is None), computed in float64
    so that values near float32's limit do not overflow; the result is float32."""
    if mean is None:
        return np.ascontiguousarray(x, dtype=np.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    z = (x.astype(np.float64) - np.asarray(mean, np.float64).reshape(shape)) / np.asarray(std, np.float64).reshape(shape)
    with np.errstate(over="ignore"):
        out = z.astype(np.float32)
    if np.isinf(out).any():
        raise UserError(f"standardised with the training statistics, some values exceed float32's range "
                        f"(largest |z| {np.nanmax(np.abs(z)):.3g}): the data are far outside those the run was "
                        f"trained on; check their scale and units")
    return out


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (n, C, ...) data in float64, ignoring NaN (padding or missing values).

    The values are scaled by their largest magnitude first, so that squares of values near float32's
    limit (or float64's) do not overflow; the statistics must come out finite.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    a = x.astype(np.float64)
    import warnings

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN channel: reported below
        scale = np.nanmax(np.abs(a), axis=axes, keepdims=True)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        unit = a / scale
        mean = np.nanmean(unit, axis=axes) * scale.reshape(-1)
        std = np.nanstd(unit, axis=axes) * scale.reshape(-1)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        bad = [int(c) for c in np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))]
        raise UserError(f"the training data have no finite values in channel(s) {bad[:5]}: every value there is "
                        f"NaN or inf; drop those channels or fill them")
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


def _what(source) -> str:
    """A data source as an error message names it (a DataFrame by its type, not its rows)."""
    return repr(source) if isinstance(source, str) else f"the {type(source).__name__}"


def load_data(cfg: DataConfig, options: dict | None = None, fitted: dict | None = None) -> Loaded:
    """Run the recipe's data loader on ``cfg.source`` with its ``options``.

    ``fitted`` (the ``meta`` of a trained run) goes to loaders that accept it, so that new data
    are encoded as the training data were.
    """
    from ..registry import check_option_types, part_builder

    loader, _ = part_builder("data", {"data": {"loader": cfg.loader}})
    kwargs = dict(options or {})
    check_option_types("data", loader, kwargs)
    if cfg.source is None:
        raise UserError(f"no data given for data.loader={cfg.loader}: pass --data PATH (or data.source=PATH)")
    if "fitted" in inspect.signature(loader).parameters:
        kwargs["fitted"] = fitted
    try:
        loaded = loader(cfg.source, **kwargs)
    except UserError as e:
        raise UserError(f"cannot load {_what(cfg.source)} with data.loader={cfg.loader}: {e}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:  # .npz members are read lazily, after np.load
        raise UserError(f"cannot load {_what(cfg.source)} with data.loader={cfg.loader}: the file is corrupt or "
                        f"unreadable ({type(e).__name__}: {e}): re-create or re-download it") from None
    except (TypeError, ValueError) as e:
        hint = ""
        if "allow_pickle" in str(e):  # an object (ragged) array inside an .npz
            hint = ("; polyjepa does not unpickle: store one numeric array, samples of different sizes padded or "
                    "resampled to one size (or as separate files in a folder, where the loader reads folders)")
        raise UserError(f"cannot load {_what(cfg.source)} with data.loader={cfg.loader}: {e}{hint}") from None
    if not isinstance(loaded, Loaded):
        raise TypeError(f"data loader {cfg.loader!r} returned {type(loaded).__name__}, not polyjepa.data.Loaded")
    return loaded


def strat(labels):
    """The labels to stratify a split by: class labels with at least two samples each, else None."""
    classes = labels is not None and not is_regression(labels)
    return labels if classes and np.bincount(labels).min() >= 2 else None


def prepare(cfg: DataConfig, stats: dict | None = None, options: dict | None = None) -> Prepared:
    """Load ``cfg.source``, subsample, split (stratified by label) and normalise with train statistics.

    A data set with an official test split keeps it; otherwise ``cfg.test_size`` of the labelled
    samples are held out. ``stats`` ({"mean", "std", "meta"}) reuses a trained run's statistics so
    embeddings match training; ``options`` are the loader's own options from the recipe.
    """
    if cfg.stream:
        return _prepare_stream(cfg, stats, options)
    data = load_data(cfg, options, (stats or {}).get("meta"))
    x, y = data.x, data.y
    keep = _subsample(len(x), y, cfg, "samples")
    if keep is not None:
        x, y = x[keep], (y[keep] if y is not None else None)
    if data.x_test is not None:
        x_train, y_train, x_test, y_test = x, y, data.x_test, data.y_test
    elif y is None:
        x_train, x_test, y_train, y_test = x, x[:0], None, None
    else:
        tr, te = _holdout(np.arange(len(x)), y, cfg, "samples")
        x_train, x_test, y_train, y_test = x[tr], x[te], y[tr], y[te]
    if stats is None and y_train is not None and not is_regression(y_train) and len(np.unique(y_train)) < 2:
        raise UserError(f"the training labels of {data.name} have a single class ({len(y_train)} samples): the "
                        f"probes need two or more; give data with more classes, or no labels"
                        f"{' (data.target=null)' if cfg.loader == 'table' else ''}")
    if cfg.normalize == "none":
        mean = std = None
    elif stats is None or stats.get("mean") is None:
        mean, std = channel_stats(x_train)  # NaN marks padding or missing values in some modalities
    else:
        mean, std = stats["mean"], stats["std"]
        if x.ndim < 2 or len(mean) != x.shape[1]:
            raise UserError(f"the data have per-sample shape {x.shape[1:]} but the run was trained on "
                            f"{len(mean)} channels: use data with {len(mean)} channels, as in training")
    return Prepared(normalise(x_train, mean, std), y_train, normalise(x_test, mean, std), y_test, mean, std,
                    data.name, dict(data.meta))


# the probes' sample of streamed data when eval.max_samples is not set: per split, stratified
STREAM_EVAL_SAMPLES = 10_000
STREAM_STATS_SAMPLES = 2_000  # images drawn at random for the channel statistics of a streamed folder


def _subsample(n: int, y, cfg: DataConfig, what: str) -> np.ndarray | None:
    """The sorted indices of a stratified ``data.max_samples`` subset of ``n`` samples (None: keep all)."""
    from sklearn.model_selection import train_test_split

    if cfg.max_samples is None or cfg.max_samples >= n:
        return None
    try:
        keep, _ = train_test_split(np.arange(n), train_size=cfg.max_samples, random_state=cfg.split_seed,
                                   stratify=strat(y))
    except ValueError as e:  # fewer samples than classes
        raise UserError(f"cannot take data.max_samples={cfg.max_samples} of {n} {what}: {e}: raise "
                        f"data.max_samples") from None
    return np.sort(keep)


def _holdout(idx: np.ndarray, y, cfg: DataConfig, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) parts of the labelled samples ``idx``: a stratified ``data.test_size`` split."""
    from sklearn.model_selection import train_test_split

    test_size = int(cfg.test_size) if cfg.test_size >= 1 else float(cfg.test_size)
    try:
        train, test = train_test_split(idx, test_size=test_size, random_state=cfg.split_seed, stratify=strat(y[idx]))
    except ValueError as e:
        raise UserError(f"cannot split {len(idx)} {what} with data.test_size={cfg.test_size}: {e}") from None
    return train, test


def _split_indices(n: int, y, cfg: DataConfig, what: str, train_rows: int | None = None):
    """(train, test) sample indices of lazy data, by :func:`prepare`'s rules: a stratified ``data.max_samples``
    subset, then ``train_rows`` (the first rows train, the rest test) or a stratified ``data.test_size`` split
    of the labelled samples (no test part without labels)."""
    idx = np.arange(n)
    if train_rows is not None:
        if not 0 < train_rows < n:
            raise UserError(f"data.train_rows={train_rows} must be between 1 and {n - 1} (the table has {n} rows)")
        return idx[:train_rows], idx[train_rows:]
    keep = _subsample(n, y, cfg, what)
    idx = idx if keep is None else keep
    return (idx, idx[:0]) if y is None else _holdout(idx, y, cfg, what)


def _prepare_stream(cfg: DataConfig, stats: dict | None, options: dict | None) -> Prepared:
    """Data split and normalised as :func:`prepare` does, without reading them into memory: the train and
    test parts are lazy sources over the split's samples. A folder of images (``ImageFolderStream``; labels
    from the class sub-folders), a Parquet table, or a loader with a lazy form of its own (a modality's
    ``STREAMS``, :func:`polyjepa.registry.stream_openers`); the channel statistics are estimated from
    ``STREAM_STATS_SAMPLES`` training samples.

    An opener takes the source, the loader's options, ``fitted`` (a trained run's meta) and ``seed``, and
    returns a lazy source with ``labels``, ``subset``, ``meta``, ``set_normalisation`` / ``channel_stats``
    (per-channel standardisation), and optionally ``test_rows``: the indices of its official test samples."""
    from pathlib import Path

    from ..registry import part_builder, stream_openers
    from .sources import _check_size
    from .stream import open_stream

    options = dict(options or {})
    if cfg.loader == "table":
        return _prepare_table_stream(cfg, stats, options)
    openers = stream_openers()
    if cfg.loader in openers:
        return _prepare_opened(cfg, stats, options, openers[cfg.loader])
    if cfg.loader != "images":
        part_builder("data", {"data": {"loader": cfg.loader}})  # an unknown loader fails with the known ones
        lazy = ", ".join(sorted({"images", "table", *openers}))
        raise UserError(f"data.loader={cfg.loader} reads its data into memory; data.stream=true works with the "
                        f"loaders {lazy}: drop data.stream")
    unknown = sorted(set(options) - {"size"})
    if unknown:
        raise UserError(f"data.stream=true takes the images loader's data.size only, not {', '.join(unknown)}")
    src = Path(cfg.source) if isinstance(cfg.source, str) else None
    if src is not None and src.suffix in (".npy", ".npz") and src.is_file():  # an array file, memory-mapped
        from .array_stream import open_image_array

        stream = open_image_array(src, size=_check_size(options.get("size")))
        return _split_lazy(cfg, stats, stream, "images", src.name, {})
    if src is None or not (src.is_dir() or (src.suffix == ".tar" and src.is_file())):
        raise UserError(f"data.stream=true needs a folder of images or of .tar shards, or an .npy/.npz array, not "
                        f"{_what(cfg.source)}: pass --data FOLDER, or drop data.stream to read a bundled set into "
                        f"memory")
    stream = open_stream(cfg.source, size=_check_size(options.get("size")))
    return _split_lazy(cfg, stats, stream, "images", Path(cfg.source).name, {})


def opener_seed(loader_name: str, options: dict, split_seed: int) -> int:
    """The ``seed`` a lazy form is opened with (popped from ``options``): the split seed, unless the in-memory
    loader has a seed option of its own (the jets loader's shuffle, the points' draws): then that option, or its
    default, as the in-memory loader would use it."""
    from ..registry import part_builder

    loader, _ = part_builder("data", {"data": {"loader": loader_name}})
    own = inspect.signature(loader).parameters.get("seed")
    if own is None and "seed" in options:   # as the in-memory loader refuses it
        raise UserError(f"data.loader={loader_name} takes no option seed: drop data.seed (the split is drawn with "
                        f"data.split_seed)")
    return options.pop("seed", split_seed if own is None or own.default is inspect.Parameter.empty else own.default)


def _prepare_opened(cfg: DataConfig, stats: dict | None, options: dict, opener) -> Prepared:
    """A loader's lazy form (``opener``: a function or "module:function") opened on ``cfg.source`` with its
    options, then split."""
    import importlib
    from pathlib import Path

    if isinstance(opener, str):
        module, name = opener.split(":")
        opener = getattr(importlib.import_module(module), name)
    params = inspect.signature(opener).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params) - {"fitted", "seed"})
        if unknown:
            raise UserError(f"data.stream=true for data.loader={cfg.loader} takes no option {', '.join(unknown)}: "
                            f"drop it, or drop data.stream")
    if not isinstance(cfg.source, (str, Path)):
        raise UserError(f"data.stream=true reads files, not {_what(cfg.source)}")
    seed = opener_seed(cfg.loader, options, cfg.split_seed)
    try:
        stream = opener(cfg.source, fitted=(stats or {}).get("meta"), seed=seed, **options)
    except TypeError as e:  # an option the opener does not take
        raise UserError(f"data.stream=true for data.loader={cfg.loader}: {e}") from None
    return _split_lazy(cfg, stats, stream, "samples", Path(str(cfg.source)).name, dict(stream.meta))


def _split_lazy(cfg: DataConfig, stats: dict | None, stream, what: str, name: str, meta: dict) -> Prepared:
    """A lazy source's train and test parts by :func:`prepare`'s rules, normalised per channel with statistics
    estimated from ``STREAM_STATS_SAMPLES`` training samples (or a trained run's ``stats``). A source with
    ``test_rows`` (its official test samples) keeps that split, ``data.max_samples`` subsampling the rest."""
    y = stream.labels
    official = getattr(stream, "test_rows", None)
    if official is not None:
        test_idx = np.sort(np.asarray(official, dtype=np.int64))
        rest = np.setdiff1d(np.arange(len(stream)), test_idx)
        keep = _subsample(len(rest), None if y is None else y[rest], cfg, what)
        train_idx = rest if keep is None else rest[keep]
    else:
        train_idx, test_idx = _split_indices(len(stream), y, cfg, what)
    x_train = stream.subset(train_idx)
    x_test = stream.subset(test_idx) if len(test_idx) else np.zeros((0, *stream.sample_shape), np.float32)
    if cfg.normalize == "none":
        mean = std = None
    elif stats is None or stats.get("mean") is None:
        mean, std = x_train.channel_stats(STREAM_STATS_SAMPLES, seed=cfg.split_seed)
    else:
        mean, std = stats["mean"], stats["std"]
        if len(mean) != stream.sample_shape[0]:
            raise UserError(f"the {what} have {stream.sample_shape[0]} channels but the run was trained on "
                            f"{len(mean)}: use {what} with {len(mean)} channels, as in training")
    for part in (x_train, x_test):
        if mean is not None and not isinstance(part, np.ndarray):
            part.set_normalisation(mean, std)
    return Prepared(x_train, None if y is None else y[train_idx], x_test, None if y is None else y[test_idx],
                    mean, std, name, meta)


def _prepare_table_stream(cfg: DataConfig, stats: dict | None, options: dict) -> Prepared:
    """A Parquet table encoded in record batches into a memory-mapped cache, split as :func:`prepare` splits a
    table (``data.train_rows`` as the official split, else a stratified ``data.test_size``), train and test
    parts as lazy row views."""
    from ..tabular.stream import RowView, stream_table

    if cfg.normalize != "none":
        raise UserError("a streamed table is standardised by its schema: set data.normalize=none, as the table "
                        "recipes do")
    options.pop("sep", None)  # Parquet has no separator
    unknown = sorted(set(options) - {"target", "train_rows", "categorical", "n_bins", "max_int_categories"})
    if unknown:
        raise UserError(f"data.stream=true for a table takes no option {', '.join(unknown)}")
    if not isinstance(cfg.source, str):
        raise UserError(f"data.stream=true reads a .parquet file, not {_what(cfg.source)}")
    x, y, meta = stream_table(cfg.source, fitted=(stats or {}).get("meta"), **options)
    train_idx, test_idx = _split_indices(len(x), y, cfg, "rows", options.get("train_rows"))
    y_train = None if y is None else y[train_idx]
    y_test = None if y is None else y[test_idx]
    x_test = RowView(x, test_idx) if len(test_idx) else np.zeros((0, x.shape[1]), np.float32)
    from pathlib import Path

    return Prepared(RowView(x, train_idx), y_train, x_test, y_test, None, None, Path(cfg.source).name, meta)


def is_lazy(x) -> bool:
    """Whether ``x`` is a lazy source (decoded on access) rather than an in-memory array."""
    return not isinstance(x, np.ndarray)


EVAL_DECODE_BYTES = 1 << 26  # the evaluation sample is decoded this many bytes (at least one sample) at a time


def evaluation_sample(prepared: Prepared, max_samples: int | None, seed: int = 0,
                      max_bytes: int | None = None) -> tuple[Prepared, dict | None]:
    """The arrays the probes, baselines and monitor use: ``prepared`` itself when it is in memory and within
    ``max_samples``; otherwise a stratified sample of at most ``max_samples`` training and as many test samples
    (``STREAM_EVAL_SAMPLES`` for lazy data when ``max_samples`` is None), decoded.

    For lazy data ``max_bytes`` (``eval.max_bytes``) also bounds the decoded sample: train and test together
    hold at most that many bytes of float32 samples (their size from the source's ``sample_shape``), so both
    parts shrink in proportion when the samples are large, each still stratified. The sample is decoded a chunk
    at a time into one preallocated array per part. The dict says what was sampled (None when nothing was);
    when the byte bound cut the sample it also holds ``max_bytes`` and ``sample_bytes`` (bytes per sample)."""
    from dataclasses import replace

    lazy = is_lazy(prepared.x_train) or is_lazy(prepared.x_test)
    limit = max_samples if max_samples is not None else (STREAM_EVAL_SAMPLES if lazy else None)
    if limit is not None and limit < 1:
        raise UserError(f"eval.max_samples={limit} must be at least 1 (or null for all samples)")
    if limit is None or (not lazy and len(prepared.x_train) <= limit and len(prepared.x_test) <= limit):
        return prepared, None
    n_train, n_test = min(len(prepared.x_train), limit), min(len(prepared.x_test), limit)
    per_sample = 4 * int(np.prod(prepared.x_train.shape[1:], dtype=np.int64))
    bounded = False
    if lazy and max_bytes is not None:
        n_train, n_test, bounded = _byte_bounded(n_train, n_test, per_sample, max_bytes, prepared.x_train.shape[1:])
    x_train, y_train = _decoded_sample(prepared.x_train, prepared.y_train, n_train, seed)
    x_test, y_test = _decoded_sample(prepared.x_test, prepared.y_test, n_test, seed)
    note = {"train": len(x_train), "test": len(x_test), "of_train": len(prepared.x_train),
            "of_test": len(prepared.x_test), "streamed": lazy}
    if bounded:
        note.update(max_bytes=int(max_bytes), sample_bytes=per_sample)
    return replace(prepared, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test), note


def _byte_bounded(n_train: int, n_test: int, per_sample: int, max_bytes, shape) -> tuple[int, int, bool]:
    """(train, test, cut) sample sizes that hold at most ``max_bytes`` of ``per_sample``-byte samples together,
    both parts scaled by the same factor (at least 2 training and 1 test sample, else one line)."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, float, np.integer)) or max_bytes <= 0:
        raise UserError(f"eval.max_bytes={max_bytes!r} must be a positive number of bytes (e.g. 1073741824 for "
                        f"1 GiB), or null for no bound")
    fits = int(max_bytes // max(per_sample, 1))
    if n_train + n_test <= fits:
        return n_train, n_test, False
    need = min(n_train, 2) + min(n_test, 1)
    if fits < need:
        raise UserError(f"eval.max_bytes={int(max_bytes)} holds {fits} sample(s) of shape {tuple(shape)} "
                        f"({per_sample} bytes each as float32) but the probes need at least {need}: raise "
                        f"eval.max_bytes")
    scale = fits / (n_train + n_test)
    train = min(n_train, max(min(n_train, 2), int(n_train * scale)))
    test = min(n_test, max(min(n_test, 1), fits - train))
    return train, test, True


def _decoded_sample(x, y, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` of the samples ``x`` (all of them when ``n >= len(x)``), stratified by the class labels ``y`` when
    every class can be drawn (else a plain random draw), in their order in ``x``, decoded into one float32 array
    ``EVAL_DECODE_BYTES`` at a time."""
    idx = sample_indices(len(x), y, n, seed)
    return decode_rows(x, idx), (None if y is None else y[idx])


def sample_indices(total: int, y, n: int, seed: int) -> np.ndarray:
    """The sorted indices of ``n`` of ``total`` samples (all of them when ``n >= total``), stratified by the class
    labels ``y`` when every class can be drawn, else a plain random draw with ``seed``."""
    from sklearn.model_selection import train_test_split

    if n >= total:
        return np.arange(total)
    try:
        idx, _ = train_test_split(np.arange(total), train_size=n, random_state=seed, stratify=strat(y))
    except ValueError:  # more classes than the sample holds: a plain random draw
        idx = np.random.default_rng(seed).permutation(total)[:n]
    return np.sort(idx)


def decode_rows(x, idx: np.ndarray) -> np.ndarray:
    """The samples ``x[idx]`` of an array or lazy source as one float32 array, read ``EVAL_DECODE_BYTES`` (at least
    one sample) at a time."""
    out = np.empty((len(idx), *x.shape[1:]), np.float32)
    chunk = max(1, EVAL_DECODE_BYTES // max(4 * int(np.prod(x.shape[1:], dtype=np.int64)), 1))
    for i in range(0, len(idx), chunk):
        part = x[idx[i:i + chunk]]
        out[i:i + chunk] = part.numpy() if hasattr(part, "numpy") else np.asarray(part)
    return out


def first_rows(x, n: int) -> np.ndarray:
    """The first ``n`` samples (fewer if ``x`` holds fewer) of an array or lazy source, decoded as float32."""
    return decode_rows(x, np.arange(min(n, len(x))))
