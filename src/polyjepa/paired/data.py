"""Paired data: aligned pairs (a, b) with side b text, optional labels and a graph over the side-a items.

The loader ``paired`` reads scikit-learn's digits paired with spelled-out class names (the bundled
default for a quick test), or an .npz holding a text column (``text``/``texts``/``captions``) beside
one of ``images`` (image-text pairs), ``edge_index`` (a text-attributed graph: side a is the node)
or ``features``/``x`` (vector-text pairs); ``labels``/``y`` and a ``split`` column are optional. With
``stream=True`` side a (images or vectors) stays in the file, memory-mapped (:mod:`polyjepa.paired.stream`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .graph import check_edges
from .text import encode_texts, train_tokenizer, vocab_size_of

TEXT_KEYS = ("text", "texts", "captions")
LABEL_KEYS = ("labels", "y")
STATS_CHUNK = 64  # images read at a time while side a's channel statistics are gathered (in memory and lazily)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = ("a handwritten {}", "the digit {}", "a drawing of the number {}", "{} written by hand",
                   "a small image of a {}")


@dataclass
class Pairs:
    """n aligned pairs: ``a[i]`` goes with the texts ``texts[i]`` (one or several per item).

    a: (n, ...) side-a inputs: float32 images (n, C, H, W), clips (n, C, T, H, W), vectors (n, F), or int64
        node ids (n,); or, read with ``stream=True``, a lazy source of the images or vectors
        (:class:`polyjepa.paired.stream.PairedSideA`, or :class:`polyjepa.paired.av_stream.AVClipSource` for clips:
        ``a[idx]`` reads those items as a float32 tensor).
    b: (n, K, L) int64 token ids of K texts per item (0 = padding); or, when ``side_b`` is 'audio', (n, 1, ...)
        float32 inputs of the other tower (a spectrogram (1, n_mels, F) per item).
    texts: (n, K) the raw strings (for the TF-IDF baseline); None when side b is not text.
    y: optional (n,) int64 labels; test: (n,) bool, the held-out pairs.
    side_a: 'image', 'video', 'vector' or 'graph'; side_b: 'text' or 'audio';
    graph: {"n_nodes", "edge_index"} when side a is a graph's nodes.
    meta: the tokenizer (JSON), max_len, vocab_size and the label prompt, stored with a run.
    class_names: the name of each label (for zero-shot classification through label prompts), or None.
    """

    a: np.ndarray  # or a PairedSideA
    b: np.ndarray
    texts: np.ndarray | None
    y: np.ndarray | None
    test: np.ndarray
    name: str
    side_a: str
    graph: dict | None = None
    meta: dict = field(default_factory=dict)
    class_names: list[str] | None = None
    side_b: str = "text"

    @property
    def n_train(self) -> int:
        return int((~self.test).sum())


def check_texts(texts) -> np.ndarray:
    """(n,) or (n, K) texts as a str array; one-line UserError naming rows with missing values."""
    arr = np.asarray(texts, dtype=object)
    if arr.ndim not in (1, 2):
        raise UserError(f"the text column must hold one or several strings per item, got shape {arr.shape}")
    flat = arr.reshape(len(arr), -1)
    missing = np.array([[v is None or (isinstance(v, float) and np.isnan(v)) or not str(v).strip()
                         or str(v).strip().lower() in ("nan", "none") for v in row] for row in flat]).any(1)
    if missing.any():
        rows = np.flatnonzero(missing)
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise UserError(f"the text column has missing values in {len(rows)} row(s) ({shown}): fill them or drop "
                        f"those pairs, so that every item has its text")
    return flat.astype(str)


def split_mask(n: int, y: np.ndarray | None, test_size: float, seed: int) -> np.ndarray:
    """(n,) bool: a held-out share (``test_size`` < 1) or count of the pairs, stratified by ``y`` when given."""
    from sklearn.model_selection import train_test_split

    size = test_size if test_size < 1 else int(test_size)
    strat = y if y is not None and np.bincount(y).min() >= 2 else None
    _, test_idx = train_test_split(np.arange(n), test_size=size, random_state=seed, stratify=strat)
    mask = np.zeros(n, bool)
    mask[test_idx] = True
    return mask


def make_pairs(a: np.ndarray, texts, *, side_a: str, name: str, y=None, edge_index=None, test=None,
               test_size: float = 0.2, split_seed: int = 0, max_len: int = 64, vocab_size: int = 4000,
               min_frequency: int = 2, fitted: dict | None = None, class_names=None, prompt: str = "{}") -> Pairs:
    """Check and tokenise aligned pairs. The tokenizer is trained on the training texts only (or taken from
    ``fitted``, the meta of a trained run). ``class_names`` (one per distinct label, in sorted label order)
    and ``prompt`` (a template such as "a paper about {}") give the texts of zero-shot classification. ``a`` may
    be a lazy source (``stream=True``), which checks and converts its items as it reads them."""
    lazy = not isinstance(a, np.ndarray) and hasattr(a, "subset")
    if not lazy:
        a = np.asarray(a)
    texts = check_texts(texts)
    if len(a) != len(texts):
        raise UserError(f"side a has {len(a)} items but side b has {len(texts)} texts: pairs must be aligned row by "
                        f"row (item i with text i); drop or add rows so that both sides have one length")
    n = len(a)
    if n < 4:
        raise UserError(f"{n} pairs are too few to train and test on: bring at least a few dozen")
    if y is not None:
        y = np.asarray(y)
        if len(y) != n:
            raise UserError(f"{len(y)} labels for {n} pairs: give one label per pair")
        y = np.unique(y, return_inverse=True)[1].astype(np.int64)
    graph = None
    if edge_index is not None:
        graph = {"n_nodes": n, "edge_index": check_edges(edge_index, n)}
    if side_a != "graph" and not lazy and not np.issubdtype(a.dtype, np.number):
        raise UserError(f"side a must be numeric (images or vectors), got {a.dtype}")
    if side_a != "graph" and not lazy and not np.isfinite(a).all():
        raise UserError("side a has NaN or inf values: fill or drop those items")
    test = split_mask(n, y, test_size, split_seed) if test is None else np.asarray(test, bool)
    if test.all() or not test.any():
        raise UserError("the split leaves no training or no test pairs: set data.test_size between 0 and 1")
    if fitted and fitted.get("tokenizer"):
        tokenizer = fitted["tokenizer"]
        if int(fitted.get("max_len", max_len)) != max_len:
            raise UserError(f"data.max_len={max_len} but the run's tokenizer was used with max_len "
                            f"{fitted['max_len']}: use the run's setting")
    else:
        tokenizer = train_tokenizer(texts[~test].ravel(), vocab_size=vocab_size, min_frequency=min_frequency)
    ids = encode_texts(texts.ravel(), tokenizer, max_len=max_len).reshape(n, texts.shape[1], max_len)
    if "{}" not in prompt:
        raise UserError(f"data.prompt={prompt!r} must hold {{}} where the class name goes, e.g. 'a photo of {{}}'")
    names = None
    if class_names is not None and y is not None:
        names = [str(c) for c in np.asarray(class_names).ravel()]
        if len(names) != int(y.max()) + 1:
            names = None  # names that do not match the labels are not used
    meta = {"tokenizer": tokenizer, "max_len": max_len, "vocab_size": vocab_size_of(tokenizer), "side_a": side_a,
            "prompt": prompt}
    if side_a == "graph":
        a = np.arange(n, dtype=np.int64)
    elif not lazy:
        a = a.astype(np.float32)
    return Pairs(a=a, b=ids, texts=texts, y=y, test=test, name=name, side_a=side_a, graph=graph, meta=meta,
                 class_names=names)


def _digits(options: dict) -> Pairs:
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    texts = [DIGIT_TEMPLATES[rng.integers(len(DIGIT_TEMPLATES))].format(DIGIT_WORDS[t]) for t in d.target]
    images = (d.images[:, None].astype(np.float32) / 16.0 - 0.3) / 0.4  # roughly standardised
    options = {"min_frequency": 1, **options}
    if options.get("prompt", "{}") == "{}":
        options["prompt"] = "a handwritten {}"
    return make_pairs(images, texts, side_a="image", name="digits+names", y=d.target, class_names=DIGIT_WORDS,
                      **options)


def _first(z, keys):
    return next((k for k in keys if k in z.files), None)


def load_pairs(source: str, *, max_len: int = 64, vocab_size: int = 4000, min_frequency: int = 2,
               test_size: float = 0.2, split_seed: int = 0, prompt: str = "{}", fitted: dict | None = None,
               stream: bool = False) -> Pairs:
    """Read aligned pairs from ``source`` ('digits' or an .npz, see the module doc) and tokenise side b.

    An .npz ``split`` column of strings marks 'test' rows as held out and 'train' rows as training pairs
    (other rows, e.g. 'dev', are left out); without it a stratified ``test_size`` share is held out.
    A ``class_names`` column with labels enables zero-shot classification through ``prompt`` texts.
    ``stream`` (``data.stream=true``) leaves side a (images or vectors) in the file, memory-mapped and read per
    batch (:func:`polyjepa.paired.stream.open_side_a`); the texts, labels and split are read whole, and the
    pairs, split and tokens are the in-memory ones.
    """
    options = dict(max_len=max_len, vocab_size=vocab_size, min_frequency=min_frequency, test_size=test_size,
                   split_seed=split_seed, fitted=fitted, prompt=prompt)
    if source == "digits":
        if stream:
            raise UserError("data.stream=true reads an .npz of pairs lazily; the bundled digits pairs are read into "
                            "memory: drop data.stream, or pass --data PAIRS.npz")
        return _digits(options)
    path = Path(source)
    if not path.exists() or path.suffix != ".npz":
        raise UserError(f"paired data {source!r} is not 'digits' or an existing .npz file: pass one")
    with np.load(path, allow_pickle=False) as z:  # members are read when asked for: side a is left alone here
        tkey = _first(z, TEXT_KEYS)
        if tkey is None:
            raise UserError(f"{path.name} has no text column ({'/'.join(TEXT_KEYS)}); it holds {', '.join(z.files)}")
        texts = z[tkey]
        lkey = _first(z, LABEL_KEYS)
        y = z[lkey] if lkey else None
        if "edge_index" in z.files:
            side, akey = "graph", None
        elif "images" in z.files:
            side, akey = "image", "images"
        elif _first(z, ("features", "x")):
            side, akey = "vector", _first(z, ("features", "x"))
        else:
            raise UserError(f"{path.name} has a text column but no side a: add 'images', 'features' or a graph's "
                            f"'edge_index'")
        if stream and side == "graph":
            raise UserError(f"{path.name} pairs texts with a graph's nodes (edge_index), which are read into memory "
                            f"(a node is an id, the graph is small beside its texts): drop data.stream")
        edges = z["edge_index"] if side == "graph" else None
        a = np.zeros(len(texts)) if side == "graph" else (None if stream else z[akey])
        split = z["split"] if "split" in z.files else None
        class_names = z["class_names"] if "class_names" in z.files else None
    if stream:
        from .stream import open_side_a

        a = open_side_a(path, akey, side, stats_seed=split_seed)
        if len(a) != len(texts):
            raise UserError(f"side a has {len(a)} items but side b has {len(texts)} texts: pairs must be aligned row "
                            f"by row (item i with text i); drop or add rows so that both sides have one length")
    elif side == "image":
        a = _images_nchw(a)
    keep = np.ones(len(texts), bool)
    test = None
    if split is not None:
        split = np.asarray(split).astype(str)
        if len(split) != len(texts):
            raise UserError(f"{path.name}: the split column has {len(split)} rows for {len(texts)} pairs")
        keep = np.isin(split, ("train", "test"))
        test = split[keep] == "test"
    if not keep.all():
        a = a.subset(np.flatnonzero(keep)) if stream else a[keep]
        texts, y = texts[keep], None if y is None else y[keep]
    return make_pairs(a, texts, side_a=side, name=path.stem, y=y, edge_index=edges, test=test,
                      class_names=class_names, **options)


def _images_nchw(x: np.ndarray) -> np.ndarray:
    """(n, H, W, C) or (n, C, H, W) integer or float images -> float32 (n, C, H, W), standardised per channel: mean
    and std + 1e-6 of every image, accumulated in float64 ``STATS_CHUNK`` images at a time (as the lazy form,
    :mod:`polyjepa.paired.stream`, accumulates them, so the two give the same values)."""
    from ..data.lazy import chunked_mean_std

    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise UserError(f"images must be (n, H, W[, C]) or (n, C, H, W), got shape {x.shape}")
    if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    x = x.astype(np.float32) / (255.0 if np.issubdtype(x.dtype, np.integer) else 1.0)
    mean, std = chunked_mean_std(x[i:i + STATS_CHUNK] for i in range(0, len(x), STATS_CHUNK))
    shape = (1, -1, 1, 1)
    return (x - mean.astype(np.float32).reshape(shape)) / (std + 1e-6).astype(np.float32).reshape(shape)
